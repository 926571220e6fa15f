package kubelet

import (
	"context"
	"time"

	"podpath/internal/cluster/kube"
	"podpath/internal/lab"
)

// mtuTimeout bounds reading Calico's configuration when calico-node starts.
const mtuTimeout = 15 * time.Second

// felixMTU does on node n what Felix does when calico-node starts: read the
// configured Pod MTU (the Installation, calico-config, FelixConfiguration —
// Calico's precedence, as discovery reads it) or, when none is set,
// auto-detect it from the host interface, and give it to the VXLAN tunnel.
// Pods that exist keep their MTU; new ones get it from cniMTU.
func (k *Kubelet) felixMTU(ctx context.Context, n *lab.Node) {
	if k.opts.Dynamic == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, mtuTimeout)
	defer cancel()
	_, cal, err := kube.DetectCNI(ctx, k.cs, k.opts.Dynamic)
	if err != nil {
		k.logf("calico-node on %s: read Calico's configuration: %v", n.Name, err)
		return
	}
	mtu := 0
	if cal != nil {
		mtu = cal.PodMTU()
	}
	if mtu == 0 {
		mtu = n.UnderlayMTU - k.opts.Lab.Spec.Backend.Overhead()
	}
	st, err := lab.LoadState(k.opts.Lab.Spec.Name)
	if err != nil {
		k.logf("calico-node on %s: %v", n.Name, err)
		return
	}
	for _, cur := range st.Spec.Nodes {
		if cur.Name == n.Name && cur.PodMTU == mtu {
			return
		}
	}
	if _, err := lab.SetNodePodMTU(ctx, k.opts.Lab.Spec.Name, n.Name, mtu); err != nil {
		k.logf("calico-node on %s: set Pod MTU %d: %v", n.Name, mtu, err)
		return
	}
	k.logf("calico-node on %s: Pod MTU %d (tunnel set; existing Pods keep theirs)", n.Name, mtu)
}

// cniMTU does what the Calico CNI plugin does for a new Pod: its interfaces
// get the node's current Pod MTU.
func (k *Kubelet) cniMTU(ctx context.Context, pod string) {
	mtu, err := lab.SetPodInterfaceMTU(ctx, k.opts.Lab.Spec.Name, pod)
	if err != nil {
		k.logf("%s: set the Pod's MTU: %v", pod, err)
		return
	}
	k.logf("%s: Pod MTU %d", pod, mtu)
}
