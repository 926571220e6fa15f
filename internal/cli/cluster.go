//go:build !agentonly

package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
	"podpath/internal/model"
	"podpath/internal/plan"
	"podpath/internal/safefile"
	"podpath/internal/version"
)

// Bounds of the cluster source.
const (
	APICallTimeout     = 15 * time.Second // one discovery or deploy call
	DefaultWaitTimeout = deploy.DefaultWaitTimeout
)

// kubeFlags select a cluster as kubectl does, and how to deploy the agents.
type kubeFlags struct {
	config *genericclioptions.ConfigFlags
	image  string
	wait   time.Duration
	// check, when set, runs on the discovered cluster before anything is
	// deployed: a command's own refusals (fix: its RBAC) leave nothing.
	check func(context.Context, kubernetes.Interface, *kube.Cluster) error
}

func (k *kubeFlags) register(c *cobra.Command) {
	k.config = genericclioptions.NewConfigFlags(true)
	k.config.AddFlags(c.Flags())
	if ns := c.Flags().Lookup("namespace"); ns != nil {
		ns.Usage = "namespace podpath creates for this run's agents and deletes afterwards (default podpath-<run id>; must not exist)"
	}
	c.Flags().StringVar(&k.image, "image", DefaultImage(), "podpath image the agents run (cluster mode)")
	c.Flags().DurationVar(&k.wait, "wait-timeout", DefaultWaitTimeout, "how long to wait for the agents to be ready (cluster mode; more than 0)")
}

// positiveDuration refuses a duration flag's value of 0 or less.
func positiveDuration(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s %s: must be more than 0, e.g. 30s or 2m", flag, d)
	}
	return nil
}

// configured says whether kubectl's flags, $KUBECONFIG or ~/.kube/config
// name a cluster at all.
func (k *kubeFlags) configured() bool {
	if k.config.APIServer != nil && *k.config.APIServer != "" {
		return true
	}
	raw, err := k.config.ToRawKubeConfigLoader().RawConfig()
	return err == nil && len(raw.Contexts) > 0
}

// DefaultImage is the agent image of this build.
func DefaultImage() string { return version.Image() }

// source is what a command measures: the agents as an inventory, how to
// reach them, and what to undo at the end.
type source struct {
	inv       *inventory.Inventory
	token     string
	connect   func(plan.Endpoint) *agent.Client // nil: dial directly
	cluster   *kube.Cluster                     // nil for an inventory file
	namespace string                            // the run's, in a cluster
	close     func()                            // removes what the run deployed
	cs        kubernetes.Interface              // the cluster's clients (nil for an inventory file)
	dyn       dynamic.Interface
}

