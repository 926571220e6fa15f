package report

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"podpath/internal/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// seedReport is the seed case as `podpath mtu` and `perf` see it.
func seedReport() *model.Report {
	loss := 100.0
	pair := func(layer model.Layer, from, to string, mtu int, limit string) model.Pair {
		iface := 1500
		if layer == model.LayerPod {
			iface = 1450
		}
		return model.Pair{From: from, To: to, Layer: layer, Reachable: true, PathMTU: mtu, PathMTULimit: limit, IfaceMTU: iface,
			RTTMs: &model.Percentiles{P50: 0.061, P99: 0.2}, TCPConnectMs: &model.Percentiles{P50: 0.09}, HTTPTotalMs: 0.4}
	}
	r := &model.Report{DurationMs: 283}
	var ps []model.Pair
	for _, l := range []model.Layer{model.LayerNode, model.LayerPod} {
		full, cut := 1500, 1400
		if l == model.LayerPod {
			full, cut = 1450, 1350
		}
		ps = append(ps,
			pair(l, "node1", "node2", full, "none"), pair(l, "node1", "node3", cut, "silent"),
			pair(l, "node2", "node1", full, "none"), pair(l, "node2", "node3", cut, "silent"),
			pair(l, "node3", "node1", cut, "silent"), pair(l, "node3", "node2", cut, "silent"))
	}
	ps[7].Stalled, ps[7].TransferBytes = true, 131072
	ps[1].ICMPLossPct = &loss
	ps = append(ps, model.Pair{From: "node4", To: "node1", Layer: model.LayerNode,
		Errors: []string{"agent on node4: connection refused"}})
	r.Pairs = model.PairsOf(ps)
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/report -update to accept):\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file   string
		render func(*bytes.Buffer, *model.Report)
	}{
		{"mtu.txt", func(b *bytes.Buffer, r *model.Report) { MTUText(b, r) }},
		{"perf.txt", func(b *bytes.Buffer, r *model.Report) { PerfText(b, r) }},
		{"report.json", func(b *bytes.Buffer, r *model.Report) { _ = JSON(b, r) }},
		{"doctor.txt", func(b *bytes.Buffer, r *model.Report) { DoctorText(b, withFindings(r)) }},
		{"doctor.json", func(b *bytes.Buffer, r *model.Report) { _ = JSON(b, withFindings(r)) }},
		{"doctor.junit.xml", func(b *bytes.Buffer, r *model.Report) {
			_ = JUnit(b, withFindings(r), []string{"node-unreachable", "mtu-blackhole", "pod-network-partition", "icmp-filtered"})
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			tc.render(&b, seedReport())
			golden(t, tc.file, b.Bytes())
		})
	}
}

// withFindings adds the seed case's diagnosis to a report.
func withFindings(r *model.Report) *model.Report {
	r.Findings = []model.Finding{
		{ID: "mtu-blackhole", Severity: "error", Title: "MTU black hole on paths to and from node3",
			Summary: "Packets larger than 1350 bytes are silently dropped on paths to and from node3.",
			Nodes:   []string{"node3"}, Pairs: []model.PairRef{{From: "node1", To: "node3", Layer: model.LayerPod}},
			Evidence: []string{"pod node1 → node3: 1350 of 1450 bytes cross; larger packets vanish without an ICMP error"},
			Remedy:   &model.Remedy{Summary: "Set the Pod MTU to 1350 (Kubespray: calico_mtu: 1350).", MTU: 1350, Commands: []string{"podpath fix mtu --mtu 1350"}}},
		{ID: "node-unreachable", Severity: "error", Title: "Node node4 is unreachable", Summary: "Nothing could be measured to or from node4.", Nodes: []string{"node4"}},
		{ID: "icmp-filtered", Severity: "info", Title: "ICMP is filtered on paths of node3", Summary: "ping fails while UDP and TCP pass.", Nodes: []string{"node3"}},
	}
	ok := func(from, to string, i int) model.Pair {
		return model.Pair{From: from, To: to, Layer: model.LayerService, Reachable: true, Service: fmt.Sprintf("podpath-1/backend-%d 10.233.0.%d:7946", i, 10+i),
			RTTMs: &model.Percentiles{P50: 0.31}, TCPConnectMs: &model.Percentiles{P50: 0.42}, TCPConnectTried: 2, TransferBytes: 300000}
	}
	failed := model.Pair{From: "node2", To: "node1", Layer: model.LayerService, Service: "podpath-1/backend-0 10.233.0.10:7946", TCPConnectTried: 2,
		Errors: []string{"transfer: connect to 10.233.0.10:7946: i/o timeout"}, Retried: "measured again 2s later: no UDP echo and no TCP handshake"}
	np := ok("node1", "node2", 1)
	np.Layer, np.Service = model.LayerNodePort, "podpath-1/backend-1 NodePort 198.18.0.2:30001"
	r.Services = []model.Pair{ok("node1", "node2", 1), failed, np,
		{From: "node3", To: "node1", Layer: model.LayerService, Service: "podpath-1/backend-0 10.233.0.10:7946", Unknown: "the controller could not ask the agent on node3"}}
	answers := func(fail bool) []model.DNSAnswer {
		var out []model.DNSAnswer
		for _, size := range []string{"small", "large"} {
			for _, tr := range []string{"udp", "tcp"} {
				a := model.DNSAnswer{Name: "kubernetes.default.svc.cluster.local", Type: "A", Transport: tr, Size: size, Bytes: 104, Records: 1, Rcode: "NOERROR", RTTMs: 0.41}
				if size == "large" {
					a.Name, a.Want, a.Bytes, a.Records, a.RTTMs = "dns-large.podpath-1.svc.cluster.local", 2967, 2967, 180, 1.27
				}
				if fail && tr == "udp" {
					a = model.DNSAnswer{Name: a.Name, Type: "A", Transport: tr, Size: size, Want: a.Want, Error: "timeout"}
				}
				out = append(out, a)
			}
		}
		return out
	}
	r.DNS = []model.Pair{
		{From: "node1", FromPod: "probe-node1", Layer: model.LayerDNS, Reachable: true, Service: "kube-system/coredns 10.233.0.3:53", DNS: answers(false)},
		{From: "node1", FromPod: "probe-node1", To: "node2", ToPod: "coredns-7d9f-x2k4q", Layer: model.LayerDNS, Reachable: true, DNS: answers(true),
			Retried: "asked again 1s later, alone"},
		{From: "node3", To: "node2", ToPod: "coredns-7d9f-x2k4q", Layer: model.LayerDNS, Unknown: "the controller could not ask the agent on node3"},
	}
	r.Nodes = []model.NodeInfo{{Name: "node1", Facts: &model.Facts{KubeProxy: model.KubeProxy{Healthz: model.KubeProxyHealthy, HealthzAddress: "http://127.0.0.1:10256/healthz", Rules: []string{"nftables"}}}},
		{Name: "node2", Facts: &model.Facts{KubeProxy: model.KubeProxy{Healthz: model.KubeProxyNotListening, HealthzAddress: "http://127.0.0.1:10256/healthz", HealthzDetail: "connection refused", Rules: []string{"nftables"}}}}}
	return r
}

