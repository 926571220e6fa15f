// Package report renders a model.Report for people (text) and programs
// (JSON). Renderers are pure: same report, same bytes.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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
	for _, l := range layers(r.Pairs) {
		fmt.Fprintf(w, "Path MTU, %s layer (largest IP packet, bytes, that crossed from row to column):\n", l)
		matrix(w, r.Pairs, l, mtuCell("unreachable"))
		fmt.Fprintln(w)
	}
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
			fmt.Fprintln(w, esc(fmt.Sprintf("%s %s → %s: %s", p.Layer, p.From, p.To, strings.Join(what, "; "))))
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
