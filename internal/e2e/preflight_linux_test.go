//go:build !agentonly

package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"podpath/internal/cli"
	"podpath/internal/lab"
	"podpath/internal/model"
	"podpath/internal/netplan"
)

// Before install: agents in the lab's node namespaces only (no Calico, no
// Pods). preflight names the short path and the blocked VXLAN port.
func TestPreflightOnTheUnderlay(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).PodsPerNode(0).Backend(lab.BackendNone))
	fault(t, l, "underlay-mtu=node3:1400")
	fault(t, l, "block-vxlan=node2")

	code, out, errOut := run(t, "preflight", "--inventory", l.Inventory, "-o", "json")
	if code != cli.ExitFindings {
		t.Fatalf("preflight: exit %d; want 1 (VXLAN is blocked)\n%s", code, errOut)
	}
	var r model.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("preflight of 3 nodes: %.0f ms", r.DurationMs)
	var mtu, vxlan *model.Finding
	for i, f := range r.Findings {
		switch f.ID {
		case netplan.PreflightMTU:
			mtu = &r.Findings[i]
		case netplan.PortBlocked:
			if vxlan != nil {
				t.Errorf("a second blocked port: %s", f.Title)
			}
			vxlan = &r.Findings[i]
		}
	}
	if mtu == nil || mtu.Remedy == nil || mtu.Remedy.MTU != 1350 || !slices.Equal(mtu.Nodes, []string{"node3"}) || !strings.Contains(mtu.Remedy.Summary, "calico_mtu: 1350") {
		t.Errorf("MTU finding %+v; want calico_mtu 1350 naming node3", mtu)
	}
	if vxlan == nil || vxlan.Title != "UDP 4789 (VXLAN) to node2 is blocked from node1, node3" {
		t.Errorf("port finding %+v; want UDP 4789 to node2 blocked", vxlan)
	}
	if r.Config == nil || r.Config.PodMTU != 1350 || !slices.Contains(r.Config.Notes, "node2: fail") || !slices.Contains(r.Config.Notes, "node1: pass") {
		t.Errorf("config %+v; want calico_mtu 1350, node2 failing, node1 passing", r.Config)
	}
	// Every other needed port passes, in both directions.
	for _, p := range r.Pairs.All() {
		for _, ps := range p.Ports {
			if ps.State != "open" && !(p.To == "node2" && ps.Port == 4789) {
				t.Errorf("%s → %s %s/%d: %s; want open", p.From, p.To, ps.Proto, ps.Port, ps.State)
			}
		}
		if len(p.Ports) == 0 {
			t.Errorf("%s → %s: no port checked", p.From, p.To)
		}
	}

	code, out, _ = run(t, "preflight", "--inventory", l.Inventory)
	if !strings.Contains(out, "Recommended calico_mtu: 1350") || !strings.Contains(out, "node2        FAIL") {
		t.Errorf("text output (exit %d):\n%s", code, out)
	}
}

func TestPreflightBadInput(t *testing.T) {
	wantUsageError(t, "give either --inventory FILE or --kubespray-inventory DIR", "preflight")
	wantUsageError(t, "give either --inventory FILE or --kubespray-inventory DIR", "preflight", "--inventory", "a", "--kubespray-inventory", "b")
}
