//go:build !agentonly && linux

package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"podpath/internal/lab"
)

func newLab(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build, break and remove a Calico-style cluster made of network namespaces",
		Long: `The lab builds a Calico-style Kubernetes dataplane out of Linux network namespaces:
a fabric (one bridge, or a router between two subnets) with an underlay in 198.18.0.0/15,
nodes that each own a /26 block of 10.233.64.0/18, and Pods wired as the Calico CNI
plugin wires them (/32 address, 169.254.1.1 gateway by proxy ARP on a cali* veth).
Nodes reach each other's blocks over VXLAN (vxlan.calico, VNI 4096, UDP 4789), BGP
(BIRD 2, full mesh) or not at all (none). It needs root and never routes outside itself.

Several labs can run side by side; --name picks one. Namespaces are named
<lab>.fabric, <lab>.node1, <lab>.node1-pod1 …; state lives in ` + lab.StateRoot + `/<lab>/.`,
	}
	cmd.AddCommand(newLabUp(s), newLabDown(s), newLabStatus(s), newLabFault(s), newLabExec(s), newLabWire())
	cmd.AddCommand(newLabServices()...)
	return cmd
}

func nameFlag(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "name", lab.DefaultName, "which lab")
}

type labUpFlags struct {
	cfg       lab.Config
	backend   string
	topology  string
	family    string
	overrides []string
	output    string
}

func newLabUp(s Streams) *cobra.Command {
	var f labUpFlags
	c := &cobra.Command{
		Use:   "up",
		Short: "Build a lab (idempotent: an identical running lab is left as it is)",
		Example: `  podpath lab up
  podpath lab up --backend bgp
  podpath lab up --name big --nodes 50 --topology routed
  podpath lab up --topology routed --controller node1 --agents
  podpath lab up --mtu-override node3:underlay=9000
  podpath lab up --ip-family dual --agents      # IPv6 beside IPv4: vxlan-v6.calico, Pods MTU 1430
  podpath lab up --ip-family ipv6 --agents      # IPv6 alone (vxlan only): vxlan-v6.calico, Pods MTU 1430
  podpath lab up --kubernetes                  # real nodes: kubelet, containerd, runc, kube-proxy`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := f.cfg.Parse(f.backend, f.topology, f.family, f.overrides, c.Flags().Changed("pods-per-node")); err != nil {
				return err
			}
			if err := checkOutput(f.output, "text", "json"); err != nil {
				return err
			}
			l, err := lab.Up(c.Context(), f.cfg)
			if err != nil {
				return err
			}
			return lab.WriteStatus(s.Out, &l.State, f.output, nil)
		},
	}
	nameFlag(c, &f.cfg.Name)
	fl := c.Flags()
	fl.IntVar(&f.cfg.Nodes, "nodes", lab.DefaultNodes, fmt.Sprintf("number of nodes (1-%d)", lab.MaxNodes))
	fl.IntVar(&f.cfg.PodsPerNode, "pods-per-node", lab.DefaultPodsPerNode, fmt.Sprintf("Pods on each node (0-%d)", lab.MaxPodsPerNode))
	fl.StringVar(&f.backend, "backend", string(lab.BackendVXLAN), "how nodes reach each other's Pods: vxlan, bgp or none")
	fl.StringVar(&f.topology, "topology", string(lab.TopologyFlat), "underlay: flat (one bridge) or routed (two subnets and a router)")
	fl.StringVar(&f.family, "ip-family", lab.FamilyIPv4, "ipv4; dual: IPv6 underlay addresses, Pod blocks (Kubespray's fd85:ee78:d8a6:8607::1:0/112, /122 per node) and, with vxlan, vxlan-v6.calico (70 bytes of overhead) beside IPv4's, the Pods at the smaller tunnel MTU, as Calico does; ipv6: the IPv6 side alone (backend vxlan; the inventory lists IPv6 addresses only)")
	fl.IntVar(&f.cfg.UnderlayMTU, "underlay-mtu", lab.DefaultUnderlayMTU, "MTU of every node's eth0 and fabric port")
	fl.IntVar(&f.cfg.PodMTU, "pod-mtu", 0, "MTU of Pod interfaces (0: underlay MTU less the backend's overhead, 1450 for vxlan)")
	fl.IntVar(&f.cfg.VXLANMTU, "vxlan-mtu", 0, "MTU of vxlan.calico (0: the Pod MTU, as Calico sets it)")
	fl.BoolVar(&f.cfg.Agents, "agents", false, "start a podpath agent in every node (host network) and every Pod (Pod network)")
	fl.StringArrayVar(&f.overrides, "mtu-override", nil, "per-node MTU, NODE:underlay=N, NODE:pod=N or NODE:vxlan=N (repeatable)")
	fl.StringVar(&f.cfg.Controller, "controller", "", "node whose network the inventory's controller dials every agent from, as when podpath runs there (default: each agent from its own namespace)")
	fl.BoolVar(&f.cfg.Kubernetes, "kubernetes", false, "make the lab a Kubernetes cluster of real nodes: a control plane in its own namespace, kubelet v1.37, containerd, runc and kube-proxy on every node, Calico's objects and calico-node (the lab's stand-in); the first run builds the binaries (minutes), later runs take them from the cache")
	fl.StringVar(&f.cfg.Calico, "calico", "", "with --kubernetes: how Calico is installed: kubespray (Kubespray's calico-config), manifest (Calico's calico.yaml) or operator (an Installation, calico-node in calico-system) (default kubespray)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return c
}

