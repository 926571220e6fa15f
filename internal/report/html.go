package report

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"podpath/internal/model"
)

// HTML writes the report as one self-contained page: the findings first,
// then, for each layer present, node×node heatmaps of path MTU, loss and RTT
// p50 as inline SVG. Nothing is fetched when it is opened (inline CSS, no
// scripts, no fonts, no links), so it can be mailed or attached to a ticket.
//
// Every pair cell is an SVG <g class="cell"> carrying data-from, data-to,
// data-layer and data-metric (mtu|loss|rtt), its value as text and a <title>
// tooltip; cells of a pair named by an error finding, or of an unreachable
// pair, also carry the class "broken" and a red outline.
func HTML(w io.Writer, r *model.Report) error {
	if err := htmlPage.Execute(w, newHTMLView(r)); err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	return nil
}

// Heatmap geometry, in SVG user units (CSS pixels).
const (
	cellW      = 80
	cellH      = 34
	cellGap    = 2
	charW      = 7  // width of one character of a 12px label, roughly
	maxLabel   = 24 // longer node names are cut, the full name is the tooltip
	headerH    = 24 // height of the column-label row when labels fit level
	minLabelW  = 72 // room for the "from ↓ to →" corner label
	labelSpace = 10
)

// Colour scales: 0 is green, 1 is red (see shade).
const (
	// mtuRedDeficit is how many bytes below the layer's best path MTU a pair
	// turns fully red. Any shortfall at all is at least amber: packets of the
	// sizes in between vanish on that path.
	mtuRedDeficit = 150
	// minShade is where a pair that is worse at all starts on the scale
	// (amber): a few bytes of MTU or a few per cent of loss already break
	// things, and should not look like the green of a healthy pair.
	minShade = 0.35
	// rttRedRatio is how many times the layer's fastest p50 turns a pair red
	// (the scale is logarithmic in between).
	rttRedRatio = 10
)

type htmlView struct {
	Duration string
	Pairs    int
	Counts   string
	Findings []htmlFinding
	Layers   []htmlLayer
	Nodes    []string // node-level errors (an agent that did not answer, …)
	Services []serviceRow
	// KubeProxy is each node's kube-proxy, as its host facts read it.
	KubeProxy []string
	DNS       []dnsRow
}

// A finding lists at most htmlPairs affected pairs and htmlEvidence
// lines of evidence: at a hundred nodes, a black hole on one node has 198
// of each, and the heatmaps below show the pairs anyway.
const (
	htmlPairs    = 24
	htmlEvidence = 20
)

type htmlFinding struct {
	model.Finding
	PairText []string
}

type htmlLayer struct {
	Name     model.Layer
	Title    string
	Maps     []heatmap
	Problems []string
}

type heatmap struct {
	Metric        string
	Title, Legend string
	Width, Height int
	AxisY         int
	Cols, Rows    []axisLabel
	Blank         []rect
	Cells         []heatCell
}

type axisLabel struct {
	X, Y   int
	Text   string
	Full   string // set when Text was cut
	Rotate bool
}

type rect struct{ X, Y, W, H int }

type heatCell struct {
	From, To, Layer, Metric string
	rect
	Outline rect // inside the cell, so a thick stroke does not cover a neighbour
	TX, TY  int  // text anchor: the middle of the cell
	Fill    string
	Text    string
	Tip     string
	Broken  bool
	NoData  bool
	Long    bool // a word, not a number: set smaller to fit
}

