package cli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"podpath/internal/calico"
	"podpath/internal/lab"
	"podpath/internal/model"
)

// doctorCase is one row of the fault → finding table (docs/findings.md).
type doctorCase struct {
	fault    string
	id       string // "" = no finding above info expected
	severity string
	nodes    []string
}

// doctorJSON runs the doctor and returns its report and exit code.
func doctorJSON(t *testing.T, inv string, args ...string) (*model.Report, int) {
	t.Helper()
	code, out, errOut := run(t, append([]string{"doctor", "--inventory", inv, "-o", "json"}, args...)...)
	if code == ExitNoRun {
		t.Fatalf("doctor could not run: %s", errOut)
	}
	var r model.Report
	if err := jsonUnmarshal(out, &r); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, out)
	}
	return &r, code
}

func checkTop(t *testing.T, r *model.Report, code int, c doctorCase) {
	t.Helper()
	var top *model.Finding
	for i := range r.Findings {
		if r.Findings[i].Severity != "info" || c.severity == "info" {
			top = &r.Findings[i]
			break
		}
	}
	if c.id == "" {
		if top != nil || code != 0 {
			t.Errorf("%s: exit %d, findings %s; want exit 0 and nothing above info", c.fault, code, summary(r))
		}
		return
	}
	if top == nil || top.ID != c.id || top.Severity != c.severity || !slices.Equal(top.Nodes, c.nodes) {
		t.Errorf("%s: top finding %s; want %s (%s) on %v", c.fault, summary(r), c.id, c.severity, c.nodes)
	}
	wantCode := 0
	if c.severity == "error" {
		wantCode = ExitFindings
	}
	if code != wantCode {
		t.Errorf("%s: exit %d; want %d", c.fault, code, wantCode)
	}
}

func summary(r *model.Report) string {
	var parts []string
	for _, f := range r.Findings {
		parts = append(parts, f.ID+"/"+f.Severity+"/"+strings.Join(f.Nodes, ","))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// The lab matrix: every fault of the catalogue, on the backends it applies
// to, gives its finding as the top one, naming the faulty node.
func TestDoctorVXLANMatrix(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"underlay-mtu=node3:1400", "mtu-blackhole", "error", []string{"node3"}},
		{"pod-mtu=1500", "mtu-inconsistent", "error", []string{"node1", "node2", "node3"}},
		{"block-vxlan=node2", "encap-blocked", "error", []string{"node2"}},
		{"block-icmp=node2", "icmp-filtered", "info", []string{"node2"}},
		{"route-missing=node1:10.233.64.64/26", "route-missing", "error", []string{"node1"}},
		{"ip-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
		{"rp-filter-strict=node2", "rp-filter-strict", "warning", []string{"node2"}},
		{"delay=node2:40", "high-latency", "warning", []string{"node2"}},
		{"loss=node2:30", "packet-loss", "warning", []string{"node2"}},
		{"node-mtu=node3:9000", "mtu-inconsistent", "error", []string{"node3"}},
		{"rate=node2:100", "", "", nil}, // the doctor does not measure throughput: perf does
	}
	runMatrix(t, l, cases, nil, func(t *testing.T, c doctorCase, r *model.Report) {
		if c.fault == "underlay-mtu=node3:1400" {
			checkSeedRemedy(t, r)
			checkOtherFormats(t, l.Inventory)
		}
	})
}

// runMatrix injects each case's fault, runs the doctor, checks the top
// finding, then clears the fault; ready waits for the lab to settle first.
func runMatrix(t *testing.T, l *lab.Lab, cases []doctorCase, ready func(*testing.T), more func(*testing.T, doctorCase, *model.Report)) {
	t.Helper()
	for _, c := range cases {
		t.Run(strings.NewReplacer("=", "_", ":", "_", "/", "_").Replace(c.fault), func(t *testing.T) {
			if ready != nil {
				ready(t)
			}
			if c.fault != "healthy" {
				fault(t, l, c.fault)
				defer func() {
					if err := l.ClearFaults(context.Background()); err != nil {
						t.Fatal(err)
					}
				}()
			}
			r, code := doctorJSON(t, l.Inventory)
			checkTop(t, r, code, c)
			if more != nil {
				more(t, c, r)
			}
		})
	}
}

// The same run as HTML (written to a file) and JUnit.
func checkOtherFormats(t *testing.T, inv string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.html")
	code, _, errOut := run(t, "doctor", "--inventory", inv, "-o", "html", "--output-file", file)
	page, err := os.ReadFile(file)
	if code != ExitFindings || err != nil || !strings.Contains(string(page), "mtu-blackhole") || strings.Count(string(page), `class="cell broken`) < 4 {
		t.Errorf("doctor -o html: exit %d (%s), %v; want the finding and its broken cells in %s", code, errOut, err, file)
	}
	code, out, _ := run(t, "doctor", "--inventory", inv, "-o", "junit")
	if code != ExitFindings || !strings.Contains(out, `<testcase name="mtu-blackhole [node3]"`) || !strings.Contains(out, "<failure") {
		t.Errorf("doctor -o junit: exit %d:\n%s", code, out)
	}
}

// The seed case's remedy: the MTU and every place it lives.
func checkSeedRemedy(t *testing.T, r *model.Report) {
	t.Helper()
	f := r.Findings[0]
	if f.Remedy == nil || f.Remedy.MTU != 1350 {
		t.Fatalf("remedy %+v; want MTU 1350", f.Remedy)
	}
	text := f.Remedy.Summary + strings.Join(f.Remedy.Commands, "\n")
	for _, want := range []string{"calico_mtu: 1350", "installation.operator.tigera.io", "veth_mtu", "underlay towards node3"} {
		if !strings.Contains(text, want) {
			t.Errorf("remedy lacks %q:\n%s", want, text)
		}
	}
}

func TestDoctorBGPMatrix(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendBGP))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"bird-down=node2", "bgp-session-down", "error", []string{"node2"}},
		{"block-bgp=node2", "firewall-drop", "error", []string{"node2"}},
		{"route-missing=node1:10.233.64.64/26", "route-missing", "error", []string{"node1"}},
		{"ip-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
	}
	runMatrix(t, l, cases, func(t *testing.T) { waitMesh(t, l) }, nil)
}

