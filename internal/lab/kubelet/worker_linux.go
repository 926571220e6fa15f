package kubelet

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statusRetry is how soon a failed status write is tried again.
const statusRetry = time.Second

// unsupportedMessage is what a Pod the lab kubelet will not run says.
const unsupportedMessage = "the lab kubelet runs only podpath agents and calico-node"

// podWorker serves one Pod from binding to deletion. One goroutine owns
// its state; others only ask it to terminate.
type podWorker struct {
	k    *Kubelet
	node *node
	pod  *corev1.Pod // as first seen: what the worker reads of a Pod's spec does not change

	ctx    context.Context // cancelled to terminate the Pod, or by Stop
	cancel context.CancelFunc

	mu          sync.Mutex
	terminating bool
	grace       time.Duration
	confirm     bool

	st       podState // the status to report; owned by the worker goroutine
	dirty    bool     // st is not written yet
	apiNetns string   // the namespace whose API server forwarder the worker holds; owned by the worker goroutine
}

func newPodWorker(k *Kubelet, n *node, pod *corev1.Pod) *podWorker {
	w := &podWorker{k: k, node: n, pod: pod}
	w.ctx, w.cancel = context.WithCancel(k.ctx)
	return w
}

// terminate ends the Pod's processes within grace and, with confirm,
// removes the Pod from the API server afterwards. Only the first call counts.
func (w *podWorker) terminate(grace time.Duration, confirm bool) {
	w.mu.Lock()
	if w.terminating {
		w.mu.Unlock()
		return
	}
	w.terminating, w.grace, w.confirm = true, grace, confirm
	w.mu.Unlock()
	w.k.logf("%s: terminating (grace %s)", podName(w.pod), grace)
	w.cancel()
}

// termination says how the worker was stopped: by a deletion (with its
// grace period) or by the kubelet's Stop.
func (w *podWorker) termination() (grace time.Duration, confirm bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.terminating {
		return stopGrace, false
	}
	return w.grace, w.confirm
}

func (w *podWorker) run() {
	defer w.k.wg.Done()
	defer w.k.forget(w.pod.UID)
	switch {
	case w.ctx.Err() != nil:
		// Deleted before we ever ran it: only the confirmation is left.
	case isCalicoNode(w.pod):
		w.k.logf("%s: calico-node on %s: reported running, no process", podName(w.pod), w.node.spec.Name)
		w.k.felixMTU(w.ctx, w.node.spec)
		now := metav1.Now()
		w.runStatic(podState{phase: corev1.PodRunning, hostIP: w.node.spec.Address, podIP: w.node.spec.Address,
			startTime: now, sandbox: true, running: true, ready: true, startedAt: now})
	case isAgent(w.pod):
		w.runAgent()
	default:
		w.k.logf("%s: not a podpath agent or calico-node: left Pending", podName(w.pod))
		w.runStatic(podState{phase: corev1.PodPending, reason: "Unsupported", message: unsupportedMessage,
			hostIP: w.node.spec.Address, waitReason: "Unsupported", waitMessage: unsupportedMessage})
	}
	if _, confirm := w.termination(); confirm && w.k.ctx.Err() == nil {
		w.k.confirmDeletion(w.pod)
	}
}

func isCalicoNode(pod *corev1.Pod) bool { return pod.Labels["k8s-app"] == "calico-node" }

func isAgent(pod *corev1.Pod) bool {
	c := pod.Spec.Containers
	return len(c) > 0 && len(c[0].Args) > 0 && c[0].Args[0] == "agent"
}

// runStatic reports a fixed status until the Pod terminates.
func (w *podWorker) runStatic(st podState) {
	w.set(st)
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.retry():
			w.sync()
		}
	}
}

// set replaces the status to report and writes it.
func (w *podWorker) set(st podState) {
	w.st = st
	w.dirty = true
	w.sync()
}

// sync writes the status if it changed since the last write. A failure is
// logged and retried (see retry): the next write carries the latest state.
func (w *podWorker) sync() {
	if !w.dirty || w.ctx.Err() != nil {
		return
	}
	if err := w.k.writeStatus(w.ctx, w.pod, w.st); err != nil {
		if w.ctx.Err() == nil {
			w.k.logf("%s: status: %v", podName(w.pod), err)
		}
		return
	}
	w.dirty = false
}

// retry fires when an unwritten status should be tried again.
func (w *podWorker) retry() <-chan time.Time {
	if !w.dirty {
		return nil
	}
	return time.After(statusRetry)
}

// sleep waits d unless the Pod terminates first, retrying status writes meanwhile.
func (w *podWorker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-w.retry():
			w.sync()
		}
	}
}