func newHTMLView(r *model.Report) htmlView {
	v := htmlView{Duration: duration(r.DurationMs), Pairs: r.Pairs.Len()}

	broken := map[model.PairRef][]string{} // pair → IDs of the error findings naming it
	for _, f := range r.Findings {
		if f.Severity != model.SeverityError {
			continue
		}
		for _, p := range f.Pairs {
			broken[p] = append(broken[p], f.ID)
		}
	}

	findings := append([]model.Finding(nil), r.Findings...)
	sort.SliceStable(findings, func(i, j int) bool { return severityRank(findings[i].Severity) < severityRank(findings[j].Severity) })
	count := map[string]int{}
	for _, f := range findings {
		count[f.Severity]++
		hf := htmlFinding{Finding: f}
		for i, p := range f.Pairs {
			if i == htmlPairs && len(f.Pairs) > htmlPairs+1 {
				hf.PairText = append(hf.PairText, fmt.Sprintf("… and %d more", len(f.Pairs)-i))
				break
			}
			hf.PairText = append(hf.PairText, fmt.Sprintf("%s → %s (%s)", p.From, p.To, pairLayer(model.Pair{Layer: p.Layer, Family: p.Family})))
		}
		if len(f.Evidence) > htmlEvidence+1 {
			hf.Evidence = append(f.Evidence[:htmlEvidence:htmlEvidence], fmt.Sprintf("… and %d more (the JSON report has them all)", len(f.Evidence)-htmlEvidence))
		}
		v.Findings = append(v.Findings, hf)
	}
	var counts []string
	for _, s := range []string{model.SeverityError, model.SeverityWarning, model.SeverityInfo} {
		if count[s] > 0 {
			counts = append(counts, plural(count[s], s))
		}
	}
	v.Counts = strings.Join(counts, ", ")

	for _, fv := range views(r.Pairs) {
		for _, l := range layers(fv.pairs) {
			hl := newHTMLLayer(fv.pairs, l, broken)
			if f := model.FamilyName(fv.family); f != "" {
				hl.Name = model.Layer(string(l) + "-" + fv.family)
				hl.Title += " — " + f
			}
			v.Layers = append(v.Layers, hl)
		}
	}
	for _, n := range r.Nodes {
		if n.Error != "" {
			v.Nodes = append(v.Nodes, n.Name+": "+n.Error)
		}
	}
	v.Services, v.KubeProxy, v.DNS = serviceRows(r), kubeProxyLines(r), dnsRows(r)
	return v
}

// maxHeatNodes is the most nodes a heatmap shows one by one. Past it,
// each row and column is a block of consecutive nodes and a cell the
// worst of the block's pairs: at 1,000 nodes a cell per pair would be a
// million cells per map, tens of megabytes no browser lays out, and
// nobody reads.
const maxHeatNodes = 40

// block is a heatmap row (and column): one node, or consecutive nodes.
type block struct {
	label, full string
	nodes       []string
}

func blocks(nodes []string) []block {
	size := 1
	if len(nodes) > maxHeatNodes {
		size = (len(nodes) + maxHeatNodes - 1) / maxHeatNodes
	}
	var out []block
	for lo := 0; lo < len(nodes); lo += size {
		ns := nodes[lo:min(len(nodes), lo+size)]
		b := block{label: ns[0], nodes: ns}
		if len(ns) > 1 {
			b.label = ns[0] + "…" + ns[len(ns)-1]
			b.full = fmt.Sprintf("%s … %s (%d nodes)", ns[0], ns[len(ns)-1], len(ns))
		}
		out = append(out, b)
	}
	return out
}

// blockStat is what a heatmap cell shows: its pairs' worst.
type blockStat struct {
	pairs, known, unreachable int
	worst                     model.Pair // the pair itself, in a block of one
	findings                  []string   // error findings naming a pair of the block
	problems                  int        // pairs with something wrong (pairProblems)
}

