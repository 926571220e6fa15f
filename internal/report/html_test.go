package report

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"podpath/internal/model"
)

// seedHTMLReport is the seed case as `podpath doctor` sees it: the seed
// pairs, a slower lossy underlay link for the colour scales, and findings of
// every severity. Only the error finding's pairs (and the unreachable
// node4 → node1) may be marked broken.
func seedHTMLReport() *model.Report {
	r := seedReport()
	ps := r.Pairs.Slice()
	for i := range ps {
		p := &ps[i]
		if p.Layer == model.LayerNode && p.From == "node2" && p.To == "node3" {
			p.LossPct, p.RTTMs.P50, p.RTTMs.P99 = 5, 0.4, 1.9
		}
	}
	r.Findings = []model.Finding{
		{ID: "icmp-filtered", Severity: "info", Title: "ICMP is dropped between node1 and node3",
			Summary: "UDP and TCP cross, ICMP echo does not: ping cannot be used to judge this path.",
			Nodes:   []string{"node1", "node3"}, Pairs: []model.PairRef{{From: "node1", To: "node3", Layer: model.LayerNode}}},
		{ID: "mtu-blackhole", Severity: "error", Title: "Packets above 1350 bytes vanish between Pods on node3 and the other nodes",
			Summary: "The Pod MTU (1450) is larger than the path to and from node3 carries (1400 on the underlay); larger packets are dropped without an ICMP error, so TCP stalls once a response is big.",
			Nodes:   []string{"node3"},
			Pairs: []model.PairRef{
				{From: "node1", To: "node3", Layer: model.LayerPod}, {From: "node2", To: "node3", Layer: model.LayerPod},
				{From: "node3", To: "node1", Layer: model.LayerPod}, {From: "node3", To: "node2", Layer: model.LayerPod}},
			Evidence: []string{
				"node1 → node3 (pod): 1350-byte packets cross, 1351-byte packets are lost (pod path MTU 1350, local MTU 1450)",
				"node1 → node3 (node): underlay path MTU 1400, no ICMP fragmentation-needed came back",
				"node1 → node3 (pod): HTTP transfer stalled after 131072 bytes"},
			Remedy: &model.Remedy{Summary: "set calico_mtu: 1350 in the Kubespray inventory and the Calico MTU to 1350, then restart calico-node",
				MTU: 1350,
				Commands: []string{
					`kubectl patch installation default --type merge -p '{"spec":{"calicoNetwork":{"mtu":1350}}}'`,
					"kubectl -n calico-system rollout restart daemonset/calico-node"}}},
		{ID: "mtu-inconsistent", Severity: "warning", Title: "Underlay path MTU differs between nodes",
			Summary: "Paths to and from node3 carry 1400 bytes, the others 1500.", Nodes: []string{"node3"}},
	}
	return r
}

// seedBroken are the (from, to, layer) pairs seedHTMLReport must mark broken.
var seedBroken = []string{
	"node1>node3/pod", "node2>node3/pod", "node3>node1/pod", "node3>node2/pod", // mtu-blackhole
	"node4>node1/node", // unreachable
}

// heatCellInfo is one heatmap cell as found in a rendered page.
type heatCellInfo struct {
	from, to, layer, metric, text string
	classes                       []string
	fill                          string
}

func (c heatCellInfo) key() string { return c.from + ">" + c.to + "/" + c.layer }

func (c heatCellInfo) has(class string) bool { return slices.Contains(c.classes, class) }

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
	})
	return b.String()
}

// heatCells finds every element of class "cell"; the value is the text of
// its <text> child (the tooltip <title> is left out).
func heatCells(doc *html.Node) []heatCellInfo {
	var out []heatCellInfo
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		class, _ := attr(n, "class")
		classes := strings.Fields(class)
		if !slices.Contains(classes, "cell") {
			return
		}
		c := heatCellInfo{classes: classes}
		c.from, _ = attr(n, "data-from")
		c.to, _ = attr(n, "data-to")
		c.layer, _ = attr(n, "data-layer")
		c.metric, _ = attr(n, "data-metric")
		for k := n.FirstChild; k != nil; k = k.NextSibling {
			switch {
			case k.Type != html.ElementNode:
			case k.Data == "text":
				c.text = textOf(k)
			case k.Data == "rect" && c.fill == "":
				c.fill, _ = attr(k, "fill")
			}
		}
		out = append(out, c)
	})
	return out
}

