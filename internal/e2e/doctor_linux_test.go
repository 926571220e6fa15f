//go:build !agentonly

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"podpath/internal/bird"
	"podpath/internal/cli"
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
	if code == cli.ExitNoRun {
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
	// No error names a node the fault is not on.
	for _, f := range r.Findings {
		for _, n := range f.Nodes {
			if f.Severity == "error" && !slices.Contains(c.nodes, n) {
				t.Errorf("%s: %s (error) names %s; the fault is on %v", c.fault, f.ID, n, c.nodes)
			}
		}
	}
	wantCode := 0
	if c.severity == "error" {
		wantCode = cli.ExitFindings
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
		t.Run(strings.NewReplacer("=", "_", ":", "_", "/", "_", " + ", "+").Replace(c.fault), func(t *testing.T) {
			if ready != nil {
				ready(t)
			}
			if c.fault != "healthy" {
				for _, f := range strings.Split(c.fault, " + ") {
					fault(t, l, f)
				}
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
	if code != cli.ExitFindings || err != nil || !strings.Contains(string(page), "mtu-blackhole") || strings.Count(string(page), `class="cell broken`) < 4 {
		t.Errorf("doctor -o html: exit %d (%s), %v; want the finding and its broken cells in %s", code, errOut, err, file)
	}
	code, out, _ := run(t, "doctor", "--inventory", inv, "-o", "junit")
	if code != cli.ExitFindings || !strings.Contains(out, `<testcase name="mtu-blackhole [node3]"`) || !strings.Contains(out, "<failure") {
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

// A routed underlay, the controller on node1 as a real run from a node has
// it (its calls cross the router like everything else), and the router
// behaving as routers do: path MTU discovery working, suppressed,
// fragments passing or dropped; and the faults real nodes have beside it.
// node3 is alone behind the router (node1 and node2 share a subnet).
func TestDoctorRoutedMatrix(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN).Topology(lab.TopologyRouted).Controller("node1"))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		// Working PMTUD, fragments passing: no error, node paths exactly the router's 1400.
		{"router-mtu=1400", "underlay-fragmentation", "warning", []string{"node3"}},
		{"router-mtu=1400 + router-no-frag-needed", "mtu-blackhole", "warning", []string{"node3"}},
		{"router-mtu=1400 + router-no-icmp", "mtu-blackhole", "warning", []string{"node3"}},
		{"router-mtu=1400 + drop-fragments", "mtu-blackhole", "error", []string{"node3"}},
		{"forward-policy-drop=node3", "firewall-drop", "error", []string{"node3"}},
		{"vxlan-port=node3:8472", "encap-mismatch", "error", []string{"node3"}},
		{"vxlan-vni=node2:4097", "encap-mismatch", "error", []string{"node2"}},
		{"asymmetric-nic=node3", "rp-filter-strict", "error", []string{"node3"}},
		// The controller on node1 cannot reach node3's Pod agent either:
		// node3's own Pod pairs are unknown, not failed, and healthy node2
		// is named by nothing.
		{"route-missing=node1:10.233.64.128/26", "route-missing", "error", []string{"node1"}},
	}
	runMatrix(t, l, cases, nil, func(t *testing.T, c doctorCase, r *model.Report) {
		ids := map[string]bool{}
		for _, f := range r.Findings {
			ids[f.ID] = true
		}
		if ids["node-unreachable"] {
			t.Errorf("%s: node-unreachable %s: the control channel must survive the fault", c.fault, summary(r))
		}
		nodePath := func(from, to string) model.Pair {
			for _, p := range r.Pairs.All() {
				if p.Layer == model.LayerNode && p.From == from && p.To == to {
					return p
				}
			}
			return model.Pair{}
		}
		switch c.fault {
		case "router-mtu=1400":
			for _, fromTo := range [][2]string{{"node1", "node3"}, {"node3", "node2"}} {
				if p := nodePath(fromTo[0], fromTo[1]); p.PathMTU != 1400 || p.PathMTULimit != "icmp" || p.ICMPFrom == "" {
					t.Errorf("node %s → %s: %d (%s, from %q); want 1400 exactly, reported by the router", fromTo[0], fromTo[1], p.PathMTU, p.PathMTULimit, p.ICMPFrom)
				}
			}
			if p := nodePath("node1", "node2"); p.PathMTU != 1500 {
				t.Errorf("node node1 → node2 (same subnet, no router): %d; want 1500", p.PathMTU)
			}
		case "router-mtu=1400 + router-no-frag-needed":
			if !evidenceHas(r, "mtu-blackhole", "reach 198.18.255.254, hop 1 of 2, and vanish after it") {
				t.Errorf("black hole not placed after the router: %+v", r.Findings[0].Evidence)
			}
		case "router-mtu=1400 + router-no-icmp":
			if !evidenceHas(r, "mtu-blackhole", "did not answer TTL-limited probes") {
				t.Errorf("silent routers not said: %+v", r.Findings[0].Evidence)
			}
		case "router-mtu=1400 + drop-fragments":
			if f := r.Findings[0]; f.Remedy == nil || f.Remedy.MTU != 1350 || ids["underlay-fragmentation"] || !evidenceHas(r, "mtu-blackhole", "fragments are lost") {
				t.Errorf("fragments dropped: %s, remedy %+v, evidence %v; want mtu-blackhole with MTU 1350 and the lost fragments, nothing else", summary(r), f.Remedy, f.Evidence)
			}
		case "route-missing=node1:10.233.64.128/26":
			for _, p := range r.Pairs.All() {
				if p.Layer == model.LayerPod && p.From == "node3" && p.Unknown == "" {
					t.Errorf("pod node3 → %s: %+v; want unknown (the controller on node1 has no route to node3's Pod agent)", p.To, p)
				}
			}
		case "asymmetric-nic=node3":
			if !evidenceHas(r, "rp-filter-strict", "on node3's eth1") {
				t.Errorf("rp_filter not judged on the interface VXLAN arrives on: %+v", r.Findings[0].Evidence)
			}
		}
	})
}

func evidenceHas(r *model.Report, id, text string) bool {
	for _, f := range r.Findings {
		if f.ID == id && slices.ContainsFunc(f.Evidence, func(e string) bool { return strings.Contains(e, text) }) {
			return true
		}
	}
	return false
}

func TestDoctorBGPMatrix(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendBGP))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"bird-down=node2", "bgp-session-down", "error", []string{"node2"}},
		{"block-bgp=node2", "firewall-drop", "error", []string{"node2"}},
		{"route-missing=node1:10.233.64.64/26", "route-missing", "error", []string{"node1"}},
		{"ip-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
		{"forward-policy-drop=node2", "firewall-drop", "error", []string{"node2"}},
	}
	runMatrix(t, l, cases, func(t *testing.T) { waitMesh(t, l) }, nil)
}

