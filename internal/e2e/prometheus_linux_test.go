//go:build !agentonly

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"podpath/internal/chart"
	"podpath/internal/promtest"
)

// livePeriod is the live Prometheus's scrape and rule evaluation interval.
const livePeriod = 5 * time.Second

// livePrometheus is Prometheus, built from its module, scraping the chart's agents the way the
// chart's PodMonitor says (port agent, path /metrics, a job named namespace/release), with the
// chart's alerts loaded: it runs in node1's network namespace, from where every agent answers.
type livePrometheus struct {
	netns, addr string
}

// startPrometheus starts it over m's agents. The alerts are the chart's with every `for:` cut
// to one evaluation: what they fire on is what this test is about (promtool's unit tests in
// internal/chart hold the `for:`s).
func startPrometheus(t *testing.T, m *monitorLab) *livePrometheus {
	t.Helper()
	bin := filepath.Join(promtest.Tools(t), "prometheus")
	dir := t.TempDir()
	chartDir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+for:) .*$`).ReplaceAll(rules, []byte("$1 "+livePeriod.String()))
	var targets []string
	for _, a := range m.agents {
		targets = append(targets, a)
	}
	sort.Strings(targets)
	config := map[string]any{
		"global":     map[string]any{"scrape_interval": livePeriod.String(), "evaluation_interval": livePeriod.String()},
		"rule_files": []string{"alerts.yaml"},
		"scrape_configs": []any{map[string]any{
			"job_name": monitorNS + "/podpath", "metrics_path": "/metrics",
			"static_configs": []any{map[string]any{"targets": targets}},
		}},
	}
	cfg, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"alerts.yaml": rules, "prometheus.yml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &livePrometheus{netns: m.lab.Spec.Nodes[0].Netns, addr: "127.0.0.1:19090"}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", p.netns, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := p.get(context.Background(), "/-/ready"); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("Prometheus not ready within 30s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *livePrometheus) get(ctx context.Context, path string) ([]byte, error) {
	return getIn(ctx, p.netns, "http://"+p.addr+path)
}

// query runs an instant query and returns how many series it gave.
func (p *livePrometheus) query(ctx context.Context, expr string) (int, error) {
	body, err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%s: %w", body, err)
	}
	return len(r.Data.Result), nil
}

type liveAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (a liveAlert) String() string {
	return fmt.Sprintf("%s(%s %v)", a.Labels["alertname"], a.State, a.Labels)
}

// alerts are the pending and firing alerts.
func (p *livePrometheus) alerts(ctx context.Context) ([]liveAlert, error) {
	body, err := p.get(ctx, "/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Alerts []liveAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", body, err)
	}
	return r.Data.Alerts, nil
}

// healthy waits until every agent is scraped, then two evaluations more, and wants no alert
// pending or firing.
func (p *livePrometheus) healthy(t *testing.T, agents int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(6 * livePeriod)
	for {
		n, err := p.query(ctx, `up{job="`+monitorNS+`/podpath"} == 1`)
		if err == nil && n == agents {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scrapes %d of %d agents after %s (%v)", n, agents, 6*livePeriod, err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * livePeriod)
	if as, err := p.alerts(ctx); err != nil || len(as) > 0 {
		t.Errorf("healthy lab: alerts %v (%v); want none", as, err)
	}
}

// firing waits until alert fires and wants no other alert pending or firing.
func (p *livePrometheus) firing(t *testing.T, alert string, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		as, err := p.alerts(ctx)
		if err == nil && slices.ContainsFunc(as, func(a liveAlert) bool { return a.Labels["alertname"] == alert && a.State == "firing" }) {
			for _, a := range as {
				if a.Labels["alertname"] != alert {
					t.Errorf("%s fires, and so does %s", alert, a)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not firing within %s: alerts %v (%v)", alert, within, as, err)
		}
		time.Sleep(time.Second)
	}
}

// exported: Prometheus holds series of some podpath metric expr reads.
func (p *livePrometheus) exported(t *testing.T, expr string) bool {
	t.Helper()
	for _, name := range regexp.MustCompile(`podpath_monitor_[a-z_]+`).FindAllString(expr, -1) {
		if n, err := p.query(context.Background(), "count("+name+")"); err != nil || n > 0 {
			return true // an error counts as exported: the panel is then judged failing
		}
	}
	return false
}

// dashboard runs every panel query of the chart's Grafana dashboard, its variables set to all,
// and wants series from each whose metrics the agents export now.
func (p *livePrometheus) dashboard(t *testing.T) {
	t.Helper()
	chartDir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer(`"$node"`, `".*"`, `"$layer"`, `".*"`, "$__rate_interval", "1m")
	queries := 0
	for _, panel := range d.Panels {
		for _, target := range panel.Targets {
			if target.Expr == "" {
				continue
			}
			queries++
			expr := vars.Replace(target.Expr)
			n, err := p.query(context.Background(), expr)
			switch {
			case err != nil:
				t.Errorf("dashboard panel %q: %q: %v", panel.Title, expr, err)
			case n == 0 && p.exported(t, expr):
				t.Errorf("dashboard panel %q: %q gives no series while the agents export its metrics", panel.Title, expr)
			case n == 0:
				// A gauge the agents export only when there is something to show (the
				// worst peers by loss, with no loss): the panel is rightly empty.
				t.Logf("dashboard panel %q is empty: the agents export none of its metrics now", panel.Title)
			}
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no panel query")
	}
}