// A report whose pairs are not all measured never claims they match: the
// clean line says what it covers, the cells are ?, and the reasons follow.
func TestDoctorTextNeverClaimsWhatWasNotMeasured(t *testing.T) {
	r := seedReport()
	r.Pairs = model.PairsOf(append(r.Pairs.Slice()[:1],
		model.Pair{From: "node2", To: "node1", Layer: model.LayerNode, Unknown: "the controller could not ask the agent on node2: context deadline exceeded"},
		model.Pair{From: "node1", To: "node3", Layer: model.LayerNode, Reachable: true, PathMTUError: "path MTU search did not settle in 24 rounds"}))
	var b bytes.Buffer
	DoctorText(&b, r)
	out := b.String()
	for _, want := range []string{
		"No problems found in what was measured; 2 pairs are not fully measured",
		"? not measured:",
		"node node2 → node1: not measured: the controller could not ask the agent on node2",
		"node node1 → node3: path MTU not measured: path MTU search did not settle",
	} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("doctor text lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(b.Bytes(), []byte("path MTUs match")) {
		t.Errorf("doctor text claims path MTUs match above unknown cells:\n%s", out)
	}
}

// thousandNodeReport is a doctor's report of 1,000 nodes as the doctor
// holds it (compact pairs): every pair cheap-checked reachable, three
// peers per node measured in depth at 1500 bytes, and node500 behind a
// 1400-byte black hole its error finding names.
func thousandNodeReport() *model.Report {
	const n = 1000
	name := func(i int) string { return fmt.Sprintf("node%d", i+1) }
	names := func(i int) model.Pair {
		from, k := i/(n-1), i%(n-1)
		to := k
		if k >= from {
			to++
		}
		return model.Pair{From: name(from), To: name(to), Layer: model.LayerNode}
	}
	r := &model.Report{Pairs: model.CompactPairs(n*(n-1), names), DurationMs: 41000}
	f := model.Finding{ID: "mtu-blackhole", Severity: model.SeverityError, Title: "black hole on node500", Nodes: []string{"node500"}}
	for i := range r.Pairs.Len() {
		p := names(i)
		p.Reachable = true
		from, to := i/(n-1), i%(n-1)
		if to >= from {
			to++
		}
		if d := (to - from + n) % n; d == 1 || d == 333 || d == 666 {
			p.PathMTU, p.IfaceMTU, p.PathMTULimit = 1500, 1500, "none"
			p.RTTMs = &model.Percentiles{P50: 0.1, P99: 0.3}
			if p.From == "node500" || p.To == "node500" {
				p.PathMTU, p.PathMTULimit = 1400, "silent"
				f.Pairs = append(f.Pairs, model.PairRef{From: p.From, To: p.To, Layer: p.Layer})
			}
		}
		r.Pairs.Set(i, p)
	}
	r.Findings = []model.Finding{f}
	return r
}

// At 1,000 nodes the text report lists the odd nodes, not a million
// cells: node500 first, with its black hole; nothing else.
func TestDoctorTextThousandNodes(t *testing.T) {
	var b bytes.Buffer
	DoctorText(&b, thousandNodeReport())
	out := b.String()
	if b.Len() > 8<<10 {
		t.Errorf("the text report is %d bytes; want a screenful:\n%.3000s", b.Len(), out)
	}
	for _, want := range []string{"node layer — 1000 nodes, 999000 pairs: 999000 reachable, 3000 measured in depth (path MTU 1400–1500 bytes)",
		"node500", "1400 of 1500"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "NODE") {
			if !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "node500 ") {
				t.Errorf("the first odd node is not node500:\n%s", out)
			}
			// node500's six measured peers have one odd pair each.
			if n := len(lines) - i; n > 12 {
				t.Errorf("%d lines from the table on; want node500 and its six peers:\n%s", n, out)
			}
		}
	}
}
