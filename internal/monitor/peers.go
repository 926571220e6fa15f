package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watcher finds the peers of an agent: the Pods of its own DaemonSet, by
// watching the API server (one LIST, then a WATCH per kind, as every
// controller does; never polling). A peer counts once its Pod has been
// Ready for the warm-up and while its node is Ready and schedulable: a
// cordoned or failing node is being drained or repaired, and probing it
// would only raise alarms about work in progress.
type Watcher struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  string // labels of the DaemonSet's Pods
	Port      int    // the agents' probe port
	Warmup    time.Duration
	Logger    *slog.Logger

	out chan []Peer
}

// Updates is the channel Run publishes peer sets on (the latest one; a
// slow reader never sees a stale set).
func (w *Watcher) Updates() <-chan []Peer {
	if w.out == nil {
		w.out = make(chan []Peer, 1)
	}
	return w.out
}

// Run watches until ctx ends. The informers' goroutines are gone when it
// returns. A lost API server (restart, network) is the reflectors'
// business: they relist and rewatch with back-off while the monitor goes
// on probing the last known peers.
func (w *Watcher) Run(ctx context.Context) error {
	sel, err := labels.Parse(w.Selector)
	if err != nil {
		return fmt.Errorf("peer selector %q: %w", w.Selector, err)
	}
	w.Updates()
	out := w.out
	now := time.Now
	logger := w.Logger
	if logger == nil {
		logger = slog.Default()
	}
	podFactory := informers.NewSharedInformerFactoryWithOptions(w.Client, 0, informers.WithNamespace(w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	nodeFactory := informers.NewSharedInformerFactory(w.Client, 0)
	pods := podFactory.Core().V1().Pods()
	nodes := nodeFactory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	// The caches hold only what Peers reads: a Node's status lists its
	// images and a Pod carries its whole spec, which on 5,000 nodes would
	// cost the agent tens of MiB for nothing.
	if err := pods.Informer().SetTransform(Slim); err != nil {
		return fmt.Errorf("watch peer Pods: %w", err)
	}
	if err := nodes.Informer().SetTransform(Slim); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	if _, err := pods.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch peer Pods: %w", err)
	}
	if _, err := nodes.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer podFactory.Shutdown()
	defer nodeFactory.Shutdown()
	for _, ok := range podFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil // ctx ended first
		}
	}
	for _, ok := range nodeFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil
		}
	}
	var last []Peer
	first := true
	for {
		set, wake := Peers(slims[*PeerPod](pods.Informer().GetStore()), slims[*PeerNode](nodes.Informer().GetStore()), w.Port, w.Warmup, now())
		if first || !slices.Equal(set, last) {
			logger.Info("peers", "count", len(set))
			select {
			case <-out: // drop the unread older set
			default:
			}
			out <- set
			last, first = set, false
		}
		var warm <-chan time.Time
		if !wake.IsZero() {
			// A Pod finishes its warm-up without any event: look again then.
			warm = time.After(wake.Sub(now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-warm:
		}
	}
}

// Peers picks the peers from the DaemonSet's Pods: Ready for warmup at
// now, not being deleted, with an address, on a Ready and schedulable
// node. wake is when a Pod still warming up will count (zero: none).
func Peers(pods []*PeerPod, nodes []*PeerNode, port int, warmup time.Duration, now time.Time) (peers []Peer, wake time.Time) {
	usable := map[string]bool{}
	for _, n := range nodes {
		usable[n.Name] = n.Ready && !n.Unschedulable
	}
	seen := map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.PodIP == "" || !usable[p.NodeName] || seen[p.NodeName] || !p.Ready {
			continue
		}
		if at := p.ReadySince.Add(warmup); at.After(now) {
			if wake.IsZero() || at.Before(wake) {
				wake = at
			}
			continue
		}
		seen[p.NodeName] = true
		peers = append(peers, Peer{Name: p.NodeName, Address: net.JoinHostPort(p.PodIP, strconv.Itoa(port))})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return peers, wake
}

// PeerPod is what the watch keeps of an agent Pod: a Pod object costs
// over a KiB even empty, and 5,000 of them would be most of the agent's
// memory.
type PeerPod struct {
	metav1.ObjectMeta // name, namespace, UID, resource version, deletion only
	NodeName          string
	PodIP             string
	Ready             bool
	ReadySince        time.Time
}

// PeerNode is what the watch keeps of a Node.
type PeerNode struct {
	metav1.ObjectMeta
	Ready         bool
	Unschedulable bool
}

// The informers' caches hold runtime.Objects.
func (p *PeerPod) GetObjectKind() schema.ObjectKind  { return schema.EmptyObjectKind }
func (n *PeerNode) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (p *PeerPod) DeepCopyObject() runtime.Object {
	c := *p
	p.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}
func (n *PeerNode) DeepCopyObject() runtime.Object {
	c := *n
	n.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// Slim turns a Pod or Node into a PeerPod or PeerNode, as an informer
// transform (anything else, such as a deletion tombstone, passes as is).
func Slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		p := &PeerPod{ObjectMeta: slimMeta(o.ObjectMeta), NodeName: o.Spec.NodeName, PodIP: o.Status.PodIP}
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.PodReady {
				p.Ready, p.ReadySince = c.Status == corev1.ConditionTrue, c.LastTransitionTime.Time
			}
		}
		return p, nil
	case *corev1.Node:
		n := &PeerNode{ObjectMeta: slimMeta(o.ObjectMeta), Unschedulable: o.Spec.Unschedulable}
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.NodeReady {
				n.Ready = c.Status == corev1.ConditionTrue
			}
		}
		return n, nil
	}
	return obj, nil
}

// slims lists a cache's objects of type T.
func slims[T any](store cache.Store) []T {
	var out []T
	for _, o := range store.List() {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// slimMeta keeps what the informer's cache and Peers need: identity,
// version (for the watch) and deletion.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp}
}
