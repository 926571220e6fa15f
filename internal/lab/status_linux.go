package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"podpath/internal/bird"
)

// BGPStatus is each node's BGP sessions as its BIRD reports them, or why
// they could not be read; nil for a lab without BGP.
func (l *Lab) BGPStatus(ctx context.Context) map[string]any {
	if l.Spec.Backend != BackendBGP {
		return nil
	}
	bgp := map[string]any{}
	for _, n := range l.Spec.Nodes {
		sessions, err := l.BGPSessions(ctx, n.Name)
		if err != nil {
			bgp[n.Name] = err.Error()
			continue
		}
		bgp[n.Name] = sessions
	}
	return bgp
}

// WriteStatus prints the lab's state as text or (output "json") JSON;
// bgp, when not nil, is each node's BGP sessions (BGPStatus).
func WriteStatus(w io.Writer, st *State, output string, bgp map[string]any) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*State
			BGP map[string]any `json:"bgp,omitempty"`
		}{st, bgp})
	}
	sp := &st.Spec
	family := ""
	switch {
	case sp.Dual():
		family = ", dual-stack"
	case sp.IPv6Only():
		family = ", IPv6 only"
	}
	fmt.Fprintf(w, "lab %s: %s, %d nodes, backend %s, topology %s%s (built in %.1fs)\n",
		sp.Name, st.Phase, len(sp.Nodes), sp.Backend, sp.Topology, family, st.UpSeconds)
	fmt.Fprintf(w, "inventory: %s\n", st.Inventory)
	if st.Kube != nil {
		fmt.Fprintf(w, "kubeconfig: %s (API server %s, through the lab's forwarder)\n  export KUBECONFIG=%s; kubectl get nodes -o wide\n",
			st.Kube.Kubeconfig, st.Kube.Forward, st.Kube.Kubeconfig)
		fmt.Fprintf(w, "cluster DNS: %s (Service kube-system/coredns, CoreDNS %s, %d replicas; zone %s only, no upstream)\n",
			ClusterDNS, CoreDNSVersion, DNSReplicas, ClusterDomain)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if sp.HasIPv4() {
		writeRows(tw, sp, false)
	}
	if sp.HasIPv6() {
		if sp.Dual() {
			fmt.Fprintln(tw)
		}
		writeRows(tw, sp, true)
	}
	tw.Flush()
	if len(st.Faults) == 0 {
		fmt.Fprintln(w, "\nfaults: none")
	} else {
		var fs []string
		for _, f := range st.Faults {
			fs = append(fs, f.String())
		}
		fmt.Fprintf(w, "\nfaults: %s\n", strings.Join(fs, " "))
	}
	if bgp != nil {
		fmt.Fprintln(w, "\nBGP sessions (from each node's BIRD control socket):")
		for _, n := range sp.Nodes {
			fmt.Fprintf(w, "  %s:", n.Name)
			switch v := bgp[n.Name].(type) {
			case string:
				fmt.Fprintf(w, " unavailable: %s", v)
			case []bird.Protocol:
				for _, p := range v {
					fmt.Fprintf(w, " %s %s", p.Name, p.Info)
				}
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

// writeRows writes the table of the nodes' IPv4 side, or IPv6's (six).
func writeRows(tw io.Writer, sp *Spec, six bool) {
	if six {
		fmt.Fprintln(tw, "NODE\tIPv6 ADDRESS\tIPv6 BLOCK\tMTU (eth0/pod/vxlan-v6)\tPODS")
	} else {
		fmt.Fprintln(tw, "NODE\tADDRESS\tBLOCK\tMTU (eth0/pod/vxlan)\tPODS")
	}
	for _, n := range sp.Nodes {
		addr, block, vxMTU := n.Address, n.Block, n.VXLANMTU
		if six {
			addr, block, vxMTU = n.Address6, n.Block6, n.VXLANMTUV6
		}
		var pods []string
		for _, p := range n.Pods {
			a := p.Address
			if six {
				a = p.Address6
			}
			pods = append(pods, p.Name+" "+a.String())
		}
		vx := "-"
		if sp.Backend == BackendVXLAN {
			vx = fmt.Sprint(vxMTU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d/%s\t%s\n", n.Name, addr, block, n.UnderlayMTU, n.PodMTU, vx, strings.Join(pods, ", "))
	}
}