// openCluster discovers the cluster, checks RBAC, deploys the agents and
// waits for them. Everything it created is removed by close, and by
// openCluster itself when it fails or is interrupted.
func openCluster(ctx context.Context, k *kubeFlags, prog *progress) (*source, error) {
	if err := positiveDuration("wait-timeout", k.wait); err != nil {
		return nil, err
	}
	cfg, err := restConfig(k.config)
	if err != nil {
		return nil, err
	}
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
	// Reachability and RBAC first, silently: a run that cannot work fails
	// with one line and leaves nothing.
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("cannot reach the API server at %s: %s", cfg.Host, shortAPIError(err))
	}
	if err := deploy.CheckAccess(ctx, cs); err != nil {
		return nil, err
	}
	prog.say("podpath: reading the cluster at %s…", cfg.Host)
	cl, err := kube.Discover(ctx, cs, dyn)
	if err != nil {
		return nil, fmt.Errorf("discover the cluster: %w", err)
	}
	if k.check != nil {
		if err := k.check(ctx, cs, cl); err != nil {
			return nil, err
		}
	}
	var notReady []string
	for _, n := range cl.Nodes {
		if !n.Ready {
			notReady = append(notReady, n.Name)
		}
	}
	if len(cl.Nodes)-len(notReady) < 2 {
		return nil, fmt.Errorf("%d of %d nodes are Ready: cross-node traffic needs two", len(cl.Nodes)-len(notReady), len(cl.Nodes))
	}
	// -n names the run's own namespace; the kubeconfig context's namespace
	// is not one podpath may create or delete.
	ns := *k.config.Namespace
	if ns != "" {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			return nil, fmt.Errorf("namespace %s exists: podpath creates its own namespace for a run and deletes it afterwards; name one that does not exist, or leave -n out", ns)
		}
	}
	if err := removeLeftovers(ctx, cs, prog); err != nil {
		return nil, err
	}
	run, err := deploy.NewRun(cs, dyn, cs.Discovery(), deploy.Options{Image: k.image, Namespace: ns, Exclude: notReady})
	if err != nil {
		return nil, err
	}
	prog.say("podpath: deploying agents (namespace %s, image %s)…", run.Namespace, run.Image)
	if err := run.Install(ctx); err != nil {
		return nil, err
	}
	cleanup := func() {
		prog.say("podpath: removing the agents (namespace %s)…", run.Namespace)
		if err := run.Cleanup(context.WithoutCancel(ctx)); err != nil {
			prog.say("podpath: warning: %v", err)
		}
	}
	src, err := agentsSource(ctx, run, cfg, cl, k.wait, prog)
	if err != nil {
		cleanup()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while waiting for the agents; removed namespace %s", run.Namespace)
		}
		return nil, err
	}
	src.close, src.cs, src.dyn = cleanup, cs, dyn
	return src, nil
}

// agentsSource waits for the run's agents and describes them as an
// inventory reached through the API server's Pod proxy.
func agentsSource(ctx context.Context, run *deploy.Run, cfg *rest.Config, cl *kube.Cluster, wait time.Duration, prog *progress) (*source, error) {
	prog.say("podpath: waiting up to %s for the agents to be ready…", wait)
	if err := run.Wait(ctx, wait); err != nil {
		return nil, err
	}
	agents, err := run.Agents(ctx)
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
	byNode := map[string]*inventory.Node{}
	for _, n := range cl.Nodes {
		if !n.Ready {
			continue
		}
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: n.Name, Address: n.InternalIP})
	}
	for i := range inv.Nodes {
		byNode[inv.Nodes[i].Name] = &inv.Nodes[i]
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].Pod < agents[j].Pod })
	for _, a := range agents {
		n := byNode[a.Node]
		if n == nil || !a.Ready || a.IP == "" {
			continue
		}
		addr := net.JoinHostPort(a.IP, port)
		if a.Host {
			n.Agent = addr
			if n.Address == "" {
				n.Address = a.IP
			}
			podOf[n.Name] = a.Pod
		} else {
			n.Pods = append(n.Pods, inventory.Pod{Name: a.Pod, Address: a.IP, Agent: addr})
			podOf[a.Pod] = a.Pod
		}
	}
	base := strings.TrimSuffix(cfg.Host, "/") + cfg.APIPath
	connect := func(e plan.Endpoint) *agent.Client {
		url := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s:%s/proxy", strings.TrimSuffix(base, "/"), run.Namespace, podOf[e.Name()], port)
		return agent.NewProxyClient(e.Name(), e.Agent, url, run.Token, hc)
	}
	return &source{inv: inv, token: run.Token, connect: connect, cluster: cl, namespace: run.Namespace}, nil
}

// removeLeftovers deletes what an earlier, killed run left (its host agents
// would hold the agent port) and waits until it is gone. Runs against one
// cluster do not overlap: the port is the host's.
func removeLeftovers(ctx context.Context, cs kubernetes.Interface, prog *progress) error {
	sel := deploy.RunSelector
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("look for an earlier run's leftovers: %w", err)
	}
	if len(list.Items) == 0 {
		return nil
	}
	live, leftover, err := deploy.SortRuns(ctx, cs, list.Items, func(msg string) { prog.say("podpath: %s", msg) })
	if err != nil {
		return fmt.Errorf("look for an earlier run's leftovers: %w", err)
	}
	if len(live) > 0 {
		return &deploy.LiveRunError{Namespaces: live}
	}
	prog.say("podpath: removing what an interrupted run left: namespace %s…", strings.Join(leftover, ", "))
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