// add takes p into the block's worst: the smallest path MTU, the most
// loss, the slowest p50, each from the pair that has it.
func (b *blockStat) add(p model.Pair, ids []string) {
	b.pairs++
	for _, id := range ids {
		if !slices.Contains(b.findings, id) {
			b.findings = append(b.findings, id)
		}
	}
	if len(pairProblems(p)) > 0 {
		b.problems++
	}
	if b.pairs == 1 {
		b.worst = p
	}
	if !p.Known() {
		return
	}
	b.known++
	if !p.Reachable {
		b.unreachable++
		return
	}
	w := &b.worst
	if !w.Known() || !w.Reachable {
		*w = p
		return
	}
	if p.PathMTU > 0 && (w.PathMTU == 0 || p.PathMTU < w.PathMTU) {
		w.PathMTU, w.IfaceMTU, w.PathMTULimit, w.LocalMTU = p.PathMTU, p.IfaceMTU, p.PathMTULimit, p.LocalMTU
	}
	if p.LossPct > w.LossPct || w.RTTMs == nil && p.RTTMs != nil {
		w.LossPct = max(w.LossPct, p.LossPct)
	}
	if p.ICMPLossPct != nil && (w.ICMPLossPct == nil || *p.ICMPLossPct > *w.ICMPLossPct) {
		w.ICMPLossPct = p.ICMPLossPct
	}
	if p.RTTMs != nil && (w.RTTMs == nil || p.RTTMs.P50 > w.RTTMs.P50) {
		w.RTTMs, w.JitterMs = p.RTTMs, p.JitterMs
	}
}

// maxProblems bounds the pairs a layer lists as having something wrong:
// the JSON report has every one.
const maxProblems = 200

