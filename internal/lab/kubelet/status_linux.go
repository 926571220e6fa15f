package kubelet

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// podState is what the kubelet knows of a Pod; renderStatus turns it into
// the Pod's status.
type podState struct {
	phase           corev1.PodPhase
	reason, message string // Pod-level, while it cannot run
	hostIP, podIP   netip.Addr
	startTime       metav1.Time
	sandbox         bool // the Pod has its network namespace

	// The first container, or every container when !onlyFirst.
	running, ready bool
	pid            int
	startedAt      metav1.Time
	restarts       int32
	waitReason     string
	waitMessage    string
	lastExit       *corev1.ContainerStateTerminated
	onlyFirst      bool // the other containers are not run: they wait, Unsupported
}

// writeStatus writes st over the Pod's current status through the status
// subresource. It starts from the watch's copy of the Pod, which is
// nearly always current, and reads it afresh only after a conflict: one
// call per change, not two.
func (k *Kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, st podState) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	pods := k.cs.CoreV1().Pods(pod.Namespace)
	cached := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur *corev1.Pod
		if cached {
			cached = false
			if c, err := k.pods.Pods(pod.Namespace).Get(pod.Name); err == nil && c.UID == pod.UID {
				cur = c.DeepCopy()
			}
		}
		if cur == nil {
			var err error
			if cur, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		if cur.UID != pod.UID {
			return fmt.Errorf("replaced by a new Pod of the same name")
		}
		cur.Status = renderStatus(cur, st, metav1.Now())
		_, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update status of %s: %w", podName(pod), err)
	}
	return nil
}

// renderStatus is pod's status with st written over it: what the kubelet
// owns is replaced, the rest (PodScheduled, qosClass) kept.
func renderStatus(pod *corev1.Pod, st podState, now metav1.Time) corev1.PodStatus {
	s := *pod.Status.DeepCopy()
	s.Phase, s.Reason, s.Message = st.phase, st.reason, st.message
	s.HostIP, s.HostIPs = ips(st.hostIP)
	s.PodIP, s.PodIPs = podIPs(st.podIP)
	if !st.startTime.IsZero() {
		s.StartTime = &st.startTime
	}
	falseReason, falseMessage := "ContainersNotReady", "containers with unready status: ["+pod.Spec.Containers[0].Name+"]"
	if st.reason != "" {
		falseReason, falseMessage = st.reason, st.message
	}
	setCondition(&s.Conditions, corev1.PodReadyToStartContainers, st.sandbox, falseReason, falseMessage, now)
	setCondition(&s.Conditions, corev1.PodInitialized, true, "", "", now)
	setCondition(&s.Conditions, corev1.ContainersReady, st.ready && !st.onlyFirstBlocks(pod), falseReason, falseMessage, now)
	setCondition(&s.Conditions, corev1.PodReady, st.ready && !st.onlyFirstBlocks(pod), falseReason, falseMessage, now)
	s.ContainerStatuses = nil
	for i, c := range pod.Spec.Containers {
		if i > 0 && st.onlyFirst {
			s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "Unsupported",
					Message: "the lab kubelet runs only a Pod's first container"}}})
			continue
		}
		s.ContainerStatuses = append(s.ContainerStatuses, containerStatus(c, st))
	}
	return s
}

// onlyFirstBlocks says whether containers the kubelet does not run keep the Pod unready.
func (st podState) onlyFirstBlocks(pod *corev1.Pod) bool {
	return st.onlyFirst && len(pod.Spec.Containers) > 1
}

func containerStatus(c corev1.Container, st podState) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image,
		Ready: st.ready, RestartCount: st.restarts, Started: ptrTo(st.running)}
	if st.running {
		if st.pid != 0 {
			cs.ContainerID = containerID(st.pid)
		}
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: st.startedAt}
	} else {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: st.waitReason, Message: st.waitMessage}
	}
	if st.lastExit != nil {
		cs.LastTerminationState.Terminated = st.lastExit
	}
	return cs
}

// containerID names a container by its process: "lab://PID".
func containerID(pid int) string { return "lab://" + strconv.Itoa(pid) }

func ips(a netip.Addr) (string, []corev1.HostIP) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), []corev1.HostIP{{IP: a.String()}}
}

func podIPs(a netip.Addr) (string, []corev1.PodIP) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), []corev1.PodIP{{IP: a.String()}}
}

// setCondition sets a condition, keeping its transition time while its
// status holds.
func setCondition(conds *[]corev1.PodCondition, typ corev1.PodConditionType, ok bool, reason, message string, now metav1.Time) {
	c := corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: now}
	if !ok {
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, message
	}
	for i := range *conds {
		if (*conds)[i].Type == typ {
			if (*conds)[i].Status == c.Status {
				c.LastTransitionTime = (*conds)[i].LastTransitionTime
			}
			(*conds)[i] = c
			return
		}
	}
	*conds = append(*conds, c)
}
