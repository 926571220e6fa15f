package diagnose

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/findings.md's table of the doctor's findings is the rule registry
// as people read it: the same IDs, in the same (rank) order, with the same
// severities.
func TestFindingsDocMatchesTheRules(t *testing.T) {
	b, err := os.ReadFile("../../docs/findings.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "| ID | severity | means |") })
	if start < 0 {
		t.Fatal("docs/findings.md: no table of the doctor's findings")
	}
	row := regexp.MustCompile("^\\| `([a-z0-9-]+)` \\| ([^|]+) \\|")
	word := regexp.MustCompile(`\b(error|warning|info)\b`)
	var docIDs []string
	for _, l := range lines[start+2:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			break
		}
		docIDs = append(docIDs, m[1])
		sevs := word.FindAllString(m[2], -1)
		i := slices.IndexFunc(Rules, func(r Rule) bool { return r.ID == m[1] })
		if i < 0 {
			continue
		}
		if !slices.Equal(sevs, Rules[i].Severities) {
			t.Errorf("%s: the doc says %q, the rule gives %q", m[1], sevs, Rules[i].Severities)
		}
	}
	if !slices.Equal(docIDs, Catalogue) {
		t.Errorf("docs/findings.md lists\n  %q\nthe rules, in rank order, are\n  %q", docIDs, Catalogue)
	}
}

// Every ID constant has a rule, once.
func TestEveryRuleOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.ID] || r.run == nil || len(r.Severities) == 0 {
			t.Errorf("rule %s: twice, without a check or without a severity", r.ID)
		}
		seen[r.ID] = true
	}
}

// The diagnosis is pure: it links no collector (netlink, nftables), no
// Kubernetes client and no source of evidence (issue 16).
func TestDiagnoseLinksNoCollectorOrSource(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v (the go tool is needed for this check)", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"netlink", "nftables", "k8s.io/client-go", "podpath/internal/cluster", "podpath/internal/hostfacts", "podpath/internal/agent"} {
			if strings.Contains(dep, bad) {
				t.Errorf("diagnose links %s", dep)
			}
		}
	}
}