// A node cut off from the Pod network on a cluster past the full mesh (12
// nodes: a cover, a second look at what looked odd): its 22 dead pairs
// must not run the doctor out of its minute (each costs seconds of
// timeouts), so the report names the cause and nothing else, not every
// pair "unknown".
func TestDoctorBGPNodeCutOffOfTwelve(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(12).Backend(lab.BackendBGP))
	waitMesh(t, l)
	fault(t, l, "bird-down=node9")
	r, code := doctorJSON(t, l.Inventory)
	checkTop(t, r, code, doctorCase{"bird-down=node9", "bgp-session-down", "error", []string{"node9"}})
	for _, f := range r.Findings {
		if f.ID != "bgp-session-down" && f.Severity != "info" {
			t.Errorf("%s %s (%s) beside bgp-session-down; want nothing else above info (%.1f s)", f.Severity, f.ID, f.Title, r.DurationMs/1000)
		}
	}
}

// A node whose BGP address is a second NIC's, on a network its peers
// cannot reach: the sessions' names say so, and the remedy is the address
// auto-detection, not a generic BGP check. The controller on node1.
func TestDoctorBGPSecondNIC(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendBGP).Controller("node1"))
	waitMesh(t, l)
	fault(t, l, "bgp-second-nic=node3")
	r, code := doctorJSON(t, l.Inventory)
	checkTop(t, r, code, doctorCase{"bgp-second-nic=node3", "bgp-session-down", "error", []string{"node3"}})
	if !evidenceHas(r, "bgp-session-down", "at 198.51.100.3 (its eth1), not at its node address 198.18.0.3") ||
		!strings.Contains(r.Findings[0].Remedy.Summary, "IP_AUTODETECTION_METHOD") {
		t.Errorf("bgp-session-down %+v; want the second NIC's address named and the auto-detection as the remedy", r.Findings[0])
	}
}

// waitMesh waits until every BGP session of the lab is Established again
// and every node's kernel holds the routes BIRD learnt over them (a moment
// after the sessions: a doctor run in between rightly finds them missing).
func waitMesh(t *testing.T, l *lab.Lab) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	families := []string{"-4"}
	if l.Spec.Dual() { // sessions and routes of each family
		families = append(families, "-6")
	}
	for {
		up, routes := 0, 0
		for _, n := range l.Spec.Nodes {
			ps, err := bird.ShowProtocols(context.Background(), lab.BIRDSocket(l.Spec.Name, n.Name))
			if err != nil {
				continue
			}
			for _, p := range ps {
				if p.Established() {
					up++
				}
			}
			for _, family := range families {
				out, _ := exec.Command("ip", "-n", n.Netns, family, "route", "show", "proto", "bird").Output()
				for _, line := range strings.Split(string(out), "\n") {
					if strings.TrimSpace(line) != "" {
						routes++
					}
				}
			}
		}
		if want := len(l.Spec.Nodes) * (len(l.Spec.Nodes) - 1) * len(families); up == want && routes >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BGP mesh not Established after 40 s (%d sessions up, %d routes learnt)", up, routes)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Backend none routes nothing between nodes: the doctor says so.
func TestDoctorBackendNone(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendNone))
	r, code := doctorJSON(t, l.Inventory)
	if code != cli.ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != "route-missing" {
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
	for _, p := range r.Pairs.All() {
		if (p.From == "node1" && p.To == "node2") && (!p.Reachable || p.PathMTU != 1400) {
			t.Errorf("node1 → node2 lost its result: %+v", p)
		}
		if p.From == "node3" && p.Unknown == "" {
			t.Errorf("node3 → %s: %+v; want unknown (the controller could not ask the dead agent)", p.To, p)
		}
	}
}