func newLabDown(s Streams) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "down",
		Short: "Remove a lab: its namespaces, processes and state (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lab.Down(c.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "lab %s removed\n", name)
			return nil
		},
	}
	nameFlag(c, &name)
	return c
}

func newLabStatus(s Streams) *cobra.Command {
	var name, output string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a lab's nodes, Pods, faults and, with BGP, each node's sessions",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			return lab.WriteStatus(s.Out, &l.State, output, l.BGPStatus(c.Context()))
		},
	}
	nameFlag(c, &name)
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

func newLabFault(s Streams) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "fault",
		Short: "Break a running lab the way real clusters break, and mend it",
		Long: "Faults:\n" + lab.FaultUsage() + `
Firewall faults (block-*, loss) are nftables tables named podpath_<fault> in the node's
namespace. delay holds packets leaving the node; loss drops them at random.`,
	}
	c.PersistentFlags().StringVar(&name, "name", lab.DefaultName, "which lab")
	add := &cobra.Command{
		Use:     "add FAULT...",
		Short:   "Inject faults; one with the same kind and node replaces the old one",
		Example: "  podpath lab fault add underlay-mtu=node3:1400\n  podpath lab fault add block-vxlan=node2 delay=node1:20",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			faults, err := lab.ParseFaults(args)
			if err != nil {
				return err
			}
			if err := lab.RequireRoot(); err != nil {
				return err
			}
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			return l.AddFaults(c.Context(), faults, func(f lab.Fault) { fmt.Fprintf(s.Out, "fault %s added\n", f) })
		},
	}
	clear := &cobra.Command{
		Use:     "clear [FAULT...]",
		Short:   "Clear the given faults, or all of them",
		Example: "  podpath lab fault clear\n  podpath lab fault clear underlay-mtu=node3:1400",
		RunE: func(c *cobra.Command, args []string) error {
			faults, err := lab.ParseFaults(args)
			if err != nil {
				return err
			}
			cleared, err := lab.ClearFaults(c.Context(), name, faults...)
			for _, f := range cleared {
				fmt.Fprintf(s.Out, "fault %s cleared\n", f)
			}
			if err == nil && len(cleared) == 0 {
				fmt.Fprintln(s.Out, "no faults to clear")
			}
			return err
		},
	}
	c.AddCommand(add, clear)
	return c
}

func newLabExec(s Streams) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:     "exec NODE|POD|fabric -- COMMAND [ARG...]",
		Short:   "Run a command inside a lab node's, Pod's or the fabric's namespace",
		Example: "  podpath lab exec node1-pod1 -- ping -c 3 -M do -s 1422 10.233.64.129\n  podpath lab exec node2 -- ip route",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			l, err := lab.Open(name)
			if err != nil {
				return err
			}
			cmd, err := l.Command(c.Context(), args[0], args[1:]...)
			if err != nil {
				return err
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = s.In, s.Out, s.Err
			if err := cmd.Run(); err != nil {
				if cmd.ProcessState != nil {
					return exitError{code: cmd.ProcessState.ExitCode()}
				}
				return err
			}
			return nil
		},
	}
	nameFlag(c, &name)
	return c
}

// newLabWire is the process the delay fault starts; not for users.
func newLabWire() *cobra.Command {
	return &cobra.Command{
		Use:                "wire",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			return lab.WireMain(c.Context(), args)
		},
	}
}
