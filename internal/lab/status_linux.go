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
	if sp.Dual() {
		family = ", dual-stack"
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
	fmt.Fprintln(tw, "NODE\tADDRESS\tBLOCK\tMTU (eth0/pod/vxlan)\tPODS")
	for _, n := range sp.Nodes {
		var pods []string
		for _, p := range n.Pods {
			pods = append(pods, p.Name+" "+p.Address.String())
		}
		vx := "-"
		if sp.Backend == BackendVXLAN {
			vx = fmt.Sprint(n.VXLANMTU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d/%s\t%s\n", n.Name, n.Address, n.Block, n.UnderlayMTU, n.PodMTU, vx, strings.Join(pods, ", "))
	}
	if sp.Dual() {
		fmt.Fprintln(tw, "\nNODE\tIPv6 ADDRESS\tIPv6 BLOCK\tMTU (vxlan-v6)\tPODS")
		for _, n := range sp.Nodes {
			var pods []string
			for _, p := range n.Pods {
				pods = append(pods, p.Name+" "+p.Address6.String())
			}
			vx := "-"
			if sp.Backend == BackendVXLAN {
				vx = fmt.Sprint(n.VXLANMTUV6)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Address6, n.Block6, vx, strings.Join(pods, ", "))
		}
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