func newHTMLLayer(pairs model.Pairs, layer model.Layer, broken map[model.PairRef][]string) htmlLayer {
	hl := htmlLayer{Name: layer, Title: "Node layer: host network to host network (underlay)"}
	if layer == model.LayerPod {
		hl.Title = "Pod layer: Pod network to Pod network (overlay)"
	}
	bs := blocks(layerNodes(pairs, layer))
	of := map[string]int{}
	for i, b := range bs {
		for _, n := range b.nodes {
			of[n] = i
		}
	}
	stats := map[[2]int]*blockStat{}
	var maxMTU int
	minRTT := math.Inf(1)
	problems := 0
	for _, p := range pairs.All() {
		if p.Layer != layer {
			continue
		}
		if p.Reachable && p.PathMTU > maxMTU {
			maxMTU = p.PathMTU
		}
		if p.Reachable && p.RTTMs != nil && p.RTTMs.P50 > 0 && p.RTTMs.P50 < minRTT {
			minRTT = p.RTTMs.P50
		}
		if what := pairProblems(p); len(what) > 0 {
			if problems++; problems <= maxProblems {
				hl.Problems = append(hl.Problems, fmt.Sprintf("%s → %s: %s", p.From, p.To, strings.Join(what, "; ")))
			}
		}
		k := [2]int{of[p.From], of[p.To]}
		if stats[k] == nil {
			stats[k] = &blockStat{}
		}
		stats[k].add(p, broken[model.PairRef{From: p.From, To: p.To, Layer: layer, Family: p.Family}])
	}
	if problems > maxProblems {
		hl.Problems = append(hl.Problems, fmt.Sprintf("… and %d more pairs (the JSON report has every pair)", problems-maxProblems))
	}
	mtuLegend := fmt.Sprintf("Largest IP packet that crossed from row to column. Green: %d, the best on this layer; amber to red: up to %d bytes less.", maxMTU, mtuRedDeficit)
	if maxMTU == 0 {
		mtuLegend = "Path MTU was not measured on this layer."
	}
	metrics := []struct {
		id, title, legend string
		value             func(model.Pair) (text string, t float64, ok bool)
	}{
		{"mtu", "Path MTU (bytes)", mtuLegend,
			func(p model.Pair) (string, float64, bool) {
				if p.PathMTU == 0 {
					return "", 0, false
				}
				t := 0.0
				if d := maxMTU - p.PathMTU; d > 0 {
					t = minShade + (1-minShade)*math.Min(1, float64(d)/mtuRedDeficit)
				}
				return fmt.Sprint(p.PathMTU), t, true
			}},
		{"loss", "Loss (%)",
			"UDP probes lost from row to column. Green: none; amber: some; red: 100 %.",
			func(p model.Pair) (string, float64, bool) {
				// LossPct is always present in JSON: with no RTT either,
				// a zero means loss was not measured (an mtu-only run).
				if p.RTTMs == nil && p.LossPct == 0 {
					return "", 0, false
				}
				t := 0.0
				if p.LossPct > 0 {
					t = minShade + (1-minShade)*math.Sqrt(math.Min(1, p.LossPct/100))
				}
				return fmt.Sprintf("%.1f", p.LossPct), t, true
			}},
		{"rtt", "RTT p50 (ms)",
			fmt.Sprintf("Median round trip from row to column. Green: the fastest on this layer; red: %d× that or slower.", rttRedRatio),
			func(p model.Pair) (string, float64, bool) {
				if p.RTTMs == nil {
					return "", 0, false
				}
				t := 0.0
				if !math.IsInf(minRTT, 1) && p.RTTMs.P50 > minRTT {
					t = math.Min(1, math.Log(p.RTTMs.P50/minRTT)/math.Log(rttRedRatio))
				}
				return ms(p.RTTMs.P50), t, true
			}},
	}

	longest := 0
	for _, b := range bs {
		longest = max(longest, len([]rune(cut(b.label))))
	}
	labelW := max(minLabelW, longest*charW+labelSpace)
	// Names wider than a cell are set at 45°: they then reach up and to the
	// right by 0.71 of their length, past the last column.
	top, right, rotate := headerH, 0, longest*charW > cellW-8
	if rotate {
		slant := int(float64(longest*charW) * 0.71)
		top, right = slant+16, max(0, slant-cellW/2+8)
	}
	step := func(i int) int { return i * (cellW + cellGap) }
	stepY := func(i int) int { return i * (cellH + cellGap) }

	for _, m := range metrics {
		hm := heatmap{Metric: m.id, Title: m.title, Legend: m.legend,
			Width: labelW + step(len(bs)) + right, Height: top + stepY(len(bs)), AxisY: 14}
		if len(bs) > 0 && len(bs[0].nodes) > 1 {
			hm.Legend += fmt.Sprintf(" Each row and column is a block of %d consecutive nodes, each cell the worst of its pairs (the tooltip has the counts).", len(bs[0].nodes))
		}
		for i, b := range bs {
			c := axisLabel{X: labelW + step(i) + cellW/2, Y: top - 8, Text: cut(b.label), Rotate: rotate}
			if rotate {
				c.X = labelW + step(i) + cellW/2 - 4
			}
			r := axisLabel{X: labelW - labelSpace/2 - 2, Y: top + stepY(i) + cellH/2 + 4, Text: cut(b.label)}
			if full := cmp.Or(b.full, b.label); c.Text != full {
				c.Full, r.Full = full, full
			}
			hm.Cols, hm.Rows = append(hm.Cols, c), append(hm.Rows, r)
		}
		if rotate {
			hm.AxisY = top - 8
		}
		for i, a := range bs {
			for j, b := range bs {
				box := rect{X: labelW + step(j), Y: top + stepY(i), W: cellW, H: cellH}
				st := stats[[2]int{i, j}]
				if i == j && len(a.nodes) == 1 {
					hm.Blank = append(hm.Blank, box)
					continue
				}
				c := heatCell{From: a.label, To: b.label, Layer: string(layer), Metric: m.id, rect: box,
					Outline: rect{X: box.X + 2, Y: box.Y + 2, W: cellW - 4, H: cellH - 4},
					TX:      box.X + cellW/2, TY: box.Y + cellH/2 + 4}
				if st == nil {
					st = &blockStat{}
				}
				p := st.worst
				c.Broken = len(st.findings) > 0 || st.unreachable > 0
				text, t, ok := m.value(p)
				switch {
				case st.pairs == 0:
					c.Text, c.Fill, c.NoData = "–", noDataFill, true
				case st.known == 0:
					c.Text, c.Fill, c.NoData = "?", noDataFill, true
				case st.unreachable == st.known:
					c.Text, c.Fill, c.Long = "unreachable", shade(1), true
				case !ok && st.unreachable == 0 && p.FullSizeLost == 0 && p.Errors == nil:
					// Reachable, and a full-sized packet crossed (the
					// doctor's cheap check): not this metric, but not
					// nothing either.
					c.Text, c.Fill, c.NoData = "✓", reachedFill, true
				case !ok:
					c.Text, c.Fill, c.NoData = "–", noDataFill, true
				default:
					c.Text, c.Fill = text, shade(t)
				}
				if len(a.nodes) == 1 && len(b.nodes) == 1 {
					c.Tip = cellTip(a.label, b.label, layer, m.id, p, st.pairs > 0, st.findings)
				} else {
					c.Tip = blockTip(a, b, layer, m.id, st)
				}
				hm.Cells = append(hm.Cells, c)
			}
		}
		hl.Maps = append(hl.Maps, hm)
	}
	return hl
}

