//go:build !agentonly

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cli"
	"podpath/internal/cluster/inventory"
	"podpath/internal/lab"
	"podpath/internal/model"
)

// agentLab builds a lab with agents and removes it when the test ends.
func agentLab(t *testing.T, b *lab.Builder) *lab.Lab {
	t.Helper()
	return testLab(t, b.Agents(true))
}

// testLab builds b's lab and removes it when the test ends, checking that
// no namespace or process of it is left.
func testLab(t *testing.T, b *lab.Builder) *lab.Lab {
	t.Helper()
	requireRoot(t)
	// A Kubernetes lab starts a control plane and real nodes: minutes at worst.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l, err := b.Up(ctx)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), l.Spec.Name); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := netns(t, l.Spec.Name+"."); left != "" {
			t.Errorf("namespaces left after down:\n%s", left)
		}
		if out, _ := exec.Command("pgrep", "-af", lab.Dir(l.Spec.Name)+"/").Output(); len(out) > 0 {
			t.Errorf("processes of the lab left after down:\n%s", out)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/podpath.lab." + l.Spec.Name + ".*"); len(left) > 0 {
			t.Errorf("cgroups of the lab left after down: %v", left)
		}
		if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(lab.Dir(l.Spec.Name))) {
			t.Errorf("mounts of the lab left after down")
		}
	})
	return l
}

func fault(t *testing.T, l *lab.Lab, spec string) {
	t.Helper()
	f, err := lab.ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddFault(context.Background(), f); err != nil {
		t.Fatalf("fault add %s: %v", spec, err)
	}
}

func jsonReport(t *testing.T, args ...string) *model.Report {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("podpath %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	var r model.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("podpath %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &r
}

// The acceptance case: VXLAN, the underlay towards node3 carries 1400
// bytes, ICMP dropped on every node. Path MTU exact to the byte, both
// directions, both layers.
func TestMTUIsByteExact(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	fault(t, l, "underlay-mtu=node3:1400")
	for _, n := range []string{"node1", "node2", "node3"} {
		fault(t, l, "block-icmp="+n)
	}
	r := jsonReport(t, "mtu", "--inventory", l.Inventory, "-o", "json")
	want := func(p model.Pair) int {
		node3 := p.From == "node3" || p.To == "node3"
		switch {
		case p.Layer == model.LayerNode && node3:
			return 1400
		case p.Layer == model.LayerNode:
			return 1500
		case node3:
			return 1350
		}
		return 1450
	}
	if r.Pairs.Len() != 12 {
		t.Fatalf("%d pairs; want 12 (3×2 ordered pairs on 2 layers)", r.Pairs.Len())
	}
	for _, p := range r.Pairs.All() {
		if !p.Reachable || p.PathMTU != want(p) {
			t.Errorf("%s %s → %s: path MTU %d (reachable %v, %v); want %d", p.Layer, p.From, p.To, p.PathMTU, p.Reachable, p.Errors, want(p))
		}
		if p.ICMPMTU != 0 {
			t.Errorf("%s %s → %s: ICMP MTU %d reported with ICMP blocked", p.Layer, p.From, p.To, p.ICMPMTU)
		}
	}
	code, out, _ := run(t, "mtu", "--inventory", l.Inventory)
	if code != 0 || !strings.Contains(out, "node3") || !strings.Contains(out, "1350*") {
		t.Errorf("mtu text output (exit %d):\n%s", code, out)
	}

	// The symptom users see: small requests pass, a 300 KB transfer to or
	// from node3's Pod stalls; node1↔node2 are fine.
	r = jsonReport(t, "perf", "--inventory", l.Inventory, "-o", "json", "--count", "3", "--interval", "2ms", "--layers", "pod")
	for _, p := range r.Pairs.All() {
		node3 := p.From == "node3" || p.To == "node3"
		if p.Stalled != node3 || p.TCPConnectMs == nil || p.HTTPTotalMs <= 0 {
			t.Errorf("pod %s → %s: stalled %v after %d bytes, TCP connect %v, HTTP %.1f ms; want stalled=%v with small requests passing",
				p.From, p.To, p.Stalled, p.TransferBytes, p.TCPConnectMs, p.HTTPTotalMs, node3)
		}
	}
}

func TestPerfOnTheLab(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendVXLAN))
	// Throughput runs one pair at a time: 4 pairs × 30 s do not fit in 45 s.
	code, _, errOut := run(t, "perf", "--inventory", l.Inventory, "--throughput", "30s")
	if code != cli.ExitNoRun || !strings.Contains(errOut, "--throughput 30s one pair at a time over 4 pairs takes 2m0s, more than --timeout 45s") {
		t.Errorf("perf --throughput 30s on 4 pairs: exit %d %q; want exit 2 before measuring", code, errOut)
	}
	fault(t, l, "delay=node2:20")
	r := jsonReport(t, "perf", "--inventory", l.Inventory, "-o", "json", "--count", "20", "--interval", "5ms", "--throughput", "1s")
	if r.Pairs.Len() != 4 {
		t.Fatalf("%d pairs; want 4", r.Pairs.Len())
	}
	for _, p := range r.Pairs.All() {
		if !p.Reachable || p.RTTMs == nil || p.LossPct != 0 || p.ThroughputBps <= 0 || p.TCPConnectMs == nil || p.HTTPTotalMs <= 0 {
			t.Errorf("%s %s → %s: %+v", p.Layer, p.From, p.To, p)
			continue
		}
		// 20 ms leave node2 on every round trip, whichever end starts it:
		// once, not twice (40) and not never (< 1). The upper bound leaves
		// room for a loaded CI machine, where netem's timers and the
		// agents' wake-ups ran 6 ms late on the median.
		if p.RTTMs.P50 < 20 || p.RTTMs.P50 > 32 {
			t.Errorf("%s %s → %s: RTT p50 %.3f ms; want 20-32 with delay=node2:20", p.Layer, p.From, p.To, p.RTTMs.P50)
		}
	}
}