// waitMesh waits until every BGP session of the lab is Established again.
func waitMesh(t *testing.T, l *lab.Lab) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		up := 0
		for _, n := range l.Spec.Nodes {
			ps, err := calico.ShowProtocols(context.Background(), lab.BIRDSocket(l.Spec.Name, n.Name))
			if err != nil {
				continue
			}
			for _, p := range ps {
				if p.Established() {
					up++
				}
			}
		}
		if up == len(l.Spec.Nodes)*(len(l.Spec.Nodes)-1) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BGP mesh not Established after 40 s (%d sessions up)", up)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Backend none routes nothing between nodes: the doctor says so.
func TestDoctorBackendNone(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendNone))
	r, code := doctorJSON(t, l.Inventory)
	if code != ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != "route-missing" {
		t.Errorf("backend none: exit %d, %s; want route-missing errors", code, summary(r))
	}
}

// An agent killed mid-run: the doctor finishes within its timeout, keeps
// every other result, and says node3's results are unknown: its host still
// answers (ICMP port unreachable), so the node is up and only the agent is
// gone, which is not a network fault.
func TestDoctorSurvivesADeadAgent(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	fault(t, l, "underlay-mtu=node2:1400") // makes the run last a few seconds (stalled transfers)
	pidf := filepath.Join(lab.Dir(l.Spec.Name), "agents", "node3.pid")
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	start := time.Now()
	r, code := doctorJSON(t, l.Inventory, "--timeout", "15s", "--layers", "node")
	if d := time.Since(start); d > 16*time.Second {
		t.Errorf("doctor took %s with a 15 s timeout", d)
	}
	var unknown *model.Finding
	for i, f := range r.Findings {
		switch f.ID {
		case "results-unknown":
			unknown = &r.Findings[i]
		case "node-unreachable":
			t.Errorf("findings %s: node-unreachable, though node3's host answers", summary(r))
		}
	}
	if unknown == nil || !slices.Equal(unknown.Nodes, []string{"node3"}) || unknown.Severity != "warning" {
		t.Errorf("findings %s; want results-unknown (warning) on node3", summary(r))
	}
	if code != 0 {
		t.Errorf("exit %d; want 0: a dead agent and a node-layer black hole are no error", code)
	}
	for _, p := range r.Pairs {
		if (p.From == "node1" && p.To == "node2") && (!p.Reachable || p.PathMTU != 1400) {
			t.Errorf("node1 → node2 lost its result: %+v", p)
		}
		if p.From == "node3" && p.Unknown == "" {
			t.Errorf("node3 → %s: %+v; want unknown (the controller could not ask the dead agent)", p.To, p)
		}
	}
}
