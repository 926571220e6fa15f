package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Calico's node annotations, as calico-node writes them on a real node; the
// diagnosis reads them.
const (
	annotIPv4Address = "projectcalico.org/IPv4Address"
	annotVXLANAddr   = "projectcalico.org/IPv4VXLANTunnelAddr"
	annotVXLANMAC    = "projectcalico.org/VXLANTunnelMACAddr"
	leaseNamespace   = "kube-node-lease"
	leaseSeconds     = 40 // the kubelet's default lease duration
)

// serverVersion is the API server's version, reported as the kubelet's: a
// kubelet of the control plane's own version is always within skew.
func serverVersion(ctx context.Context, cs kubernetes.Interface) string {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var v version.Info
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err == nil && json.Unmarshal(raw, &v) == nil && v.GitVersion != "" {
		return v.GitVersion
	}
	return "v0.0.0-lab"
}

func ptrTo[T any](v T) *T { return &v }

// register creates the node's Node object, or brings an existing one in
// line, then writes its status and, for a live kubelet, its Lease.
func (k *Kubelet) register(ctx context.Context, n *node) error {
	want := k.nodeObject(n)
	_, err := k.cs.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := k.cs.CoreV1().Nodes().Get(ctx, n.spec.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Labels = merge(cur.Labels, want.Labels)
			cur.Annotations = merge(cur.Annotations, want.Annotations)
			cur.Spec.Unschedulable = want.Spec.Unschedulable
			if cur.Spec.PodCIDR == "" { // immutable once set
				cur.Spec.PodCIDR, cur.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
			}
			_, err = k.cs.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("node object: %w", err)
	}
	if err := k.updateNodeStatus(ctx, n); err != nil {
		return err
	}
	if n.ready {
		if err := k.renewLease(ctx, n); err != nil {
			return err
		}
	}
	k.logf("registered node %s (ready=%v, cordoned=%v)", n.spec.Name, n.ready, n.cordoned)
	return nil
}

func merge(into, from map[string]string) map[string]string {
	if into == nil {
		into = map[string]string{}
	}
	for k, v := range from {
		into[k] = v
	}
	return into
}

func (k *Kubelet) nodeObject(n *node) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.spec.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.spec.Name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
			},
			Annotations: map[string]string{
				annotIPv4Address: n.prefix.String(),
				annotVXLANAddr:   n.spec.VTEP.String(),
				annotVXLANMAC:    n.spec.VTEPMAC,
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:       n.spec.Block.String(),
			PodCIDRs:      []string{n.spec.Block.String()},
			Unschedulable: n.cordoned,
		},
	}
}

// updateNodeStatus writes the node's whole status with a fresh heartbeat,
// keeping each condition's transition time while its status holds.
func (k *Kubelet) updateNodeStatus(ctx context.Context, n *node) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.cs.CoreV1().Nodes().Get(ctx, n.spec.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = k.nodeStatus(n, cur.Status.Conditions, metav1.Now())
		_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	return nil
}

func (k *Kubelet) nodeStatus(n *node, old []corev1.NodeCondition, now metav1.Time) corev1.NodeStatus {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "lab kubelet is posting ready status"}
	if !n.ready {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady",
			"lab kubelet is down (the test declared this node NotReady)"
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		ready,
	}
	for i := range conds {
		conds[i].LastHeartbeatTime, conds[i].LastTransitionTime = now, now
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res.DeepCopy(),
		Conditions:  conds,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.spec.Address.String()},
			{Type: corev1.NodeHostName, Address: n.spec.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			KernelVersion:           kernelVersion(),
			OSImage:                 "podpath lab (Linux network namespaces)",
			ContainerRuntimeVersion: "podpath-lab://1",
			KubeletVersion:          k.version,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
			BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
			MachineID:               n.spec.Netns,
			SystemUUID:              n.spec.Netns,
		},
	}
}

func kernelVersion() string { return readTrim("/proc/sys/kernel/osrelease") }

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// renewLease keeps the node's Lease fresh: the node lifecycle controller
// counts a node alive by its Lease, and marks it Unknown when it lapses.
func (k *Kubelet) renewLease(ctx context.Context, n *node) error {
	leases := k.cs.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, n.spec.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			nodeObj, err := k.cs.CoreV1().Nodes().Get(ctx, n.spec.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			l := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n.spec.Name, Namespace: leaseNamespace,
					// As the kubelet does: the Lease goes when the Node goes.
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: nodeObj.Name, UID: nodeObj.UID}}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptrTo(n.spec.Name),
					LeaseDurationSeconds: ptrTo[int32](leaseSeconds), RenewTime: &now},
			}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec.HolderIdentity = ptrTo(n.spec.Name)
		cur.Spec.LeaseDurationSeconds = ptrTo[int32](leaseSeconds)
		cur.Spec.RenewTime = &now
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	return nil
}

// heartbeat renews a live node's Lease and Ready condition until Stop.
func (k *Kubelet) heartbeat(n *node) {
	defer k.wg.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(k.ctx, apiTimeout)
		err := k.renewLease(ctx, n)
		if err == nil {
			err = k.updateNodeStatus(ctx, n)
		}
		cancel()
		if err != nil && k.ctx.Err() == nil {
			k.logf("heartbeat %s: %v", n.spec.Name, err)
		}
	}
}
