package netplan

import (
	"strings"
	"testing"
	"time"

	"podpath/internal/model"
)

func preflightInput() PreflightInput {
	nodes := []string{"node1", "node2", "node3"}
	in := PreflightInput{Nodes: nodes, Encap: "vxlan", Facts: map[string]*model.Facts{}, Skew: map[string]time.Duration{}}
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			in.Pairs = append(in.Pairs, model.Pair{From: a, To: b, Layer: model.LayerNode, Reachable: true, PathMTU: 1500, IfaceMTU: 1500})
			for _, p := range Ports {
				in.Ports = append(in.Ports, PortResult{From: a, To: b, Proto: p.Proto, Port: p.Port, State: "open"})
			}
		}
	}
	return in
}

func TestPreflight(t *testing.T) {
	in := preflightInput()
	r := Preflight(in)
	if r.RecommendedMTU != 1450 || r.Findings[0].Severity != "info" || r.Verdict["node3"] != "pass" {
		t.Errorf("healthy: MTU %d, findings %s, verdicts %v; want 1450, info only, pass", r.RecommendedMTU, ids(r.Findings), r.Verdict)
	}

	// The seed case before install: the path towards node3 carries 1400.
	in = preflightInput()
	for i, p := range in.Pairs {
		if p.From == "node3" || p.To == "node3" {
			in.Pairs[i].PathMTU = 1400
		}
	}
	r = Preflight(in)
	if f := r.Findings[0]; r.RecommendedMTU != 1350 || f.ID != PreflightMTU || f.Severity != "warning" || len(f.Nodes) != 1 || f.Nodes[0] != "node3" ||
		!strings.Contains(f.Title, "calico_mtu 1350") || r.Verdict["node3"] != "warn" || r.Verdict["node1"] != "pass" {
		t.Errorf("underlay 1400 to node3: MTU %d, %+v, verdicts %v", r.RecommendedMTU, r.Findings[0], r.Verdict)
	}

	// VXLAN dropped on its way into node2.
	in = preflightInput()
	for i, p := range in.Ports {
		if p.To == "node2" && p.Port == 4789 {
			in.Ports[i].State = "filtered"
		}
	}
	r = Preflight(in)
	if f := r.Findings[0]; f.ID != PortBlocked || f.Title != "UDP 4789 (VXLAN) to node2 is blocked from node1, node3" || r.Verdict["node2"] != "fail" {
		t.Errorf("VXLAN blocked: %+v, verdicts %v", f, r.Verdict)
	}

	// node3's agent is not running: only node3 is blamed.
	in = preflightInput()
	for i, p := range in.Pairs {
		if p.From == "node3" || p.To == "node3" {
			in.Pairs[i].Reachable = false
		}
	}
	r = Preflight(in)
	if f := r.Findings[0]; f.ID != "node-unreachable" || len(f.Nodes) != 1 || f.Nodes[0] != "node3" || r.Verdict["node1"] != "pass" || r.Verdict["node3"] != "fail" {
		t.Errorf("node3 down: %+v, verdicts %v; want node3 alone blamed", f, r.Verdict)
	}

	in = preflightInput()
	in.Skew["node2"] = 3 * time.Second
	in.Facts["node1"] = &model.Facts{Kernel: "6.1", KernelModules: []model.Module{{Name: "vxlan", State: model.ModuleMissing, Evidence: "modules.dep"}}}
	in.Encaps = map[string]bool{"vxlan": true}
	r = Preflight(in)
	if got := ids(r.Findings); !strings.Contains(got, "kernel-module-missing/error") || !strings.Contains(got, "clock-skew/warning") || r.Verdict["node1"] != "fail" || r.Verdict["node2"] != "warn" {
		t.Errorf("module and skew: %s, verdicts %v", got, r.Verdict)
	}
}