// ICMP blocked at node2: ICMP echoes vanish, UDP and TCP do not.
func TestPerfTellsICMPFromUDP(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendVXLAN))
	fault(t, l, "block-icmp=node2")
	r := jsonReport(t, "perf", "--inventory", l.Inventory, "-o", "json", "--count", "5", "--interval", "2ms", "--layers", "node")
	for _, p := range r.Pairs.All() {
		if p.ICMPLossPct == nil || *p.ICMPLossPct != 100 || p.LossPct != 0 || p.TCPConnectMs == nil {
			t.Errorf("%s → %s with ICMP blocked at node2: ICMP loss %v, UDP loss %.0f%%, TCP %v; want 100, 0, connected", p.From, p.To, p.ICMPLossPct, p.LossPct, p.TCPConnectMs)
		}
	}
	code, out, _ := run(t, "perf", "--inventory", l.Inventory, "--count", "3", "--interval", "2ms", "--layers", "node")
	if code != 0 || !strings.Contains(out, "ICMP LOSS %") || !strings.Contains(out, "100.0") {
		t.Errorf("perf text (exit %d):\n%s", code, out)
	}
}

// Host facts, as the host agent serves them.
func TestFactsThroughTheAgent(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendVXLAN))
	fault(t, l, "block-vxlan=node1")
	inv, err := inventory.Load(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	tok := readToken(t, inv.TokenFile)
	n1 := inv.Nodes[0]
	raw, err := agent.NewClient(n1.Name, n1.Agent, tok, n1.Netns).Facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Links []struct {
			Name  string
			MTU   int
			VXLAN *struct{ VNI, Port int }
		}
		Routes   []struct{ Dst, Type string }
		Sysctls  struct{ IPv4Forward, RPFilterAll *int }
		Firewall json.RawMessage
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var vx, blackhole bool
	for _, ln := range f.Links {
		if ln.Name == "vxlan.calico" && ln.VXLAN != nil && ln.VXLAN.VNI == 4096 && ln.VXLAN.Port == 4789 && ln.MTU == 1450 {
			vx = true
		}
	}
	for _, r := range f.Routes {
		if r.Dst == "10.233.64.0/26" && r.Type == "blackhole" {
			blackhole = true
		}
	}
	if !vx || !blackhole || f.Sysctls.IPv4Forward == nil || *f.Sysctls.IPv4Forward != 1 || f.Sysctls.RPFilterAll == nil {
		t.Errorf("facts of node1 lack vxlan.calico (VNI 4096, MTU 1450) %v, the blackhole block %v, or sysctls %+v", vx, blackhole, f.Sysctls)
	}
	if !strings.Contains(string(f.Firewall), "4789") {
		t.Errorf("firewall facts of node1 with block-vxlan lack the 4789 drop: %s", f.Firewall)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