// brokenKeys lists the distinct pairs of the broken cells, sorted, and how
// many broken cells there are.
func brokenKeys(cells []heatCellInfo) ([]string, int) {
	var keys []string
	n := 0
	for _, c := range cells {
		if c.has("broken") {
			n++
			if !slices.Contains(keys, c.key()) {
				keys = append(keys, c.key())
			}
		}
	}
	slices.Sort(keys)
	return keys, n
}

func findID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if v, _ := attr(n, "id"); n.Type == html.ElementNode && v == id && found == nil {
			found = n
		}
	})
	return found
}

func renderHTML(t *testing.T, r *model.Report) ([]byte, *html.Node) {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatalf("HTML: %v", err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("output does not parse as HTML: %v", err)
	}
	return b.Bytes(), doc
}

func TestHTMLGolden(t *testing.T) {
	got, _ := renderHTML(t, seedHTMLReport())
	golden(t, "html-seed.html", got)
}

func TestHTMLIsPure(t *testing.T) {
	a, _ := renderHTML(t, seedHTMLReport())
	b, _ := renderHTML(t, seedHTMLReport())
	if !bytes.Equal(a, b) {
		t.Error("two renderings of the same report differ")
	}
}

func TestHTMLWellFormed(t *testing.T) {
	raw, doc := renderHTML(t, seedHTMLReport())
	if !bytes.HasPrefix(raw, []byte("<!DOCTYPE html>")) {
		t.Errorf("output starts %q; want a doctype", raw[:min(len(raw), 20)])
	}
	// The tokenizer is stricter than Parse about what it meets: every start
	// tag of an element that needs an end tag must be closed, in order.
	z := html.NewTokenizer(bytes.NewReader(raw))
	var open []string
	void := map[string]bool{"meta": true, "rect": true, "br": true}
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("tokenize: %v", z.Err())
			}
			break
		}
		name, _ := z.TagName()
		switch tt {
		case html.StartTagToken:
			if !void[string(name)] {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			if len(open) == 0 || open[len(open)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, open)
			}
			open = open[:len(open)-1]
		}
	}
	if len(open) > 0 {
		t.Errorf("unclosed elements: %v", open)
	}
	var title string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "title" && n.Parent.Data == "head" {
			title = textOf(n)
		}
	})
	if title != "podpath report" {
		t.Errorf("title %q; want %q", title, "podpath report")
	}
}

func TestHTMLSelfContained(t *testing.T) {
	raw, doc := renderHTML(t, seedHTMLReport())
	for _, s := range []string{"http://", "https://", "url(", "@import"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("output contains %q; want nothing fetched", s)
		}
	}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script", "link", "img", "iframe", "object", "embed", "image", "use":
			t.Errorf("output has a <%s> element; want nothing that loads", n.Data)
		}
		for _, a := range n.Attr {
			switch strings.TrimPrefix(a.Key, "xlink:") {
			case "src", "href", "srcset", "action", "poster":
				if !strings.HasPrefix(a.Val, "#") {
					t.Errorf("<%s %s=%q>: want no reference outside the page", n.Data, a.Key, a.Val)
				}
			}
		}
	})
}