// blockTip is the tooltip of a block's cell: the blocks, what their pairs
// showed, and the worst value with the pair it came from.
func blockTip(a, b block, layer model.Layer, metric string, st *blockStat) string {
	lines := []string{fmt.Sprintf("%s → %s (%s layer)", cmp.Or(a.full, a.label), cmp.Or(b.full, b.label), layer),
		fmt.Sprintf("%d pairs: %d measured, %d unreachable, %d with a problem listed below", st.pairs, st.known, st.unreachable, st.problems)}
	if st.known > st.unreachable {
		w := st.worst
		switch metric {
		case "mtu":
			if w.PathMTU > 0 {
				lines = append(lines, fmt.Sprintf("smallest path MTU %d bytes", w.PathMTU))
			} else {
				lines = append(lines, "path MTU not measured on these pairs")
			}
		case "loss":
			lines = append(lines, fmt.Sprintf("most UDP loss %.1f %%", w.LossPct))
		case "rtt":
			if w.RTTMs != nil {
				lines = append(lines, fmt.Sprintf("slowest RTT p50 %s ms", ms(w.RTTMs.P50)))
			}
		}
	}
	if len(st.findings) > 0 {
		lines = append(lines, "in error finding: "+strings.Join(st.findings, ", "))
	}
	return strings.Join(lines, "\n")
}

