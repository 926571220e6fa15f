package report

import (
	"fmt"
	"io"
	"strings"

	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// dnsRow is one cluster DNS check as every report shows it.
type dnsRow struct {
	From    string
	Server  string // the Service, or the CoreDNS Pod and its node
	OK      bool
	Unknown bool
	Result  string // each question's answer or failure
}

func dnsRows(r *model.Report) []dnsRow {
	var rows []dnsRow
	for _, p := range r.DNS {
		row := dnsRow{From: p.From, Server: "Service " + p.Service, OK: diagnose.DNSOK(p)}
		if p.To != "" {
			row.Server = p.ToPod + " on " + p.To
		}
		if !p.Measured() {
			row.Unknown, row.Result = true, p.Unknown
		} else {
			var parts []string
			for _, a := range p.DNS {
				parts = append(parts, dnsAnswerWords(a))
			}
			row.Result = strings.Join(parts, ", ")
		}
		if p.Retried != "" {
			row.Result += " (" + p.Retried + ")"
		}
		rows = append(rows, row)
	}
	return rows
}

// dnsAnswerWords: "UDP small 0.4 ms", "TCP large 2967 B 1.1 ms", "UDP large timeout".
func dnsAnswerWords(a model.DNSAnswer) string {
	head := strings.ToUpper(a.Transport) + " " + a.Size
	if !a.OK() {
		return head + " ✗ " + diagnose.DNSFailure(a)
	}
	if a.Size == "large" {
		return fmt.Sprintf("%s %d B %.1f ms", head, a.Bytes, a.RTTMs)
	}
	return fmt.Sprintf("%s %.1f ms", head, a.RTTMs)
}

func rowMark(ok, unknown bool) string {
	switch {
	case unknown:
		return "?"
	case !ok:
		return "✗"
	}
	return "✓"
}

// dnsText lists the cluster DNS checks, sender by sender.
func dnsText(w io.Writer, r *model.Report) {
	rows := dnsRows(r)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "Cluster DNS — each node's Pod asks the DNS Service and every CoreDNS Pod a small and a large question (over the MTU: IP fragments over UDP), over UDP and TCP:")
	lines := make([]string, 0, len(rows))
	for _, row := range rows {
		lines = append(lines, esc(fmt.Sprintf("%s %s → %s: %s", rowMark(row.OK, row.Unknown), row.From, row.Server, row.Result)))
	}
	for _, l := range capped(lines, 48) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintln(w)
}

// dnsCases are JUnit's cluster DNS checks: one case per asking node.
func dnsCases(r *model.Report) []junitCase {
	var checks []senderCheck
	for _, row := range dnsRows(r) {
		checks = append(checks, senderCheck{From: row.From, OK: row.OK, Unknown: row.Unknown,
			Line: fmt.Sprintf("%s → %s: %s", row.From, row.Server, row.Result)})
	}
	return casesBySender(checks, "dns-checks", "podpath.dns", "cluster DNS checks")
}
