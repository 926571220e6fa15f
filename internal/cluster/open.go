package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
	"podpath/internal/plan"
)

// APICallTimeout bounds one discovery or deploy call.
const APICallTimeout = 15 * time.Second

// Options is how Open deploys a run.
type Options struct {
	Image string
	// Namespace is the run's own, created and deleted by it; "" names one
	// podpath-<run id>. One that exists is refused.
	Namespace string
	Wait      time.Duration // for the agents to be Ready
	// Check runs on the discovered cluster before anything is deployed: a
	// command's own refusals (fix: its RBAC) leave nothing.
	Check func(context.Context, kubernetes.Interface, *kube.Cluster) error
	// Say hears each step as it starts; nil: nothing is said.
	Say func(format string, a ...any)
}

func (o Options) say(format string, a ...any) {
	if o.Say != nil {
		o.Say(format, a...)
	}
}

// Open discovers the cluster, checks RBAC, deploys the agents and waits
// for them. Everything it created is removed by Close, and by Open itself
// when it fails or is interrupted.
func Open(ctx context.Context, cfg *rest.Config, o Options) (*Session, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{} // the run's objects are podpath's own; their warnings are no news to the user
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100 // kubectl's rate: the RBAC check alone makes 19 calls
	}
	calls := rest.CopyConfig(cfg)
	calls.Timeout = APICallTimeout
	cs, err := kubernetes.NewForConfig(calls)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(calls)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cl, notReady, err := discover(ctx, cfg.Host, cs, dyn, o)
	if err != nil {
		return nil, err
	}
	run, err := deploy.NewRun(cs, dyn, cs.Discovery(), deploy.Options{Image: o.Image, Namespace: o.Namespace, Exclude: notReady})
	if err != nil {
		return nil, err
	}
	o.say("podpath: deploying agents (namespace %s, image %s)…", run.Namespace, run.Image)
	if err := run.Install(ctx); err != nil {
		return nil, err
	}
	undo := func() {
		o.say("podpath: removing the agents (namespace %s)…", run.Namespace)
		if err := run.Cleanup(context.WithoutCancel(ctx)); err != nil {
			o.say("podpath: warning: %v", err)
		}
	}
	s, err := agents(ctx, run, cfg, cl, o)
	if err != nil {
		undo()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while waiting for the agents; removed namespace %s", run.Namespace)
		}
		return nil, err
	}
	s.undo, s.Clients, s.Dynamic = undo, cs, dyn
	return s, nil
}

// discover is everything Open checks before it deploys: the API server
// answers, the caller has the rights, two nodes are Ready, the namespace
// is free and no earlier run is in the way. It returns the cluster and its
// nodes that are not Ready.
func discover(ctx context.Context, host string, cs kubernetes.Interface, dyn dynamic.Interface, o Options) (*kube.Cluster, []string, error) {
	// Reachability and RBAC first, silently: a run that cannot work fails
	// with one line and leaves nothing.
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, nil, fmt.Errorf("cannot reach the API server at %s: %s", host, ShortAPIError(err))
	}
	if err := deploy.CheckAccess(ctx, cs); err != nil {
		return nil, nil, err
	}
	o.say("podpath: reading the cluster at %s…", host)
	cl, err := kube.Discover(ctx, cs, dyn)
	if err != nil {
		return nil, nil, fmt.Errorf("discover the cluster: %w", err)
	}
	if o.Check != nil {
		if err := o.Check(ctx, cs, cl); err != nil {
			return nil, nil, err
		}
	}
	var notReady []string
	for _, n := range cl.Nodes {
		if !n.Ready {
			notReady = append(notReady, n.Name)
		}
	}
	if len(cl.Nodes)-len(notReady) < 2 {
		return nil, nil, fmt.Errorf("%d of %d nodes are Ready: cross-node traffic needs two", len(cl.Nodes)-len(notReady), len(cl.Nodes))
	}
	// The namespace is the run's own; the kubeconfig context's namespace
	// is not one podpath may create or delete.
	if ns := o.Namespace; ns != "" {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			return nil, nil, fmt.Errorf("namespace %s exists: podpath creates its own namespace for a run and deletes it afterwards; name one that does not exist, or leave -n out", ns)
		}
	}
	if err := RemoveLeftovers(ctx, cs, o.Say); err != nil {
		return nil, nil, err
	}
	return cl, notReady, nil
}