// layerNodes are the nodes of one layer, in the order they first appear.
func layerNodes(pairs model.Pairs, layer model.Layer) []string {
	var nodes []string
	seen := map[string]bool{}
	for _, p := range pairs.All() {
		if p.Layer != layer {
			continue
		}
		for _, n := range []string{p.From, p.To} {
			if !seen[n] {
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
	}
	return nodes
}

const (
	noDataFill  = "#eeeeee"
	reachedFill = "#e2f1e5" // reachable, this metric not measured
)

// grid returns the nodes of one layer, in the order they first appear, and
// its pairs by (from, to).
func grid(pairs model.Pairs, layer model.Layer) ([]string, map[[2]string]model.Pair) {
	at := map[[2]string]model.Pair{}
	for _, p := range pairs.All() {
		if p.Layer == layer {
			at[[2]string{p.From, p.To}] = p
		}
	}
	return layerNodes(pairs, layer), at
}

// cellTip is the tooltip of one cell: the pair, the metric in full, and why
// the pair is marked.
func cellTip(from, to string, layer model.Layer, metric string, p model.Pair, measured bool, findings []string) string {
	lines := []string{fmt.Sprintf("%s → %s (%s layer)", from, to, layer)}
	switch {
	case !measured:
		lines = append(lines, "not measured")
	case !p.Known():
		lines = append(lines, "unknown")
	case !p.Reachable:
		lines = append(lines, "unreachable")
	case metric == "mtu":
		if p.PathMTU == 0 {
			lines = append(lines, "path MTU not measured")
			break
		}
		s := fmt.Sprintf("path MTU %d bytes", p.PathMTU)
		if p.PathMTULimit != "" {
			s += ", limited by: " + p.PathMTULimit
		}
		if p.LocalMTU > 0 {
			s += fmt.Sprintf(", sender's interface MTU %d", p.LocalMTU)
		}
		lines = append(lines, s)
	case metric == "loss":
		s := fmt.Sprintf("UDP loss %.1f %%", p.LossPct)
		if p.ICMPLossPct != nil {
			s += fmt.Sprintf(", ICMP loss %.1f %%", *p.ICMPLossPct)
		}
		lines = append(lines, s)
	case metric == "rtt":
		if p.RTTMs == nil {
			lines = append(lines, "RTT not measured")
			break
		}
		lines = append(lines, fmt.Sprintf("RTT p50 %s ms, p99 %s ms", ms(p.RTTMs.P50), ms(p.RTTMs.P99)))
		if p.JitterMs > 0 {
			lines = append(lines, fmt.Sprintf("jitter %s ms", ms(p.JitterMs)))
		}
	}
	if measured {
		lines = append(lines, pairProblems(p)...)
	}
	if len(findings) > 0 {
		lines = append(lines, "in error finding: "+strings.Join(findings, ", "))
	}
	return strings.Join(lines, "\n")
}

// pairProblems lists what went wrong on a pair, as the text report does.
func pairProblems(p model.Pair) []string {
	var what []string
	switch {
	case p.Unknown != "":
		return []string{"not measured: " + p.Unknown}
	case p.NoAgent:
		what = append(what, "not measured: no agent answers there, though its host does (ICMP port unreachable, an echo or a TCP handshake)")
	case !p.Reachable:
		what = append(what, "unreachable")
	}
	if p.Stalled {
		what = append(what, "bulk TCP transfer stalled")
	}
	if p.PathMTUError != "" {
		what = append(what, "path MTU not measured: "+p.PathMTUError)
	}
	return append(what, p.Errors...)
}

// shade maps t from 0 (green) through amber to 1 (red) as a light fill, so
// that dark text stays readable on every cell.
func shade(t float64) string {
	t = math.Max(0, math.Min(1, t))
	return hslHex(130*(1-t), 0.62, 0.78)
}

// hslHex converts hue (degrees), saturation and lightness (0–1) to #rrggbb.
func hslHex(h, s, l float64) string {
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	var r, g, b float64
	switch {
	case h < 60:
		r, g = c, x
	case h < 120:
		r, g = x, c
	default:
		g, b = c, x
	}
	m := l - c/2
	to := func(v float64) int { return int(math.Round((v + m) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", to(r), to(g), to(b))
}

func severityRank(s string) int {
	switch s {
	case model.SeverityError:
		return 0
	case model.SeverityWarning:
		return 1
	case model.SeverityInfo:
		return 2
	}
	return 3
}

func plural(n int, s string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", s)
	}
	return fmt.Sprintf("%d %ss", n, s)
}

func cut(name string) string {
	r := []rune(name)
	if len(r) <= maxLabel {
		return name
	}
	return string(r[:maxLabel-1]) + "…"
}

// ms prints milliseconds with three significant digits and no exponent.
func ms(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func duration(msec float64) string {
	if msec < 1000 {
		return fmt.Sprintf("%.0f ms", msec)
	}
	return fmt.Sprintf("%.1f s", msec/1000)
}

var htmlPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>podpath report</title>
<style>
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; color: #1a1a1a; background: #fafafa; margin: 0; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 0; display: inline; }
.meta { color: #555; margin: 0 0 12px; }
.finding { background: #fff; border: 1px solid #ddd; border-left: 6px solid #888; border-radius: 4px; padding: 10px 14px; margin: 10px 0; }
.finding.error { border-left-color: #c62828; }
.finding.warning { border-left-color: #ef8f00; }
.finding.info { border-left-color: #1e6fc2; }
.badge { display: inline-block; font-size: 12px; font-weight: bold; text-transform: uppercase; letter-spacing: .04em; color: #fff; background: #888; border-radius: 3px; padding: 1px 7px; margin-right: 8px; vertical-align: 2px; }
.badge.error { background: #c62828; }
.badge.warning { background: #b86e00; }
.badge.info { background: #1e6fc2; }
.id { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; color: #555; margin-left: 8px; }
.finding p { margin: 6px 0; }
.label { font-weight: bold; }
.chip { display: inline-block; font-family: "DejaVu Sans Mono", monospace; font-size: 12px; background: #f0f0f0; border: 1px solid #ddd; border-radius: 3px; padding: 0 5px; margin: 1px 2px; }
.finding ul { margin: 4px 0; padding-left: 22px; }
.remedy { background: #f3f8f1; border: 1px solid #cfe3c8; border-radius: 4px; padding: 6px 10px; margin-top: 8px; }
pre { background: #1f2328; color: #f0f0f0; border-radius: 4px; padding: 8px 10px; overflow-x: auto; font: 12.5px/1.4 "DejaVu Sans Mono", monospace; margin: 6px 0 2px; }
.ok { color: #2e7d32; }
.maps { display: flex; flex-wrap: wrap; gap: 16px 20px; align-items: flex-start; }
figure { width: min-content; margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 8px 10px; max-width: 100%; overflow-x: auto; }
figcaption { font-weight: bold; margin-bottom: 4px; }
.legend { font-size: 12px; color: #555; margin: 4px 0 0; }
.key { font-size: 13px; color: #444; }
.key .swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; border: 3px solid #b00020; border-radius: 2px; background: #f2b8b8; }
svg.heatmap { display: block; font: 12px "DejaVu Sans", sans-serif; }
svg.heatmap .axis { fill: #777; font-size: 11px; }
svg.heatmap .name { fill: #333; }
svg.heatmap .cell text { fill: #1a1a1a; text-anchor: middle; }
svg.heatmap .cell.nodata text { fill: #888; }
svg.heatmap .cell.broken text { font-weight: bold; }
svg.heatmap .cell text.long { font-size: 11px; font-weight: normal; }
svg.heatmap .outline { fill: none; stroke: #b00020; stroke-width: 3.5; }
svg.heatmap .blank { fill: none; stroke: #e4e4e4; stroke-dasharray: 3 3; }
ul.problems { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
table.services { border-collapse: collapse; background: #fff; font-size: 13px; }
table.services th, table.services td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
table.services tr.failed td { background: #fbe3e3; }
table.services tr.unknown td { color: #777; }
table.services td.svc { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; color: #555; }
</style>
</head>
<body>
<h1>podpath report</h1>
<p class="meta">{{.Pairs}} pairs measured in {{.Duration}}{{if .Counts}} · {{.Counts}}{{end}}</p>

<section id="findings">
<h2>Findings</h2>
{{- range .Findings}}
<article class="finding {{.Severity}}" id="finding-{{.ID}}" data-severity="{{.Severity}}">
<span class="badge {{.Severity}}">{{.Severity}}</span><h3>{{.Title}}</h3><span class="id">{{.ID}}</span>
{{- if .Summary}}
<p>{{.Summary}}</p>
{{- end}}
{{- if .Nodes}}
<p><span class="label">Nodes:</span>{{range .Nodes}} <span class="chip">{{.}}</span>{{end}}</p>
{{- end}}
{{- if .PairText}}
<p><span class="label">Affected pairs:</span>{{range .PairText}} <span class="chip">{{.}}</span>{{end}}</p>
{{- end}}
{{- if .Evidence}}
<p class="label">Evidence:</p>
<ul>
{{- range .Evidence}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
{{- with .Remedy}}
<div class="remedy">
<p><span class="label">Remedy:</span> {{.Summary}}</p>
{{- if .MTU}}
<p><span class="label">MTU:</span> {{.MTU}}</p>
{{- end}}
{{- if .Commands}}
<pre>{{range $i, $c := .Commands}}{{if $i}}
{{end}}{{$c}}{{end}}</pre>
{{- end}}
</div>
{{- end}}
</article>
{{- else}}
<p class="ok">No findings: nothing wrong was seen on the pairs measured.</p>
{{- end}}
</section>
{{- range .Layers}}

<section class="layer" id="layer-{{.Name}}" data-layer="{{.Name}}">
<h2>{{.Title}}</h2>
<p class="key">Rows send, columns receive. <span class="swatch"></span> red outline: the pair is unreachable or named by an error finding. Hover a cell for details.</p>
<div class="maps">
{{- range .Maps}}
<figure data-metric="{{.Metric}}">
<figcaption>{{.Title}}</figcaption>
<svg class="heatmap" role="img" aria-label="{{.Title}}" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
<text class="axis" x="2" y="{{.AxisY}}">from ↓ to →</text>
{{- range .Cols}}
<text class="name" x="{{.X}}" y="{{.Y}}"{{if .Rotate}} transform="rotate(-45 {{.X}} {{.Y}})"{{else}} text-anchor="middle"{{end}}>{{.Text}}{{if .Full}}<title>{{.Full}}</title>{{end}}</text>
{{- end}}
{{- range .Rows}}
<text class="name" x="{{.X}}" y="{{.Y}}" text-anchor="end">{{.Text}}{{if .Full}}<title>{{.Full}}</title>{{end}}</text>
{{- end}}
{{- range .Blank}}
<rect class="blank" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="3"/>
{{- end}}
{{- range .Cells}}
<g class="cell{{if .Broken}} broken{{end}}{{if .NoData}} nodata{{end}}" data-from="{{.From}}" data-to="{{.To}}" data-layer="{{.Layer}}" data-metric="{{.Metric}}"><title>{{.Tip}}</title><rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="3" fill="{{.Fill}}"/>{{if .Broken}}{{with .Outline}}<rect class="outline" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="2"/>{{end}}{{end}}<text x="{{.TX}}" y="{{.TY}}"{{if .Long}} class="long"{{end}}>{{.Text}}</text></g>
{{- end}}
</svg>
<p class="legend">{{.Legend}}</p>
</figure>
{{- end}}
</div>
{{- if .Problems}}
<p class="label">Problems on this layer:</p>
<ul class="problems">
{{- range .Problems}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
</section>
{{- end}}
{{- if .Services}}

<section id="services">
<h2>Services</h2>
<p class="key">Each node's Pod through a ClusterIP (the sending node's kube-proxy does the DNAT), and its host through another node's NodePort (that node's kube-proxy does it), of Services whose one backend is a Pod on another node.</p>
<table class="services">
<tr><th>path</th><th>from</th><th>to</th><th>result</th><th>Service</th></tr>
{{- range .Services}}
<tr class="{{if .Unknown}}unknown{{else if not .OK}}failed{{else}}ok{{end}}" data-from="{{.From}}" data-to="{{.To}}" data-ok="{{.OK}}" data-kind="{{.Kind}}"><td>{{.Kind}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{if .OK}}✓{{else if .Unknown}}?{{else}}✗{{end}} {{.Result}}</td><td class="svc">{{.Service}}</td></tr>
{{- end}}
</table>
{{- if .KubeProxy}}
<p class="label">kube-proxy:</p>
<ul class="problems">
{{- range .KubeProxy}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
</section>
{{- end}}
{{- if .DNS}}

<section id="dns">
<h2>Cluster DNS</h2>
<p class="key">Each node's Pod asks the cluster DNS Service and every CoreDNS Pod a small and a large question (larger than the MTU: IP fragments over UDP), over UDP and over TCP.</p>
<table class="services">
<tr><th>from</th><th>asked</th><th>result</th></tr>
{{- range .DNS}}
<tr class="{{if .Unknown}}unknown{{else if not .OK}}failed{{else}}ok{{end}}" data-from="{{.From}}" data-server="{{.Server}}" data-ok="{{.OK}}"><td>{{.From}}</td><td>{{.Server}}</td><td>{{if .OK}}✓{{else if .Unknown}}?{{else}}✗{{end}} {{.Result}}</td></tr>
{{- end}}
</table>
</section>
{{- end}}
{{- if .Nodes}}

<section id="nodes">
<h2>Node errors</h2>
<ul class="problems">
{{- range .Nodes}}
<li>{{.}}</li>
{{- end}}
</ul>
</section>
{{- end}}
</body>
</html>
`))
