package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
		podList, _ := pods.Lister().List(labels.Everything())
		nodeList, _ := nodes.Lister().List(labels.Everything())
		set, wake := Peers(podList, nodeList, w.Port, w.Warmup, now())
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
func Peers(pods []*corev1.Pod, nodes []*corev1.Node, port int, warmup time.Duration, now time.Time) (peers []Peer, wake time.Time) {
	usable := map[string]bool{}
	for _, n := range nodes {
		usable[n.Name] = !n.Spec.Unschedulable && nodeReady(n)
	}
	seen := map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || !usable[p.Spec.NodeName] || seen[p.Spec.NodeName] {
			continue
		}
		since, ready := podReadySince(p)
		if !ready {
			continue
		}
		if at := since.Add(warmup); at.After(now) {
			if wake.IsZero() || at.Before(wake) {
				wake = at
			}
			continue
		}
		seen[p.Spec.NodeName] = true
		peers = append(peers, Peer{Name: p.Spec.NodeName, Address: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))})
	}
	slices.SortFunc(peers, func(a, b Peer) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return peers, wake
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReadySince(p *corev1.Pod) (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
		}
	}
	return time.Time{}, false
}

// Slim cuts a Pod or Node down to the fields Peers reads, as an informer
// transform (other objects, such as deletion tombstones, pass unchanged).
func Slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		p := &corev1.Pod{ObjectMeta: slimMeta(o.ObjectMeta)}
		p.Spec.NodeName = o.Spec.NodeName
		p.Status.PodIP = o.Status.PodIP
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.PodReady {
				p.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status, LastTransitionTime: c.LastTransitionTime}}
			}
		}
		return p, nil
	case *corev1.Node:
		n := &corev1.Node{ObjectMeta: slimMeta(o.ObjectMeta)}
		n.Spec.Unschedulable = o.Spec.Unschedulable
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.NodeReady {
				n.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
			}
		}
		return n, nil
	}
	return obj, nil
}

// slimMeta keeps what the informer's cache and Peers need: identity,
// version (for the watch) and deletion.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp}
}