// agents waits for the run's agents and describes them as an inventory
// reached through the API server's Pod proxy.
func agents(ctx context.Context, run *deploy.Run, cfg *rest.Config, cl *kube.Cluster, o Options) (*Session, error) {
	o.say("podpath: waiting up to %s for the agents to be ready…", o.Wait)
	if err := run.Wait(ctx, o.Wait); err != nil {
		return nil, err
	}
	list, err := run.Agents(ctx)
	if err != nil {
		return nil, err
	}
	proxyCfg := rest.CopyConfig(cfg)
	proxyCfg.Timeout = 0 // each probe call is bounded by its context
	hc, err := rest.HTTPClientFor(proxyCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	port := strconv.Itoa(deploy.AgentPort)
	podOf := map[string]string{} // endpoint name → agent Pod
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind}
	network := cl.Network()
	inv.Network = &network
	for _, n := range cl.Nodes {
		if n.Ready {
			inv.Nodes = append(inv.Nodes, inventory.Node{Name: n.Name, Address: n.InternalIP})
		}
	}
	byNode := map[string]*inventory.Node{}
	for i := range inv.Nodes {
		byNode[inv.Nodes[i].Name] = &inv.Nodes[i]
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Pod < list[j].Pod })
	for _, a := range list {
		n := byNode[a.Node]
		if n == nil || !a.Ready || a.IP == "" {
			continue
		}
		addr := net.JoinHostPort(a.IP, port)
		// A dual-stack cluster's IPv6 addresses: the doctor probes them in
		// a pass of its own (the agents listen on both families).
		if a.Host {
			n.Agent = addr
			if n.Address == "" {
				n.Address = a.IP
			}
			if a.IP == n.Address {
				n.Address6 = a.IP6
			}
			podOf[n.Name] = a.Pod
		} else {
			n.Pods = append(n.Pods, inventory.Pod{Name: a.Pod, Address: a.IP, Address6: a.IP6, Agent: addr})
			podOf[a.Pod] = a.Pod
		}
	}
	services, skipped, err := createServices(ctx, run, inv, o)
	if err != nil {
		return nil, err
	}
	large, dnsSkipped, err := createLargeDNSName(ctx, run, cl, o)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(strings.TrimSuffix(cfg.Host, "/")+cfg.APIPath, "/")
	connect := func(e plan.Endpoint) *agent.Client {
		url := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s:%s/proxy", base, run.Namespace, podOf[e.Name()], port)
		return agent.NewProxyClient(e.Name(), e.Agent, url, run.Token, hc)
	}
	return &Session{Inventory: inv, Token: run.Token, Connect: connect, Cluster: cl, Namespace: run.Namespace,
		Services: services, ServicesSkipped: skipped, ServicesCreated: time.Now(),
		DNS: cl.DNS, DNSLarge: large, DNSSkipped: dnsSkipped}, nil
}

// createLargeDNSName gives the run a name whose DNS answer is large
// (deploy.LargeDNSRecords addresses), for the cluster DNS checks, and
// returns its fully qualified name; or why the DNS checks cannot run.
func createLargeDNSName(ctx context.Context, run *deploy.Run, cl *kube.Cluster, o Options) (string, string, error) {
	switch {
	case cl.DNS == nil:
		return "", "no cluster DNS found (Service kube-system/kube-dns or kube-system/coredns)", nil
	case cl.DNS.Skipped != "":
		return "", cl.DNS.Skipped, nil
	}
	o.say("podpath: creating a name with a large DNS answer…")
	name, err := run.CreateLargeDNSName(ctx)
	if errors.Is(err, deploy.ErrServicesForbidden) {
		return "", err.Error(), nil
	}
	if err != nil {
		return "", "", err
	}
	return name + "." + run.Namespace + ".svc." + cl.DNS.Domain, "", nil
}