// shortAPIError keeps the part of a client error a user acts on.
func shortAPIError(err error) string {
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

// config is what the report says about the configuration it used.
func (s *source) config() *model.Config {
	c := &model.Config{Source: "inventory"}
	if s.inv.Network != nil {
		n := s.inv.Network
		c.Install, c.Backend, c.PodMTU, c.PodCIDR, c.Sources = n.Install, n.Backend, n.PodMTU, n.PodCIDR, n.Sources
	}
	if s.cluster == nil {
		return c
	}
	c.Source, c.CNI, c.Namespace = "cluster", s.cluster.CNI.Name, s.namespace
	if cal := s.cluster.Calico; cal != nil {
		c.LogErrors = cal.LogErrors
		if cal.LogsUnavailable != "" {
			c.Notes = append(c.Notes, cal.LogsUnavailable)
		}
		if c.Backend == "bgp" || len(cal.BGP.Peers) > 0 {
			mesh := "on (default)"
			if cal.BGP.NodeMesh != nil && !*cal.BGP.NodeMesh {
				mesh = "off"
			}
			c.Notes = append(c.Notes, fmt.Sprintf("BGP: node-to-node mesh %s, AS %d, %d BGPPeer(s) %s", mesh, cal.BGP.ASNumber, len(cal.BGP.Peers), strings.Join(cal.BGP.Peers, ", ")))
		}
		for _, n := range s.cluster.Nodes {
			if n.Ready && len(cal.Blocks) > 0 && len(cal.Blocks[n.Name]) == 0 {
				c.Notes = append(c.Notes, fmt.Sprintf("node %s has no Pod address block (no BlockAffinity): Calico has not set it up yet", n.Name))
			}
		}
	}
	for _, n := range s.cluster.Nodes {
		if !n.Ready {
			c.NotReady = append(c.NotReady, n.Name)
		}
		if n.Cordoned {
			c.Cordoned = append(c.Cordoned, n.Name)
		}
	}
	return c
}

// restConfig is kf.ToRESTConfig with the mistakes client-go reports
// badly, or not at all, caught first with a line saying what to do: a
// device or FIFO named as the kubeconfig (client-go would read /dev/zero
// until the machine runs out of memory), $KUBECONFIG naming only files
// that do not exist and a kubeconfig without a current context (both end
// in "cannot reach localhost:8080" otherwise).
func restConfig(kf *genericclioptions.ConfigFlags) (*rest.Config, error) {
	var files []string
	explicit := kf.KubeConfig != nil && *kf.KubeConfig != ""
	switch env := os.Getenv("KUBECONFIG"); {
	case explicit:
		files = []string{*kf.KubeConfig}
	case env != "":
		files = filepath.SplitList(env)
	default:
		if home, err := os.UserHomeDir(); err == nil {
			files = []string{filepath.Join(home, ".kube", "config")}
		}
	}
	found := 0
	for _, f := range files {
		if f == "" {
			continue
		}
		err := safefile.Check(f, MaxKubeconfigBytes)
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		found++
	}
	if found == 0 && os.Getenv("KUBECONFIG") != "" && !explicit {
		return nil, fmt.Errorf("kubeconfig: none of the files $KUBECONFIG names exists (%s): fix $KUBECONFIG or give --kubeconfig", os.Getenv("KUBECONFIG"))
	}
	// --server names the cluster without any context; so may --context.
	if found > 0 && (kf.Context == nil || *kf.Context == "") && (kf.APIServer == nil || *kf.APIServer == "") {
		raw, err := kf.ToRawKubeConfigLoader().RawConfig()
		if err == nil && raw.CurrentContext == "" {
			return nil, fmt.Errorf("kubeconfig has no current context: give --context, or set one with kubectl config use-context")
		}
	}
	cfg, err := kf.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (check --kubeconfig or $KUBECONFIG; --inventory measures without API access)", err)
	}
	return cfg, nil
}
