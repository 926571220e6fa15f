//go:build !agentonly

package cli

import (
	"github.com/spf13/cobra"

	"podpath/internal/demo"
)

func newDemo(s Streams) *cobra.Command {
	var name string
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "The seed case end to end on real Kubernetes nodes: symptom, diagnosis, fix, re-check",
		Long: `demo builds a Kubespray-style Calico cluster of real nodes in the lab (lab up --kubernetes:
a control plane, kubelet, containerd, runc and kube-proxy on 3 nodes, VXLAN, Pod MTU 1450) and shows
the seed case as operators meet it: busybox Pods on different nodes ping each other, then the
underlay towards node3 is made to carry only 1400 bytes, silently, and large pings are lost while
small ones pass. podpath doctor deploys its agents as Pods, names the MTU black hole, node3 and
the Pod MTU to set; podpath fix mtu --apply sets it where Kubespray keeps it (FelixConfiguration
and the inventory's calico_mtu), restarts calico-node and re-checks; new busybox Pods then cross
at the new MTU. The lab is removed at the end (unless --keep).

The first run builds Kubernetes and containerd from their Go modules (about 7 minutes on 2
cores), then takes them from the cache.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return demo.Run(c.Context(), s.Out, name, keep)
		},
	}
	c.Flags().StringVar(&name, "name", "demo", "name of the demo's lab")
	c.Flags().BoolVar(&keep, "keep", false, "leave the lab running afterwards")
	return c
}