// MaxServiceBackends bounds the run's Services: every node's kube-proxy
// is checked as a sender (its DNAT is what a Service needs of it) towards
// a few of them, so a thousand-node cluster needs no thousand Services.
const MaxServiceBackends = 16

// createServices puts a Service in front of the Pod agents of the first
// MaxServiceBackends nodes. A caller not allowed to create Services gets
// a run without the Service checks, and the reason.
func createServices(ctx context.Context, run *deploy.Run, inv *inventory.Inventory, o Options) ([]deploy.ServiceOf, string, error) {
	var backends []deploy.Backend
	for _, n := range inv.Nodes {
		if len(n.Pods) > 0 && len(backends) < MaxServiceBackends {
			backends = append(backends, deploy.Backend{Node: n.Name, Pod: n.Pods[0].Name, IP: n.Pods[0].Address})
		}
	}
	if len(backends) < 2 {
		return nil, "fewer than two nodes have a Pod agent", nil
	}
	o.say("podpath: creating %d Services in front of the Pod agents…", len(backends))
	svcs, err := run.CreateServices(ctx, backends)
	if errors.Is(err, deploy.ErrServicesForbidden) {
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	return svcs, "", nil
}

// RemoveLeftovers deletes what an earlier, killed run left (its host
// agents would hold the agent port) and waits until it is gone. Runs
// against one cluster do not overlap: the port is the host's.
func RemoveLeftovers(ctx context.Context, cs kubernetes.Interface, say func(string, ...any)) error {
	if say == nil {
		say = func(string, ...any) {}
	}
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: deploy.RunSelector})
	if err != nil {
		return fmt.Errorf("look for an earlier run's leftovers: %w", err)
	}
	if len(list.Items) == 0 {
		return nil
	}
	live, leftover, err := deploy.SortRuns(ctx, cs, list.Items, func(msg string) { say("podpath: %s", msg) })
	if err != nil {
		return fmt.Errorf("look for an earlier run's leftovers: %w", err)
	}
	if len(live) > 0 {
		return &deploy.LiveRunError{Namespaces: live}
	}
	say("podpath: removing what an interrupted run left: namespace %s…", strings.Join(leftover, ", "))
	var runs []string
	for _, ns := range list.Items {
		if !slices.Contains(leftover, ns.Name) {
			continue
		}
		if id := ns.Labels[deploy.RunLabel]; id != "" {
			runs = append(runs, id)
		}
		if ns.DeletionTimestamp != nil {
			continue // already going: deleting it again is a conflict
		}
		if err := deploy.DeleteNamespace(ctx, cs, ns.Name); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, deploy.CleanupTimeout)
	defer cancel()
	// Those runs only: a run that starts meanwhile is not waited for.
	return deploy.WaitGone(wctx, cs, fmt.Sprintf("%s in (%s)", deploy.RunLabel, strings.Join(runs, ",")))
}

// RemoveRuns deletes every namespace of a podpath run in the cluster, and
// with them everything the runs created; it returns how many.
func RemoveRuns(ctx context.Context, cfg *rest.Config) (int, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, fmt.Errorf("kubernetes client: %w", err)
	}
	n, err := deploy.DeleteByLabel(ctx, cs, deploy.RunSelector)
	if apierrors.IsForbidden(err) {
		return 0, fmt.Errorf("not allowed to list and delete podpath's namespaces (%s): bind the user to %s", apierrors.ReasonForError(err), deploy.DoctorRole)
	}
	return n, err
}

// ShortAPIError keeps the part of a client error a user acts on.
func ShortAPIError(err error) string {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se.ErrStatus.Message
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no answer within %s", APICallTimeout)
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "dial tcp") {
		return "connection failed: " + msg[i+2:]
	}
	return msg
}
