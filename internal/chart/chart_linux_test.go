package chart

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"podpath/internal/kubetest"
)

// apiTimeout bounds every call of the admission test; the control plane starts in a few seconds.
const apiTimeout = 60 * time.Second

// The chart on a real kube-apiserver with Pod Security admission: every object is accepted
// (server-side apply, strict field validation: a misspelt field fails), the DaemonSets' Pods
// are admitted where the NOTES say they are, the host agent's Pod is refused under "restricted",
// and the RBAC grants exactly what the agents need.
func TestAdmission(t *testing.T) {
	env := kubetest.Start(t, false) // admission only: no controllers, no Pods are run
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	dyn := dynamic.NewForConfigOrDie(env.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(env.Config)))

	const privileged, restricted = "podpath-privileged", "podpath-restricted"
	// The PodMonitor and PrometheusRule CRDs are not installed here; every other object is.
	full := mustRender(t, nil, privileged)
	podOnly := mustRender(t, map[string]any{"hostAgent": map[string]any{"enabled": false}}, restricted)
	for ns, level := range map[string]string{privileged: "privileged", restricted: "restricted"} {
		createNamespace(ctx, t, cs, ns, level)
	}
	apply(ctx, t, dyn, mapper, full)
	apply(ctx, t, dyn, mapper, podOnly)

	// What was applied is what the chart says (nothing pruned on the way).
	for _, name := range []string{"podpath-host", "podpath-pod"} {
		got, err := cs.AppsV1().DaemonSets(privileged).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("DaemonSet %s: %v", name, err)
		}
		want := typed[appsv1.DaemonSet](t, full.Find("DaemonSet", name))
		if g, w := got.Spec.Template.Spec.Containers[0].Args, want.Spec.Template.Spec.Containers[0].Args; !slices.Equal(g, w) {
			t.Errorf("DaemonSet %s on the server runs %q; the chart says %q", name, g, w)
		}
	}

	hostPod := podFrom(t, full, "podpath-host")
	podPod := podFrom(t, podOnly, "podpath-pod")
	for _, c := range []struct {
		name, ns string
		pod      *corev1.Pod
		admit    bool
	}{
		{"host agent, privileged namespace", privileged, hostPod, true},
		{"Pod agent, privileged namespace", privileged, podFrom(t, full, "podpath-pod"), true},
		{"Pod agent, restricted namespace", restricted, podPod, true},
		// So that this test can fail: the level that admits the host agent is really enforced.
		{"host agent, restricted namespace", restricted, hostPod, false},
	} {
		pod := c.pod.DeepCopy()
		pod.Namespace = c.ns
		_, err := cs.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case c.admit && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case !c.admit && err == nil:
			t.Errorf("%s: admitted; want a Pod Security refusal", c.name)
		case !c.admit && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`)):
			t.Errorf("%s: %v; want a Pod Security refusal", c.name, err)
		}
	}

	// Least privilege, asked of the API server's own authorizer.
	sa := "system:serviceaccount:" + privileged + ":podpath"
	for _, c := range []struct {
		verb, resource, ns string
		allowed            bool
	}{
		{"list", "pods", privileged, true},
		{"watch", "pods", privileged, true},
		{"list", "nodes", "", true},
		{"get", "nodes", "", false}, // the informers list and watch, never get
		{"watch", "nodes", "", true},
		{"list", "pods", restricted, false}, // another namespace's Pods
		{"delete", "pods", privileged, false},
		{"list", "secrets", privileged, false},
		{"patch", "nodes", "", false},
	} {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: sa,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Resource: c.resource, Namespace: c.ns}}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != c.allowed {
			t.Errorf("%s may %s %s in %q: %v; want %v", sa, c.verb, c.resource, c.ns, got.Status.Allowed, c.allowed)
		}
	}
}

func mustRender(t *testing.T, values map[string]any, namespace string) *Release {
	t.Helper()
	r, err := Render(chartDir(t), values, "podpath", namespace)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func createNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name, level string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": level}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		// No controller-manager runs: the namespace stays Terminating until the control plane
		// stops, its objects with it. The delete is what a user would do.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
}

// apply server-side applies every object of r, as Helm 4 installs, with strict field
// validation, and deletes the cluster-scoped ones when the test ends.
func apply(ctx context.Context, t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, r *Release) {
	t.Helper()
	for _, o := range r.Objects {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		} else {
			name := o.GetName()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := dyn.Resource(m.Resource).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("delete %s %s: %v", gvk.Kind, name, err)
				}
			})
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
			FieldManager: "helm", Force: &force, FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Errorf("apply %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// podFrom is the Pod a DaemonSet of r would create on a node, as the DaemonSet controller makes
// it: the template, bound to a node.
func podFrom(t *testing.T, r *Release, daemonSet string) *corev1.Pod {
	t.Helper()
	o := r.Find("DaemonSet", daemonSet)
	if o == nil {
		t.Fatalf("no DaemonSet %s rendered", daemonSet)
	}
	ds := typed[appsv1.DaemonSet](t, o)
	pod := &corev1.Pod{ObjectMeta: *ds.Spec.Template.ObjectMeta.DeepCopy(), Spec: *ds.Spec.Template.Spec.DeepCopy()}
	pod.Name = daemonSet + "-probe"
	pod.Spec.NodeName = "node1" // no such node: admission does not look
	return pod
}
