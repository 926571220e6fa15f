package kubelet

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// confirmTimeout bounds confirming one Pod's deletion, retries included.
const confirmTimeout = 30 * time.Second

// onPod hands a Pod's latest state to its worker, starting one for a Pod
// newly bound to a live lab node.
func (k *Kubelet) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	n := k.nodes[pod.Spec.NodeName]
	if n == nil || !n.ready {
		return // not a lab node, or its kubelet is dead: nothing happens there
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil || k.finished[pod.UID] {
		return
	}
	w := k.workers[pod.UID]
	if w == nil {
		if pod.DeletionTimestamp == nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed) {
			return // over before we saw it
		}
		w = newPodWorker(k, n, pod)
		k.workers[pod.UID] = w
		k.wg.Add(1)
		go w.run()
	}
	if pod.DeletionTimestamp != nil {
		w.terminate(gracePeriod(pod), true)
	}
}

// onPodGone stops the worker of a Pod removed from the API server without
// us (a forced deletion): nothing is left to confirm.
func (k *Kubelet) onPodGone(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	w := k.workers[pod.UID]
	k.mu.Unlock()
	if w != nil {
		w.terminate(gracePeriod(pod), false)
	}
}

// gracePeriod is how long a Pod's processes get between SIGTERM and SIGKILL.
func gracePeriod(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// forget drops a finished worker, remembering the Pod so that a late event
// for it does not start it again.
func (k *Kubelet) forget(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.workers, uid)
	k.finished[uid] = true
}

// confirmDeletion removes a Pod whose processes have ended, as a kubelet
// does: grace 0 with a UID precondition, so a new Pod of the same name is
// never hit. Until this, the Pod (and its namespace) stays Terminating.
func (k *Kubelet) confirmDeletion(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(k.ctx, confirmTimeout)
	defer cancel()
	opts := metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0),
		Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	for {
		cctx, ccancel := context.WithTimeout(ctx, apiTimeout)
		err := k.cs.CoreV1().Pods(pod.Namespace).Delete(cctx, pod.Name, opts)
		ccancel()
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			k.logf("%s: deletion confirmed", podName(pod))
			return
		}
		k.logf("%s: confirm deletion: %v", podName(pod), err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