func TestHTMLHeatmaps(t *testing.T) {
	_, doc := renderHTML(t, seedHTMLReport())
	cells := heatCells(doc)

	// node layer: node1..node4 (node4 only as a sender), 4×3 cells a metric;
	// pod layer: node1..node3, 3×2 cells a metric.
	if got, want := len(cells), 3*(4*3+3*2); got != want {
		t.Errorf("%d cells; want %d", got, want)
	}
	perPair := map[string][]string{}
	for _, c := range cells {
		if c.from == "" || c.to == "" || c.layer == "" || c.metric == "" {
			t.Errorf("cell %+v lacks a data- attribute", c)
		}
		if c.from == c.to {
			t.Errorf("diagonal cell %s: want it blank", c.key())
		}
		perPair[c.key()] = append(perPair[c.key()], c.metric)
	}
	for k, metrics := range perPair {
		slices.Sort(metrics)
		if !slices.Equal(metrics, []string{"loss", "mtu", "rtt"}) {
			t.Errorf("%s has cells %v; want one each of loss, mtu, rtt", k, metrics)
		}
	}

	keys, n := brokenKeys(cells)
	want := slices.Sorted(slices.Values(seedBroken))
	if !slices.Equal(keys, want) {
		t.Errorf("broken pairs %v; want %v", keys, want)
	}
	if n != 3*len(seedBroken) {
		t.Errorf("%d broken cells; want %d (3 metrics × %d pairs)", n, 3*len(seedBroken), len(seedBroken))
	}

	at := func(key, metric string) heatCellInfo {
		for _, c := range cells {
			if c.key() == key && c.metric == metric {
				return c
			}
		}
		t.Fatalf("no %s cell for %s", metric, key)
		return heatCellInfo{}
	}
	for _, tc := range []struct {
		key, metric, text string
		fill              string // "" = not checked
	}{
		{"node1>node2/node", "mtu", "1500", shade(0)},
		{"node1>node3/node", "mtu", "1400", ""},
		{"node1>node2/pod", "mtu", "1450", shade(0)},
		{"node1>node3/pod", "mtu", "1350", ""},
		{"node1>node2/node", "loss", "0.0", shade(0)},
		{"node2>node3/node", "loss", "5.0", ""},
		{"node1>node2/node", "rtt", "0.061", shade(0)},
		{"node2>node3/node", "rtt", "0.400", ""},
		{"node4>node1/node", "mtu", "unreachable", shade(1)},
		{"node4>node1/node", "rtt", "unreachable", shade(1)},
		{"node1>node4/node", "mtu", "–", noDataFill},
	} {
		t.Run(fmt.Sprintf("%s_%s", strings.NewReplacer(">", "_to_", "/", "_").Replace(tc.key), tc.metric), func(t *testing.T) {
			c := at(tc.key, tc.metric)
			if c.text != tc.text {
				t.Errorf("text %q; want %q", c.text, tc.text)
			}
			if tc.fill != "" && c.fill != tc.fill {
				t.Errorf("fill %s; want %s", c.fill, tc.fill)
			}
			if tc.fill == "" && (c.fill == shade(0) || c.fill == shade(1)) {
				t.Errorf("fill %s; want a shade between green and red", c.fill)
			}
		})
	}
}

func TestHTMLFindings(t *testing.T) {
	raw, doc := renderHTML(t, seedHTMLReport())
	sec := findID(doc, "findings")
	if sec == nil {
		t.Fatal("no #findings section")
	}
	var order []string
	walk(sec, func(n *html.Node) {
		if s, ok := attr(n, "data-severity"); ok {
			order = append(order, s)
		}
	})
	if want := []string{"error", "warning", "info"}; !slices.Equal(order, want) {
		t.Errorf("findings in order %v; want %v", order, want)
	}
	f := findID(doc, "finding-mtu-blackhole")
	if f == nil {
		t.Fatal("no #finding-mtu-blackhole")
	}
	text := textOf(f)
	for _, s := range []string{
		"error", "Packets above 1350 bytes vanish", "node3", "node1 → node3 (pod)", "node3 → node2 (pod)",
		"1351-byte packets are lost", "set calico_mtu: 1350", "MTU: 1350",
		"rollout restart daemonset/calico-node",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("mtu-blackhole finding lacks %q:\n%s", s, text)
		}
	}
	if !bytes.Contains(raw, []byte(`<pre>kubectl patch installation default --type merge -p &#39;{&#34;spec&#34;`)) {
		t.Error("remedy commands are not in a <pre>, escaped")
	}
	if bytes.Index(raw, []byte(`id="findings"`)) > bytes.Index(raw, []byte(`class="heatmap"`)) {
		t.Error("heatmaps come before the findings; want findings first")
	}
}

func TestHTMLEscapes(t *testing.T) {
	r := &model.Report{
		Findings: []model.Finding{{ID: "x", Severity: "error", Title: `<script>alert(1)</script>`,
			Pairs: []model.PairRef{{From: `"><b>`, To: "b", Layer: model.LayerNode}}}},
		Pairs: model.PairsOf([]model.Pair{{From: `"><b>`, To: "b", Layer: model.LayerNode, Reachable: true, PathMTU: 1500}}),
	}
	_, doc := renderHTML(t, r)
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "b") {
			t.Errorf("a name or title became a <%s> element", n.Data)
		}
	})
	keys, _ := brokenKeys(heatCells(doc))
	if want := []string{`"><b>>b/node`}; !slices.Equal(keys, want) {
		t.Errorf("broken %v; want %v", keys, want)
	}
}

