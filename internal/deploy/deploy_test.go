package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"podpath/internal/kubetest"
)

func TestRenderIsValidAndLabelled(t *testing.T) {
	out, err := Render("abcd1234", "podpath-abcd1234", "podpath:test", "tok")
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "\n---\n")
	if len(docs) != 5 {
		t.Fatalf("%d documents; want 5 (namespace, service account, secret, two DaemonSets)", len(docs))
	}
	for i, d := range docs {
		if !strings.Contains(d, `podpath.io/run: "abcd1234"`) || !strings.Contains(d, "app.kubernetes.io/managed-by: podpath") {
			t.Errorf("document %d lacks the run's labels:\n%s", i, d)
		}
	}
}

// Against the real API server with its controllers: the objects are
// created, the Pod-network agent passes the "restricted" Pod Security level
// (and the host agent, which needs more, does not), Wait is bounded and says
// what is pending, and Cleanup leaves no object behind.
func TestInstallWaitCleanup(t *testing.T) {
	env := kubetest.Start(t, true)
	cs := kubernetes.NewForConfigOrDie(env.Config)
	dyn := dynamic.NewForConfigOrDie(env.Config)
	dc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"kubernetes.io/os": "linux"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run, err := NewRun(cs, dyn, dc, Options{Image: "podpath:test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Install(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"podpath-host", "podpath-pod"} {
		if _, err := cs.AppsV1().DaemonSets(run.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("DaemonSet %s: %v", name, err)
		}
	}

	// Pod Security: the Pod-network agent's Pod in a restricted namespace.
	restricted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "psa-restricted",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, restricted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podpath-agent", Namespace: "psa-restricted"}}
	if _, err := cs.CoreV1().ServiceAccounts("psa-restricted").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ds    string
		admit bool
	}{{"podpath-pod", true}, {"podpath-host", false}} {
		ds, err := cs.AppsV1().DaemonSets(run.Namespace).Get(ctx, c.ds, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "psa-restricted"}, Spec: ds.Spec.Template.Spec}
		_, err = cs.CoreV1().Pods("psa-restricted").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if admitted := err == nil; admitted != c.admit {
			t.Errorf("%s's Pod under the restricted level: admitted=%v (%v); want %v", c.ds, admitted, err, c.admit)
		}
	}

	// No kubelet runs here: the agents are scheduled but never become ready,
	// and Wait says so in time.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		ds, err := cs.AppsV1().DaemonSets(run.Namespace).Get(ctx, "podpath-host", metav1.GetOptions{})
		if err == nil && ds.Status.DesiredNumberScheduled == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DaemonSet controller never scheduled podpath-host on node1")
		}
	}
	start := time.Now()
	err = run.Wait(ctx, 3*time.Second)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "podpath-host 0/1 ready") {
		t.Errorf("Wait = %v; want a NotReadyError naming podpath-host 0/1", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Wait with a 3 s timeout took %s", d)
	}

	// The Service checks' Services: a NodePort, the same node port for UDP
	// and TCP, and an EndpointSlice naming the one backend; refused to a
	// user without the rights, with the error the run goes on after.
	svcs, err := run.CreateServices(ctx, []Backend{{Node: "node1", Pod: "podpath-pod-a", IP: "10.233.64.5"}, {Node: "node2", Pod: "podpath-pod-b", IP: "10.233.64.70"}})
	if err != nil || len(svcs) != 2 {
		t.Fatalf("CreateServices: %v, %+v", err, svcs)
	}
	for _, sv := range svcs {
		name := strings.TrimPrefix(sv.Name, run.Namespace+"/")
		got, err := cs.CoreV1().Services(run.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.Type != corev1.ServiceTypeNodePort || len(got.Spec.Ports) != 2 || got.Spec.Ports[0].NodePort != got.Spec.Ports[1].NodePort ||
			int(got.Spec.Ports[0].NodePort) != sv.NodePort || sv.Address != got.Spec.ClusterIP+":7946" {
			t.Errorf("Service %s: %+v; ServiceOf %+v; want a NodePort, one node port for UDP and TCP", name, got.Spec, sv)
		}
		slice, err := cs.DiscoveryV1().EndpointSlices(run.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(slice.Endpoints) != 1 || slice.Endpoints[0].Addresses[0] != sv.IP || slice.Labels["kubernetes.io/service-name"] != name {
			t.Errorf("EndpointSlice %s: %+v, %v; want %s alone", name, slice, err, sv.IP)
		}
	}
	bob := &Run{ID: run.ID, Namespace: run.Namespace, cs: kubernetes.NewForConfigOrDie(userConfig(t, env, "bob"))}
	if _, err := bob.CreateServices(ctx, []Backend{{Node: "node1", Pod: "p", IP: "10.233.64.5"}}); !errors.Is(err, ErrServicesForbidden) {
		t.Errorf("CreateServices as a user without rights: %v; want ErrServicesForbidden", err)
	}

	// The DNS checks' large name: a headless Service without a selector,
	// its slice listing LargeDNSRecords documentation addresses.
	name, err := run.CreateLargeDNSName(ctx)
	if err != nil {
		t.Fatalf("CreateLargeDNSName: %v", err)
	}
	headless, err := cs.CoreV1().Services(run.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || headless.Spec.Selector != nil || headless.Labels[RunLabel] != run.ID {
		t.Errorf("large name's Service: %+v, %v; want headless, no selector, the run's", headless, err)
	}
	slice, err := cs.DiscoveryV1().EndpointSlices(run.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(slice.Endpoints) != LargeDNSRecords || slice.Endpoints[0].Addresses[0] != "192.0.2.1" || slice.Labels["kubernetes.io/service-name"] != name {
		t.Errorf("large name's EndpointSlice: %v; want %d addresses from 192.0.2.1", err, LargeDNSRecords)
	}
	if _, err := bob.CreateLargeDNSName(ctx); !errors.Is(err, ErrServicesForbidden) {
		t.Errorf("CreateLargeDNSName as a user without rights: %v; want ErrServicesForbidden", err)
	}

	if err := run.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, run.Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there 60 s after cleanup", run.Namespace)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "psa-restricted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if left := env.Labelled(t, ManagedByLabel+"="+ManagedBy); len(left) > 0 {
		t.Errorf("objects labelled by podpath left after cleanup: %v", left)
	}
}

// userConfig is a client configuration for user, who has no role.
func userConfig(t *testing.T, env *kubetest.Env, user string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.UserKubeconfig(t, user))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A dual-stack Pod's IPv6 address is its second IP; none on a single-stack
// or IPv6-first Pod.
func TestSecondIPv6(t *testing.T) {
	pod := func(ips ...string) *corev1.Pod {
		p := &corev1.Pod{}
		if len(ips) > 0 {
			p.Status.PodIP = ips[0]
		}
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		return p
	}
	for _, tc := range []struct {
		ips  []string
		want string
	}{
		{[]string{"10.233.64.2", "fd85:ee78:d8a6:8607::1:2"}, "fd85:ee78:d8a6:8607::1:2"},
		{[]string{"10.233.64.2"}, ""},
		{[]string{"fd85:ee78:d8a6:8607::1:2", "10.233.64.2"}, ""}, // IPv6 first: one pass, IPv6's
		{nil, ""},
	} {
		if got := secondIPv6(pod(tc.ips...)); got != tc.want {
			t.Errorf("%v: %q; want %q", tc.ips, got, tc.want)
		}
	}
}
