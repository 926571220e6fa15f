package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"podpath/internal/promtest"
)

// rulesWithout reads files/alerts.yaml as rule maps, without their annotations (the unit tests
// are about when and with which labels an alert fires), changed by edit.
func rulesWithout(t *testing.T, edit func(rule map[string]any)) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			delete(r, "annotations")
			if edit != nil {
				edit(r)
			}
		}
	}
	out, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testRules runs promtool's unit tests (tests/alerts_test.yaml) over rules.
func testRules(t *testing.T, promtool string, rules []byte) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	tests, err := os.ReadFile(filepath.Join(chartDir(t), "tests", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"alerts.yaml": rules, "alerts_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "test", "rules", "alerts_test.yaml")
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// Prometheus's own promtool: the rule file as Prometheus loads it, and every alert firing on
// the series that should fire it, after its `for:`, with its labels, and not on the near-misses
// (tests/alerts_test.yaml). The tests are shown to bite: each alert without its `for:`, or with
// an expression that never holds, fails them.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool := filepath.Join(promtest.Tools(t), "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	check := exec.CommandContext(ctx, promtool, "check", "rules", filepath.Join(chartDir(t), "files", "alerts.yaml"))
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules files/alerts.yaml: %v\n%s", err, out)
	}
	if out, err := testRules(t, promtool, rulesWithout(t, nil)); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	var alerts []string
	rulesWithout(t, func(r map[string]any) { alerts = append(alerts, r["alert"].(string)) })
	if len(alerts) == 0 {
		t.Fatal("no alert in files/alerts.yaml")
	}
	for _, alert := range alerts {
		for what, edit := range map[string]func(map[string]any){
			"without its for:":              func(r map[string]any) { delete(r, "for") },
			"with an expression never true": func(r map[string]any) { r["expr"] = "vector(1) > 2" },
		} {
			rules := rulesWithout(t, func(r map[string]any) {
				if r["alert"] == alert {
					edit(r)
				}
			})
			if out, err := testRules(t, promtool, rules); err == nil || !strings.Contains(string(out), alert) {
				t.Errorf("%s %s: promtool test rules still passes (%v):\n%s", alert, what, err, out)
			}
		}
	}
}
