package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"podpath/internal/model"
	"podpath/internal/netplan"
)

// PlanText is plan's report: the plan in one line, the calico_mtu to
// set, the inventory's warnings and the findings.
func PlanText(w io.Writer, in netplan.Input, res *netplan.Result, warnings []string) {
	nodes := in.Nodes
	if nodes == 0 {
		nodes = len(in.Hosts)
	}
	fmt.Fprintf(w, "Plan: %d node(s), Pods %s in /%d blocks (%d), Services %s, %s encapsulation, underlay MTU %d\n",
		nodes, in.PodCIDR, in.BlockSize, res.Blocks, in.ServiceCIDR, res.Encapsulation, in.UnderlayMTU)
	fmt.Fprintf(w, "Recommended calico_mtu: %d\n\n", res.RecommendedMTU)
	for _, warn := range warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	var shown []model.Finding
	for _, fd := range res.Findings {
		if fd.ID != netplan.PlanSummary || !strings.HasPrefix(fd.Title, "Recommended") {
			shown = append(shown, fd)
		}
	}
	FindingsText(w, shown)
	counts := map[string]int{}
	for _, fd := range shown {
		counts[fd.Severity]++
	}
	if len(shown) == 0 {
		fmt.Fprintln(w, "✓ No problems in the plan.")
	}
	fmt.Fprintf(w, "%d errors, %d warnings, %d notes\n", counts[model.SeverityError], counts[model.SeverityWarning], counts[model.SeverityInfo])
}

// PreflightText is preflight's report: the calico_mtu to set, a verdict
// per node, the findings and every pair's path MTU.
func PreflightText(w io.Writer, nodes []string, res *netplan.PreflightResult, rep *model.Report) {
	fmt.Fprintf(w, "Recommended calico_mtu: %d\n\n", res.RecommendedMTU)
	fmt.Fprintln(w, "node verdicts:")
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-12s %s\n", n, strings.ToUpper(res.Verdict[n]))
	}
	fmt.Fprintln(w)
	FindingsText(w, res.Findings)
	MTUText(w, &model.Report{Pairs: rep.Pairs, DurationMs: rep.DurationMs})
	fmt.Fprintf(w, "preflight of %d nodes in %.1fs\n", len(nodes), rep.DurationMs/1000)
}
