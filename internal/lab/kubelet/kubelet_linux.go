package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"podpath/internal/lab"
)

// Bounds of the kubelet's work.
const (
	apiTimeout        = 10 * time.Second // one call to the API server
	registerTimeout   = 30 * time.Second // registering every node at Start
	heartbeatInterval = 10 * time.Second // Lease and Ready condition, as a kubelet renews them
	stopGrace         = 3 * time.Second  // SIGTERM to SIGKILL when the kubelet itself stops
)

// Options say which lab the kubelet serves and how.
type Options struct {
	Lab      *lab.Lab  // a running lab
	Binary   string    // the podpath executable run for podpath agent containers
	NotReady []string  // nodes registered with Ready=False and no heartbeat: their kubelet is "dead" (runs nothing, finalizes nothing)
	Cordoned []string  // nodes registered with spec.unschedulable=true
	Log      io.Writer // optional: one line per action, for test logs
	// Dynamic, when set, makes calico-node Pods act on the lab as Felix
	// does when they start: the cluster's configured Pod MTU goes to the
	// node's tunnel, and new Pods get it (an MTU fix can be verified).
	Dynamic dynamic.Interface
	// APIServer is the API server's host:port as the kubelet's host
	// reaches it; "" takes it from the client given to Start (a
	// client-go Clientset's URL). Every network namespace a container runs
	// in gets a forwarder to it on 127.0.0.1:443, which the containers'
	// KUBERNETES_SERVICE_HOST/PORT name: they reach the API server as
	// in-cluster clients do.
	APIServer string
}

// Kubelet is a running lab kubelet.
type Kubelet struct {
	cs      kubernetes.Interface
	opts    Options
	nodes   map[string]*node
	root    string // per-Pod directories live here
	version string // reported as the nodes' kubelet version
	started time.Time

	ctx     context.Context // cancelled by Stop
	cancel  context.CancelFunc
	factory informers.SharedInformerFactory
	pods    corelisters.PodLister // the watch's copies
	slots   *slots
	fwd     *forwarders    // API server forwarders, one per namespace in use
	wg      sync.WaitGroup // heartbeats and Pod workers

	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	finished map[types.UID]bool // Pods whose worker is done: late events must not revive them

	logMu    sync.Mutex
	stopOnce sync.Once
}

// node is a lab node as the kubelet serves it.
type node struct {
	spec     *lab.Node
	prefix   netip.Prefix // the node's underlay address with its subnet's length
	ready    bool         // false: a dead kubelet, registered NotReady and never heard from again
	cordoned bool
}

// Start registers the lab's nodes and serves the Pods bound to them until
// Stop. ctx bounds Start only; the kubelet runs until Stop. Give it a
// client of its own: it writes every Pod's status, and a shared client's
// rate limit (client-go's default is 5 requests/s) slows everyone; a real
// kubelet's is 50/s, burst 100.
func Start(ctx context.Context, cs kubernetes.Interface, opts Options) (*Kubelet, error) {
	if opts.Lab == nil {
		return nil, errors.New("lab kubelet: no lab")
	}
	if opts.Binary == "" {
		return nil, errors.New("lab kubelet: no podpath binary to run agents with")
	}
	k := &Kubelet{cs: cs, opts: opts, nodes: map[string]*node{}, slots: newSlots(), started: time.Now(),
		workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{}}
	spec := &opts.Lab.Spec
	for _, names := range [][]string{opts.NotReady, opts.Cordoned} {
		for _, name := range names {
			if _, err := spec.Node(name); err != nil {
				return nil, fmt.Errorf("lab kubelet: %w", err)
			}
		}
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		k.nodes[n.Name] = &node{spec: n,
			prefix:   netip.PrefixFrom(n.Address, spec.Subnets[n.Subnet].Prefix.Bits()),
			ready:    !slices.Contains(opts.NotReady, n.Name),
			cordoned: slices.Contains(opts.Cordoned, n.Name)}
	}
	target, err := apiServerAddr(cs, opts)
	if err != nil {
		return nil, fmt.Errorf("lab kubelet: %w", err)
	}
	k.fwd = newForwarders(target, k.logf)
	k.version = serverVersion(ctx, cs)

	root, err := os.MkdirTemp("", "podpath-kubelet-")
	if err != nil {
		return nil, fmt.Errorf("lab kubelet: %w", err)
	}
	// Agents may run as another user (runAsUser): they must reach their files.
	if err := os.Chmod(root, 0o755); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("lab kubelet: %w", err)
	}
	k.root = root
	k.ctx, k.cancel = context.WithCancel(context.WithoutCancel(ctx))

	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	for _, n := range k.sortedNodes() {
		if err := k.register(rctx, n); err != nil {
			k.Stop()
			return nil, fmt.Errorf("lab kubelet: register %s: %w", n.spec.Name, err)
		}
	}
	for _, n := range k.sortedNodes() {
		if n.ready {
			k.wg.Add(1)
			go k.heartbeat(n)
		}
	}
	if err := k.watchPods(rctx); err != nil {
		k.Stop()
		return nil, fmt.Errorf("lab kubelet: %w", err)
	}
	return k, nil
}

func (k *Kubelet) sortedNodes() []*node {
	var out []*node
	for i := range k.opts.Lab.Spec.Nodes {
		out = append(out, k.nodes[k.opts.Lab.Spec.Nodes[i].Name])
	}
	return out
}

// watchPods serves every Pod bound to a node: the informer's handlers only
// hand events to per-Pod workers, never block.
func (k *Kubelet) watchPods(ctx context.Context) error {
	k.factory = informers.NewSharedInformerFactoryWithOptions(k.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }))
	inf := k.factory.Core().V1().Pods().Informer()
	k.pods = k.factory.Core().V1().Pods().Lister()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.onPod(obj) },
		UpdateFunc: func(_, obj any) { k.onPod(obj) },
		DeleteFunc: k.onPodGone,
	}); err != nil {
		return fmt.Errorf("watch Pods: %w", err)
	}
	k.factory.Start(k.ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("watch Pods: cache not synced: %w", context.Cause(ctx))
	}
	return nil
}

// Stop stops the watch and the heartbeats and ends every process the
// kubelet started (SIGTERM, then SIGKILL) and its API server forwarders,
// then removes its files. It does
// not delete the Node objects: a test's control plane goes away with the
// test, and a node that stops reporting is what a dead kubelet looks like.
// Idempotent.
func (k *Kubelet) Stop() {
	k.stopOnce.Do(func() {
		if k.cancel != nil {
			k.cancel()
		}
		if k.factory != nil {
			k.factory.Shutdown()
		}
		k.wg.Wait()
		if k.fwd != nil {
			k.fwd.closeAll() // each worker released its own: none should be left
		}
		if k.root != "" {
			_ = os.RemoveAll(k.root)
		}
	})
}

// logf writes one line to the optional log.
func (k *Kubelet) logf(format string, a ...any) {
	if k.opts.Log == nil {
		return
	}
	k.logMu.Lock()
	defer k.logMu.Unlock()
	// Time since Start: test logs read as a timeline.
	fmt.Fprintf(k.opts.Log, "kubelet +%.3fs: "+format+"\n", append([]any{time.Since(k.started).Seconds()}, a...)...)
}

// podName names a Pod in log lines.
func podName(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
