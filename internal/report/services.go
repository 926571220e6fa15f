package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// serviceRow is one Service check as every report shows it.
type serviceRow struct {
	From, To string
	Kind     string // ClusterIP (from the sender's Pod) or NodePort (from its host)
	OK       bool
	Unknown  bool
	Result   string // what came through, or what failed
	Service  string
}

func serviceRows(r *model.Report) []serviceRow {
	var rows []serviceRow
	for _, p := range r.Services {
		row := serviceRow{From: p.From, To: p.To, Kind: "ClusterIP", Service: p.Service, OK: diagnose.ServiceOK(p)}
		if p.Layer == model.LayerNodePort {
			row.Kind = "NodePort"
		}
		switch {
		case !p.Measured():
			row.Unknown, row.Result = true, p.Unknown
		case row.OK:
			row.Result = fmt.Sprintf("UDP echo %s ms, TCP handshake %s ms, %d KB uploaded", ms(p.RTTMs.P50), ms(p.TCPConnectMs.P50), p.TransferBytes/1000)
		default:
			row.Result = diagnose.ServiceFailure(p)
		}
		if p.Retried != "" {
			row.Result += " (" + p.Retried + ")"
		}
		rows = append(rows, row)
	}
	return rows
}

// kubeProxyLines says each node's kube-proxy state, as its host facts read it.
func kubeProxyLines(r *model.Report) []string {
	var out []string
	for _, n := range r.Nodes {
		if n.Facts == nil || n.Facts.KubeProxy.HealthzAddress == "" {
			continue
		}
		kp := n.Facts.KubeProxy
		rules := "no rule sets"
		if len(kp.Rules) > 0 {
			rules = "rules: " + strings.Join(kp.Rules, ", ")
		}
		out = append(out, fmt.Sprintf("%s: %s, %s", n.Name, orUnknown(kp.Healthz, kp.HealthzDetail), rules))
	}
	return out
}

func orUnknown(state, detail string) string {
	switch state {
	case "":
		return "health unknown (" + detail + ")"
	case model.KubeProxyNotListening:
		return "nothing on its health port"
	}
	return state
}

// servicesText lists the Service checks, sender by sender, and kube-proxy.
func servicesText(w io.Writer, r *model.Report) {
	rows := serviceRows(r)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "Services — each node's Pod through the ClusterIP (the sender's kube-proxy does the DNAT), and its host through another node's NodePort (that node's kube-proxy does it), of Services whose one backend is a Pod on another node:")
	lines := make([]string, 0, len(rows))
	for _, row := range rows {
		lines = append(lines, esc(fmt.Sprintf("%s %-9s %s → %s: %s   %s", rowMark(row.OK, row.Unknown), row.Kind, row.From, row.To, row.Result, row.Service)))
	}
	for _, l := range capped(lines, 48) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if kp := kubeProxyLines(r); len(kp) > 0 {
		fmt.Fprintln(w, "kube-proxy:")
		for _, l := range capped(kp, 48) {
			fmt.Fprintf(w, "  %s\n", esc(l))
		}
	}
	fmt.Fprintln(w)
}

// serviceCases are JUnit's Service checks: one case per sending node.
func serviceCases(r *model.Report) []junitCase {
	var checks []senderCheck
	for _, row := range serviceRows(r) {
		checks = append(checks, senderCheck{From: row.From, OK: row.OK, Unknown: row.Unknown,
			Line: fmt.Sprintf("%s %s → %s: %s (%s)", row.Kind, row.From, row.To, row.Result, row.Service)})
	}
	return casesBySender(checks, "service-checks", "podpath.services", "Service checks")
}

// senderCheck is one check as a JUnit case's body lists it.
type senderCheck struct {
	From        string
	OK, Unknown bool
	Line        string
}

// casesBySender makes one JUnit case per sending node, in the order they
// first send: failed when any of its checks failed (unknown ones do not
// count), the checks in its body.
func casesBySender(checks []senderCheck, name, class, what string) []junitCase {
	var senders []string
	for _, c := range checks {
		if !slices.Contains(senders, c.From) {
			senders = append(senders, c.From)
		}
	}
	var cases []junitCase
	for _, n := range senders {
		c := junitCase{Name: name + " [" + n + "]", Classname: class}
		var body []string
		failed := 0
		for _, check := range checks {
			if check.From != n {
				continue
			}
			body = append(body, check.Line)
			if !check.OK && !check.Unknown {
				failed++
			}
		}
		if failed > 0 {
			c.Failure = &junitFailure{Message: fmt.Sprintf("%d of %d %s from %s failed", failed, len(body), what, n), Type: model.SeverityError, Body: strings.Join(body, "\n")}
		} else {
			c.SystemOut = strings.Join(body, "\n")
		}
		cases = append(cases, c)
	}
	return cases
}
