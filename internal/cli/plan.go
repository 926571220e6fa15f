//go:build !agentonly

package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"podpath/internal/cluster/kubespray"
	"podpath/internal/model"
	"podpath/internal/netplan"
	"podpath/internal/report"
)

type planFlags struct {
	kubesprayDir string
	out          outputFlags
	in           netplan.Input
	nodeCIDRs    []string
}

func newPlan(s Streams) *cobra.Command {
	var f planFlags
	c := &cobra.Command{
		Use:   "plan [--kubespray-inventory DIR] [flags]",
		Short: "Check a cluster's network plan before installing: address ranges, IPAM blocks, encapsulation, MTU",
		Long: `plan reads a Kubespray inventory (hosts in INI or YAML, group_vars/all, group_vars/k8s_cluster,
host_vars; Kubespray's defaults for anything unset) or the same values as flags, and checks it
before anything is installed: Pod, Service and host networks that overlap (cidr-overlap), Calico's
IPAM blocks against the number of nodes and kubelet_max_pods, IPIP and VXLAN both on, IPv6
settings, calico_veth_mtu set without calico_mtu (which Kubespray ignores), a calico_mtu larger
than the underlay carries with the chosen encapsulation, and the calico_mtu to set. It needs no
access to any machine. Flags override the inventory. Exit 1 when the plan has an error.`,
		Example: "  podpath plan --kubespray-inventory inventory/mycluster --underlay-mtu 1500\n" +
			"  podpath plan --nodes 300 --pod-cidr 10.233.64.0/18     # Kubespray's defaults otherwise\n" +
			"  podpath plan --kubespray-inventory inventory/mycluster --node-cidr 192.168.10.0/24 -o html --output-file plan.html",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runPlan(c, s, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.kubesprayDir, "kubespray-inventory", "", "Kubespray inventory directory (the one holding the hosts file and group_vars/)")
	f.out.register(c, "text", "json", "html")
	fl.IntVar(&f.in.UnderlayMTU, "underlay-mtu", 1500, "MTU the hosts' network carries end to end (the smallest on any path), 576 to 65535")
	fl.StringSliceVar(&f.nodeCIDRs, "node-cidr", nil, "the hosts' network(s), to check for overlaps (repeatable)")
	fl.IntVar(&f.in.Nodes, "nodes", 0, "number of nodes, 1 or more (default: the inventory's hosts)")
	fl.StringVar(&f.in.PodCIDR, "pod-cidr", "", "kube_pods_subnet")
	fl.StringVar(&f.in.ServiceCIDR, "service-cidr", "", "kube_service_addresses")
	fl.IntVar(&f.in.BlockSize, "block-size", 0, "calico_pool_blocksize")
	fl.IntVar(&f.in.MaxPods, "max-pods", 0, "kubelet_max_pods")
	fl.StringVar(&f.in.Backend, "backend", "", "calico_network_backend: vxlan, bird or none")
	fl.StringVar(&f.in.VXLANMode, "vxlan-mode", "", "calico_vxlan_mode: Always, CrossSubnet or Never")
	fl.StringVar(&f.in.IPIPMode, "ipip-mode", "", "calico_ipip_mode: Always, CrossSubnet or Never")
	fl.IntVar(&f.in.CalicoMTU, "calico-mtu", 0, "calico_mtu, 576 to 9000")
	fl.IntVar(&f.in.VethMTU, "calico-veth-mtu", 0, "calico_veth_mtu, 576 to 9000")
	return c
}

func runPlan(c *cobra.Command, s Streams, f *planFlags) error {
	out, err := f.out.open(s) // a file it creates is removed if the plan is refused
	if err != nil {
		return err
	}
	defer out.Discard()
	in, warnings, err := planInput(c, f)
	if err != nil {
		return err
	}
	res, err := netplan.Check(in)
	if err != nil {
		return err
	}
	rep := &model.Report{Findings: res.Findings, Config: &model.Config{Source: "plan", Backend: in.Backend,
		PodMTU: res.RecommendedMTU, PodCIDR: in.PodCIDR, Notes: warnings}}
	text := func(w io.Writer, _ *model.Report) { report.PlanText(w, in, res, warnings) }
	if err := f.out.write(out, rep, text); err != nil {
		return err
	}
	return findingsExit(res.Findings)
}

// planFlagOf is the flag that sets each Kubespray variable.
var planFlagOf = map[string]string{
	"kube_pods_subnet": "pod-cidr", "kube_service_addresses": "service-cidr", "calico_network_backend": "backend",
	"calico_vxlan_mode": "vxlan-mode", "calico_ipip_mode": "ipip-mode", "calico_pool_blocksize": "block-size",
	"kubelet_max_pods": "max-pods", "calico_mtu": "calico-mtu", "calico_veth_mtu": "calico-veth-mtu",
}

// planInput merges Kubespray's defaults, the inventory and the flags.
func planInput(c *cobra.Command, f *planFlags) (netplan.Input, []string, error) {
	if err := netplan.CheckGiven(f.in, c.Flags().Changed); err != nil {
		return f.in, nil, err
	}
	in := f.in
	in.NodeCIDRs = f.nodeCIDRs
	ks := &kubespray.Inventory{Vars: map[string]any{}}
	if f.kubesprayDir != "" {
		var err error
		if ks, err = kubespray.Load(f.kubesprayDir); err != nil {
			return in, nil, err
		}
	} else if in.Nodes == 0 {
		return in, nil, fmt.Errorf("give --kubespray-inventory DIR, or --nodes N with the values to check")
	}
	in = netplan.FromKubespray(in, ks, func(v string) bool { return c.Flags().Changed(planFlagOf[v]) })
	return in, ks.Warnings, nil
}