func TestHTMLEmpty(t *testing.T) {
	raw, doc := renderHTML(t, &model.Report{})
	if !bytes.Contains(raw, []byte("No findings")) {
		t.Error("empty report does not say there are no findings")
	}
	if n := len(heatCells(doc)); n != 0 {
		t.Errorf("%d cells in an empty report; want 0", n)
	}
}

func TestShade(t *testing.T) {
	for _, tc := range []struct {
		t    float64
		want string
	}{
		{0, "#a4eab0"}, // green
		{0.5, "#e4eaa4"},
		{1, "#eaa4a4"}, // red
		{-1, "#a4eab0"},
		{2, "#eaa4a4"},
	} {
		if got := shade(tc.t); got != tc.want {
			t.Errorf("shade(%v) = %s; want %s", tc.t, got, tc.want)
		}
	}
}

// A pair the controller could not ask is "?": grey, not broken, with why.
func TestHTMLUnknownPair(t *testing.T) {
	r := seedHTMLReport()
	r.Pairs = model.PairsOf(append(r.Pairs.Slice(), model.Pair{From: "node1", To: "node4", Layer: model.LayerNode,
		Unknown: "the controller could not ask the agent on node1: context deadline exceeded"}))
	_, doc := renderHTML(t, r)
	var found bool
	for _, c := range heatCells(doc) {
		if c.key() != "node1>node4/node" {
			continue
		}
		found = true
		if c.text != "?" || c.fill != noDataFill || c.has("broken") {
			t.Errorf("%s %s cell: text %q, fill %s, classes %v; want ?, grey, not broken", c.key(), c.metric, c.text, c.fill, c.classes)
		}
	}
	if !found {
		t.Fatal("no cell for node1 → node4")
	}
}

// A finding on one node of a large cluster names hundreds of pairs: the
// page lists a few, says how many more, and leaves the rest to the JSON.
func TestHTMLCapsAFindingsLists(t *testing.T) {
	f := model.Finding{ID: "mtu-blackhole", Severity: model.SeverityError, Title: "t", Nodes: []string{"node3"}}
	for i := range 100 {
		f.Pairs = append(f.Pairs, model.PairRef{From: "node3", To: fmt.Sprint("node", i+10), Layer: model.LayerPod})
		f.Evidence = append(f.Evidence, fmt.Sprintf("pod node3 → node%d: 1350 of 1450 bytes cross", i+10))
	}
	evidence := f.Evidence
	page, _ := renderHTML(t, &model.Report{Findings: []model.Finding{f}})
	for _, want := range []string{"node3 → node33 (pod)", "… and 76 more<", "pod node3 → node29: 1350", "… and 80 more (the JSON report has them all)"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, absent := range []string{"node3 → node34 (pod)", "pod node3 → node30: 1350"} {
		if strings.Contains(string(page), absent) {
			t.Errorf("page lists %q, past the cap", absent)
		}
	}
	if len(evidence) != 100 || evidence[20] != "pod node3 → node30: 1350 of 1450 bytes cross" {
		t.Errorf("the report's own evidence was changed")
	}
}

// A dual-stack run: each family's layers apart, the IPv6 ones named so,
// and a finding's broken cells in its own family's map only.
func TestHTMLPerFamily(t *testing.T) {
	r := seedHTMLReport()
	ps := r.Pairs.Slice()
	var six []model.Pair
	for _, p := range ps {
		p.Family = model.FamilyIPv6
		six = append(six, p)
	}
	r.Pairs = model.Join(model.PairsOf(ps), model.PairsOf(six))
	raw, _ := renderHTML(t, r)
	page := string(raw)
	for _, want := range []string{`id="layer-pod"`, `id="layer-pod-ipv6"`, "Pod network to Pod network (overlay) — IPv6"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The IPv4 maps mark what they marked alone: the IPv6 pairs' state
	// stays in the IPv6 maps.
	one, _ := renderHTML(t, seedHTMLReport())
	first, _, _ := strings.Cut(page, `id="layer-node-ipv6"`)
	if got, single := strings.Count(first, `class="cell broken`), strings.Count(string(one), `class="cell broken`); got != single {
		t.Errorf("%d broken cells in the IPv4 maps; want %d, as without the IPv6 pass", got, single)
	}
}
