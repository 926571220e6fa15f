// Package deploy installs podpath's short-lived agents into a cluster for
// one run, waits for them, and removes everything it made: by label, on
// success, failure, timeout and interrupt.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"podpath/internal/kubeobj"
)

// Labels every object of a run carries.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "podpath"
	RunLabel       = "podpath.io/run"
	AgentPort      = 7946
	// RunSelector matches the namespaces of podpath runs: the managed-by
	// label alone could be on someone else's namespace.
	RunSelector = ManagedByLabel + "=" + ManagedBy + "," + RunLabel
)

// Bounds of a deployment.
const (
	DefaultWaitTimeout = 60 * time.Second
	CleanupTimeout     = 30 * time.Second
)

//go:embed manifests/agents.yaml
var agentsYAML string

var agentsTemplate = template.Must(template.New("agents").Parse(agentsYAML))

// Options say what to deploy.
type Options struct {
	Image     string   // the podpath image the agents run
	Namespace string   // default podpath-<run>
	Exclude   []string // nodes that get no agent (NotReady)
}

// Run is one deployment of the agents.
type Run struct {
	ID        string
	Namespace string
	Image     string
	Token     string
	Exclude   []string
	cs        kubernetes.Interface
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	// releaseLease stops renewing the run's Lease (nil: none held).
	releaseLease func()
}

// Render returns the manifests of a run, for review and for Install;
// excluded nodes get no agent.
func Render(id, namespace, image, token string, exclude ...string) ([]byte, error) {
	var b bytes.Buffer
	err := agentsTemplate.Execute(&b, map[string]any{"Run": id, "Namespace": namespace, "Image": image, "Token": token,
		"Port": AgentPort, "Exclude": exclude})
	return b.Bytes(), err
}

// NewRun prepares a run with a fresh ID and token.
func NewRun(cs kubernetes.Interface, dyn dynamic.Interface, dc discovery.DiscoveryInterface, opts Options) (*Run, error) {
	if opts.Image == "" {
		return nil, errors.New("no agent image: give --image")
	}
	id := randomHex(4)
	ns := opts.Namespace
	if ns == "" {
		ns = "podpath-" + id
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return nil, fmt.Errorf("discover the API server's resources: %w", err)
	}
	return &Run{ID: id, Namespace: ns, Image: opts.Image, Token: randomHex(32), Exclude: opts.Exclude, cs: cs, dyn: dyn, mapper: restmapper.NewDiscoveryRESTMapper(groups)}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Install creates the run's objects. On error it removes what it created.
func (r *Run) Install(ctx context.Context) error {
	data, err := Render(r.ID, r.Namespace, r.Image, r.Token, r.Exclude...)
	if err != nil {
		return fmt.Errorf("render agent manifests: %w", err)
	}
	objs, err := kubeobj.Decode(data)
	if err != nil {
		return fmt.Errorf("agent manifests: %w", err)
	}
	for _, obj := range objs {
		if err := r.create(ctx, obj); err != nil {
			return r.fail(ctx, err)
		}
	}
	if err := r.holdLease(ctx); err != nil {
		return r.fail(ctx, err)
	}
	return nil
}

func (r *Run) fail(ctx context.Context, err error) error {
	if cerr := r.Cleanup(context.WithoutCancel(ctx)); cerr != nil {
		return fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
	}
	return err
}

func (r *Run) create(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	if err := kubeobj.Create(ctx, r.dyn, m, obj, "podpath"); err != nil {
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("create %s %s: %w (bind the user to podpath's ClusterRole: deploy/rbac.yaml)", gvk.Kind, obj.GetName(), err)
		}
		return fmt.Errorf("create %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}

// NotReadyError lists the agents that did not become ready in time.
type NotReadyError struct {
	Pending []string
	Timeout time.Duration
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("agents not ready within %s: %s", e.Timeout, strings.Join(e.Pending, "; "))
}

// Wait waits until both DaemonSets have every scheduled Pod ready, or the
// timeout passes; then it names what is still pending.
func (r *Run) Wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var pending []string
		for _, name := range []string{"podpath-host", "podpath-pod"} {
			ds, err := r.cs.AppsV1().DaemonSets(r.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				return fmt.Errorf("read DaemonSet %s: %w", name, err)
			}
			if !dsReady(ds) {
				pending = append(pending, fmt.Sprintf("%s %d/%d ready", name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled))
			}
		}
		if len(pending) == 0 && ctx.Err() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &NotReadyError{Pending: pending, Timeout: timeout}
			}
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func dsReady(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return ds.Generation <= s.ObservedGeneration && s.NumberReady == s.DesiredNumberScheduled && s.NumberUnavailable == 0
}

// Cleanup deletes the run's namespace, and with it everything in it, and
// waits (within CleanupTimeout) until the namespace controller has finished,
// so that nothing of the run is left when the command returns.
func (r *Run) Cleanup(ctx context.Context) error {
	if r.releaseLease != nil {
		r.releaseLease()
		r.releaseLease = nil
	}
	ctx, cancel := context.WithTimeout(ctx, CleanupTimeout)
	defer cancel()
	if _, err := DeleteByLabel(ctx, r.cs, RunLabel+"="+r.ID); err != nil {
		return err
	}
	return WaitGone(ctx, r.cs, RunLabel+"="+r.ID)
}

// WaitGone waits until no namespace matches selector.
func WaitGone(ctx context.Context, cs kubernetes.Interface, selector string) error {
	var names []string // as last seen
	for {
		list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil {
			if len(list.Items) == 0 {
				return nil
			}
			names = names[:0]
			for _, ns := range list.Items {
				names = append(names, ns.Name)
			}
		}
		select {
		case <-ctx.Done():
			if len(names) == 0 {
				names = []string{"(" + selector + ")"}
			}
			return fmt.Errorf("namespace %s still terminating (it finishes once its Pods have stopped; check for NotReady nodes, then `podpath cleanup`)", strings.Join(names, ", "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Agent is one running agent Pod of a run.
type Agent struct {
	Pod, Node, IP string
	// IP6 is its IPv6 address on a dual-stack cluster whose IP is IPv4
	// (the Pod's second IP; a host-network Pod's is its node's).
	IP6   string
	Host  bool // host network (node layer); else the Pod network
	Ready bool
}

// secondIPv6 is a dual-stack Pod's IPv6 address beside its primary IPv4
// one (status.podIPs), "" otherwise.
func secondIPv6(p *corev1.Pod) string {
	first, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !first.Unmap().Is4() {
		return ""
	}
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is6() && !a.Is4In6() {
			return a.String()
		}
	}
	return ""
}

// Agents lists the run's agent Pods.
func (r *Run) Agents(ctx context.Context) ([]Agent, error) {
	pods, err := r.cs.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: RunLabel + "=" + r.ID})
	if err != nil {
		return nil, fmt.Errorf("list agent Pods: %w", err)
	}
	var out []Agent
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		a := Agent{Pod: p.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP, IP6: secondIPv6(&p), Host: p.Spec.HostNetwork}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				a.Ready = true
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// DeleteByLabel deletes podpath's namespaces matching selector and says how
// many: `podpath cleanup` uses it with the managed-by label.
func DeleteByLabel(ctx context.Context, cs kubernetes.Interface, selector string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, CleanupTimeout)
	defer cancel()
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, fmt.Errorf("list podpath namespaces: %w", err)
	}
	n := 0
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil {
			continue // already going
		}
		if err := DeleteNamespace(ctx, cs, ns.Name); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// DeleteNamespace deletes a namespace and, in the background, everything in
// it; one already gone is no error.
func DeleteNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	bg := metav1.DeletePropagationBackground
	err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}
