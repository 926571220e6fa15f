// Package report renders a model.Report for people (text) and programs
// (JSON). Renderers are pure: same report, same bytes.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"podpath/internal/model"
)

// JSON writes the report as indented JSON (DESIGN.md's Report JSON), the
// same bytes as encoding/json would. The pairs go out one at a time: a
// 5,000-node run has 25 million, and a document built whole in memory
// first would cost several times its size (gigabytes).
func JSON(w io.Writer, r *model.Report) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	field := func(sep, name string, v any) error {
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return fmt.Errorf("writing the report's %s: %w", name, err)
		}
		fmt.Fprintf(bw, "%s\n  %q: ", sep, name)
		_, err = bw.Write(b)
		return err
	}
	findings, nodes := r.Findings, r.Nodes
	if findings == nil {
		findings = []model.Finding{}
	}
	if nodes == nil {
		nodes = []model.NodeInfo{}
	}
	if err := field("{", "findings", findings); err != nil {
		return err
	}
	bw.WriteString(",\n  \"pairs\": [")
	for i, p := range r.Pairs.All() {
		b, err := json.MarshalIndent(p, "    ", "  ")
		if err != nil {
			return fmt.Errorf("writing the report's pair %s → %s: %w", p.From, p.To, err)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	if r.Pairs.Len() > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteByte(']')
	if len(r.Services) > 0 {
		if err := field(",", "services", r.Services); err != nil {
			return err
		}
	}
	if len(r.DNS) > 0 {
		if err := field(",", "dns", r.DNS); err != nil {
			return err
		}
	}
	if err := field(",", "nodes", nodes); err != nil {
		return err
	}
	if err := field(",", "durationMs", r.DurationMs); err != nil {
		return err
	}
	if r.Config != nil {
		if err := field(",", "config", r.Config); err != nil {
			return err
		}
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// view is one family's pairs: a dual-stack run's report shows the IPv6
// pairs' matrices apart from the first addresses'.
type view struct {
	pairs  model.Pairs
	family string
}

// views splits pairs by family; one view, pairs as they are, when there
// is no IPv6 pass (its pairs come last: model.Join).
func views(pairs model.Pairs) []view {
	if n := pairs.Len(); n == 0 || pairs.At(n-1).Family != model.FamilyIPv6 {
		return []view{{pairs: pairs}}
	}
	return []view{
		{pairs: pairs.Filter(func(p model.Pair) bool { return p.Family != model.FamilyIPv6 })},
		{pairs: pairs.Filter(func(p model.Pair) bool { return p.Family == model.FamilyIPv6 }), family: model.FamilyIPv6},
	}
}

// layerName is how the report names a layer of a family: "pod layer",
// "pod layer (IPv6)".
func layerName(l model.Layer, family string) string {
	if f := model.FamilyName(family); f != "" {
		return fmt.Sprintf("%s layer (%s)", l, f)
	}
	return string(l) + " layer"
}

// eachMatrix walks every family's layers, node first: a layer too large for
// a matrix gets its node summary, the others render (name is layerName's).
func eachMatrix(w io.Writer, pairs model.Pairs, render func(name string, ps model.Pairs, l model.Layer)) {
	for _, v := range views(pairs) {
		for _, l := range layers(v.pairs) {
			if wide(v.pairs, l) {
				nodeSummary(w, v.pairs, l, v.family)
				fmt.Fprintln(w)
				continue
			}
			render(layerName(l, v.family), v.pairs, l)
		}
	}
}

// pairLayer is p's layer as a line about it says it: "pod", "pod/IPv6".
func pairLayer(p model.Pair) string {
	if f := model.FamilyName(p.Family); f != "" {
		return string(p.Layer) + "/" + f
	}
	return string(p.Layer)
}

// layers returns the layers present, node first.
func layers(pairs model.Pairs) []model.Layer {
	var out []model.Layer
	for _, l := range []model.Layer{model.LayerNode, model.LayerPod} {
		for _, p := range pairs.All() {
			if p.Layer == l {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// matrix renders one value per ordered pair of a layer as a node×node grid.
func matrix(w io.Writer, pairs model.Pairs, layer model.Layer, cell func(model.Pair) string) {
	nodes, at := grid(pairs, layer)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "from \\ to\t")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t", esc(n))
	}
	fmt.Fprintln(tw)
	for _, a := range nodes {
		fmt.Fprintf(tw, "%s\t", esc(a))
		for _, b := range nodes {
			p, ok := at[[2]string{a, b}]
			switch {
			case a == b:
				fmt.Fprint(tw, "-\t")
			case !ok:
				fmt.Fprint(tw, "?\t")
			default:
				fmt.Fprintf(tw, "%s\t", cell(p))
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// MTUText renders path MTUs: a matrix per layer, then what went wrong.
func MTUText(w io.Writer, r *model.Report) {
	eachMatrix(w, r.Pairs, func(name string, ps model.Pairs, l model.Layer) {
		fmt.Fprintf(w, "Path MTU, %s (largest IP packet, bytes, that crossed from row to column):\n", name)
		matrix(w, ps, l, mtuCell("unreachable"))
		fmt.Fprintln(w)
	})
	fmt.Fprintln(w, "* below the sender's own interface MTU: larger packets vanish on the way")
	fmt.Fprintln(w, "^ below the sender's own interface MTU, and a router says so (ICMP fragmentation needed): path MTU discovery works")
	fmt.Fprintln(w, "? not measured: the reason is listed below")
	problems(w, r)
	fmt.Fprintf(w, "(%d pairs in %.1fs)\n", r.Pairs.Len(), r.DurationMs/1000)
}

// mtuCell renders a pair's path MTU, starred when below the sender's MTU;
// "?" when it is not known.
func mtuCell(unreachable string) func(model.Pair) string {
	return func(p model.Pair) string {
		switch {
		case !p.Known():
			return "?"
		case !p.Reachable:
			return unreachable
		case p.PathMTU == 0:
			return "?"
		case p.IfaceMTU > p.PathMTU && p.PathMTULimit == "icmp":
			return fmt.Sprintf("%d^", p.PathMTU)
		case p.IfaceMTU > p.PathMTU:
			return fmt.Sprintf("%d*", p.PathMTU)
		}
		return fmt.Sprint(p.PathMTU)
	}
}

// PerfText renders latency, loss and throughput per pair.
func PerfText(w io.Writer, r *model.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tFROM\tTO\tRTT p50 ms\tp99 ms\tLOSS %\tJITTER ms\tICMP LOSS %\tTCP CONNECT ms\tHTTP ms\tTHROUGHPUT")
	for _, p := range r.Pairs.All() {
		rtt50, rtt99, conn := "-", "-", "-"
		if p.RTTMs != nil {
			rtt50, rtt99 = fmt.Sprintf("%.3f", p.RTTMs.P50), fmt.Sprintf("%.3f", p.RTTMs.P99)
		}
		if p.TCPConnectMs != nil {
			conn = fmt.Sprintf("%.3f", p.TCPConnectMs.P50)
		}
		httpMs := "-"
		if p.HTTPTotalMs > 0 {
			httpMs = fmt.Sprintf("%.3f", p.HTTPTotalMs)
		}
		icmpLoss := "-"
		if p.ICMPLossPct != nil {
			icmpLoss = fmt.Sprintf("%.1f", *p.ICMPLossPct)
		}
		loss := fmt.Sprintf("%.1f", p.LossPct)
		if !p.Known() {
			loss = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n", esc(string(p.Layer)), esc(p.From), esc(p.To), rtt50, rtt99, loss, p.JitterMs, icmpLoss, conn, httpMs, bits(p.ThroughputBps))
	}
	tw.Flush()
	problems(w, r)
	fmt.Fprintf(w, "(%d pairs in %.1fs)\n", r.Pairs.Len(), r.DurationMs/1000)
}

func problems(w io.Writer, r *model.Report) {
	for _, p := range r.Pairs.All() {
		if what := pairProblems(p); len(what) > 0 {
			fmt.Fprintln(w, esc(fmt.Sprintf("%s %s → %s: %s", pairLayer(p), p.From, p.To, strings.Join(what, "; "))))
		}
	}
}

func bits(bps float64) string {
	switch {
	case bps <= 0:
		return "-"
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	}
	return fmt.Sprintf("%.0f kbit/s", bps/1e3)
}

// maxMatrixNodes is the most nodes a text matrix shows: wider, a row no
// longer fits a terminal or a CI log, and past a hundred nodes the matrix
// is megabytes. Larger layers get nodeSummary instead.
const maxMatrixNodes = 24

// maxSummaryNodes bounds the nodes nodeSummary lists.
const maxSummaryNodes = 40

// nodeStat is one node's pairs (as sender or receiver) on a layer.
type nodeStat struct {
	pairs, unreachable, unknown, odd int
	minMTU, iface                    int // smallest path MTU below the sender's interface MTU, and that MTU
	loss, p50                        float64
}

// nodeSummary renders a layer too large for a matrix: what its pairs
// showed overall, then a line for each node with anything odd on its
// pairs, worst first.
func nodeSummary(w io.Writer, pairs model.Pairs, layer model.Layer, family string) {
	stats := map[string]*nodeStat{}
	var order []string
	total, reachable, deep, minMTU, maxMTU := 0, 0, 0, 0, 0
	for _, p := range pairs.All() {
		if p.Layer != layer {
			continue
		}
		total++
		if p.Known() && p.Reachable {
			reachable++
		}
		if p.PathMTU > 0 {
			deep++
			if minMTU == 0 || p.PathMTU < minMTU {
				minMTU = p.PathMTU
			}
			maxMTU = max(maxMTU, p.PathMTU)
		}
		odd := !p.Known() || !p.Reachable || p.LossPct > 0 || p.FullSizeLost > 0 ||
			p.PathMTU > 0 && p.IfaceMTU > p.PathMTU || len(pairProblems(p)) > 0
		for _, n := range []string{p.From, p.To} {
			s := stats[n]
			if s == nil {
				s = &nodeStat{}
				stats[n] = s
				order = append(order, n)
			}
			s.pairs++
			if !odd {
				continue
			}
			s.odd++
			switch {
			case !p.Known():
				s.unknown++
			case !p.Reachable:
				s.unreachable++
			}
			if p.PathMTU > 0 && p.IfaceMTU > p.PathMTU && (s.minMTU == 0 || p.PathMTU < s.minMTU) {
				s.minMTU, s.iface = p.PathMTU, p.IfaceMTU
			}
			s.loss = max(s.loss, p.LossPct)
			if p.RTTMs != nil {
				s.p50 = max(s.p50, p.RTTMs.P50)
			}
		}
	}
	mtus := "no path MTU measured"
	if deep > 0 {
		mtus = fmt.Sprintf("path MTU %d–%d bytes", minMTU, maxMTU)
	}
	fmt.Fprintf(w, "%s — %d nodes, %d pairs: %d reachable, %d measured in depth (%s). Too many nodes for a matrix: ", layerName(layer, family), len(order), total, reachable, deep, mtus)
	var odd []string
	for _, n := range order {
		if stats[n].odd > 0 {
			odd = append(odd, n)
		}
	}
	if len(odd) == 0 {
		fmt.Fprintln(w, "no node has anything odd on its pairs.")
		return
	}
	fmt.Fprintln(w, "the nodes with anything odd on their pairs, most first (the JSON report has every pair):")
	sort.SliceStable(odd, func(i, j int) bool { return stats[odd[i]].odd > stats[odd[j]].odd })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tPAIRS\tODD\tUNREACHABLE\tNOT MEASURED\tPATH MTU BELOW IFACE\tMOST LOSS %\tSLOWEST ODD p50 ms")
	for _, n := range odd[:min(len(odd), maxSummaryNodes)] {
		s := stats[n]
		mtu := "-"
		if s.minMTU > 0 {
			mtu = fmt.Sprintf("%d of %d", s.minMTU, s.iface)
		}
		p50 := "-"
		if s.p50 > 0 {
			p50 = fmt.Sprintf("%.2f", s.p50)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%s\t%.0f\t%s\n", esc(n), s.pairs, s.odd, s.unreachable, s.unknown, mtu, s.loss, p50)
	}
	tw.Flush()
	if len(odd) > maxSummaryNodes {
		fmt.Fprintf(w, "  … and %d more nodes\n", len(odd)-maxSummaryNodes)
	}
}

// wide: a layer with more nodes than a matrix shows.
func wide(pairs model.Pairs, layer model.Layer) bool {
	return len(layerNodes(pairs, layer)) > maxMatrixNodes
}
