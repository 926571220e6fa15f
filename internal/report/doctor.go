package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"podpath/internal/model"
)

var severityMark = map[string]string{model.SeverityError: "✗ ERROR", model.SeverityWarning: "! WARNING", model.SeverityInfo: "i INFO"}

// DoctorText renders findings first (what is wrong, the evidence, the fix),
// then compact node×node matrices of the measurements.
func DoctorText(w io.Writer, r *model.Report) {
	configText(w, r.Config)
	var unknown []string // what is not known, pair by pair
	for _, p := range r.Pairs.All() {
		if what := pairProblems(p); len(what) > 0 && (!p.Known() || p.PathMTUError != "") {
			unknown = append(unknown, esc(fmt.Sprintf("%s %s → %s: %s", pairLayer(p), p.From, p.To, strings.Join(what, "; "))))
		}
	}
	if len(r.Findings) == 0 {
		if len(unknown) == 0 {
			fmt.Fprintln(w, "✓ No problems found: every pair reachable, path MTUs match the configured MTUs, no drops, routes or sessions missing.")
		} else {
			fmt.Fprintf(w, "✓ No problems found in what was measured; %d pairs are not fully measured (? below), and nothing is claimed about them.\n", len(unknown))
		}
	}
	FindingsText(w, r.Findings)
	eachMatrix(w, r.Pairs, func(name string, ps model.Pairs, l model.Layer) {
		fmt.Fprintf(w, "%s — path MTU (bytes; * = below the sender's MTU, larger packets vanish; ^ = below it, a router says so; x = unreachable; ? = not measured):\n", name)
		matrix(w, ps, l, mtuCell("x"))
		fmt.Fprintf(w, "%s — RTT p50 ms / loss %%:\n", name)
		matrix(w, ps, l, func(p model.Pair) string {
			switch {
			case !p.Known():
				return "?"
			case p.RTTMs == nil:
				return "x"
			}
			return fmt.Sprintf("%.2f/%.0f", p.RTTMs.P50, p.LossPct)
		})
		fmt.Fprintln(w)
	})
	servicesText(w, r)
	dnsText(w, r)
	if len(unknown) > 0 {
		fmt.Fprintln(w, "? not measured:")
		for _, u := range capped(unknown, 12) {
			fmt.Fprintf(w, "  %s\n", u)
		}
		fmt.Fprintln(w)
	}
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	pairs := plural(r.Pairs.Len(), "pair")
	if len(r.Services) > 0 {
		pairs += ", " + plural(len(r.Services), "Service check")
	}
	if len(r.DNS) > 0 {
		pairs += ", " + plural(len(r.DNS), "DNS check")
	}
	fmt.Fprintf(w, "%s, %s, %s; %s, %s in %.1fs\n", plural(counts[model.SeverityError], "error"), plural(counts[model.SeverityWarning], "warning"),
		plural(counts[model.SeverityInfo], "note"), pairs, plural(len(r.Nodes), "node"), r.DurationMs/1000)
}

// capped keeps the first n lines and says how many more there were.
func capped(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(lines[:n:n], fmt.Sprintf("… and %d more", len(lines)-n))
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// JUnit renders one test case per rule and scope: a rule that found
// something fails once per finding (scope: its nodes), a rule that found
// nothing passes once. Info findings pass, with their text as output.
func JUnit(w io.Writer, r *model.Report, catalogue []string) error {
	suite := junitSuite{Name: "podpath doctor", Time: fmt.Sprintf("%.3f", r.DurationMs/1000)}
	for _, id := range catalogue {
		fired := false
		for _, f := range r.Findings {
			if f.ID != id {
				continue
			}
			fired = true
			scope := "cluster"
			if len(f.Nodes) > 0 {
				scope = strings.Join(f.Nodes, ",")
			}
			if fam := model.FamilyName(f.Family); fam != "" {
				scope += " " + fam // a dual-stack run's IPv6 finding: its own case
			}
			c := junitCase{Name: id + " [" + scope + "]", Classname: "podpath." + id}
			body := f.Summary + "\n" + strings.Join(f.Evidence, "\n")
			if f.Remedy != nil {
				body += "\nfix: " + f.Remedy.Summary
			}
			if f.Severity == model.SeverityInfo {
				c.SystemOut = body
			} else {
				c.Failure = &junitFailure{Message: f.Title, Type: f.Severity, Body: body}
				suite.Failures++
			}
			suite.Cases = append(suite.Cases, c)
		}
		if !fired {
			suite.Cases = append(suite.Cases, junitCase{Name: id + " [cluster]", Classname: "podpath." + id})
		}
	}
	for _, c := range append(serviceCases(r), dnsCases(r)...) {
		if c.Failure != nil {
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{suite}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// configText says, before the findings, what configuration the run read.
func configText(w io.Writer, c *model.Config) {
	if c == nil || c.Source != "cluster" {
		return
	}
	line := "Cluster: CNI " + c.CNI
	if c.Install != "" {
		line += " (" + c.Install + " install)"
	}
	fmt.Fprintln(w, esc(line))
	for _, s := range c.Sources {
		fmt.Fprintf(w, "  %s\n", esc(s))
	}
	if len(c.NotReady) > 0 {
		fmt.Fprintf(w, "  not probed (NotReady): %s\n", strings.Join(escAll(c.NotReady), ", "))
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "  %s\n", esc(n))
	}
	fmt.Fprintln(w)
}

// textEvidence is how many evidence lines a finding shows in text.
const textEvidence = 14

// FindingsText prints findings as the doctor does: mark, ID, title, summary,
// nodes, evidence and the fix with its commands.
func FindingsText(w io.Writer, findings []model.Finding) {
	for _, f := range findings {
		fmt.Fprintf(w, "%s %s: %s\n", severityMark[f.Severity], esc(f.ID), esc(f.Title))
		fmt.Fprintf(w, "  %s\n", esc(f.Summary))
		if len(f.Nodes) > 0 {
			fmt.Fprintf(w, "  nodes: %s\n", strings.Join(escAll(f.Nodes), ", "))
		}
		if len(f.Evidence) > 0 {
			fmt.Fprintln(w, "  evidence:")
			for i, e := range f.Evidence {
				if i == textEvidence && len(f.Evidence) > textEvidence+1 {
					fmt.Fprintf(w, "    - … and %d more (-o json has them all)\n", len(f.Evidence)-i)
					break
				}
				fmt.Fprintf(w, "    - %s\n", esc(e))
			}
		}
		if f.Remedy != nil {
			fmt.Fprintf(w, "  fix: %s\n", esc(f.Remedy.Summary))
			for _, c := range f.Remedy.Commands {
				fmt.Fprintf(w, "    $ %s\n", esc(c))
			}
		}
		fmt.Fprintln(w)
	}
}
