//go:build !agentonly

package e2e

import (
	"strings"
	"testing"

	"podpath/internal/cli"
	"podpath/internal/lab"
	"podpath/internal/model"
)

// A dual-stack lab, routed, the controller on node1: IPv6 underlay and
// Pod addresses beside IPv4's, IPv6 Pod traffic in vxlan-v6.calico over
// the nodes' IPv6 addresses (70 bytes), the Pods at the smaller tunnel
// MTU (1430) as Calico sets it. Each family is probed and diagnosed; a
// fault of one family is named as that family's, and the seed's MTU
// fault gives each family its own Pod MTU.
func TestDoctorDualStack(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN).Topology(lab.TopologyRouted).
		Controller("node1").IPFamily(lab.FamilyDual))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"underlay-mtu=node3:1400", "mtu-blackhole", "error", []string{"node3"}},
		{"ipv6-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
		{"ip-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
	}
	runMatrix(t, l, cases, nil, func(t *testing.T, c doctorCase, r *model.Report) {
		switch c.fault {
		case "healthy":
			checkFamilies(t, r)
		case "underlay-mtu=node3:1400":
			mtu := map[string]int{}
			for _, f := range r.Findings {
				if f.ID == "mtu-blackhole" && f.Remedy != nil {
					mtu[f.Family] = f.Remedy.MTU
					if f.Family == "" && !strings.Contains(strings.Join(f.Remedy.Commands, "\n"), "--mtu 1330") {
						t.Errorf("IPv4 remedy's commands %q; want the smaller, IPv6's, MTU 1330 (one Pod MTU for both)", f.Remedy.Commands)
					}
				}
			}
			if mtu[""] != 1350 || mtu[model.FamilyIPv6] != 1330 {
				t.Errorf("mtu-blackhole remedy MTUs by family %v; want IPv4 1350 (1400 less VXLAN's 50) and IPv6 1330 (less 70)", mtu)
			}
			code, out, _ := run(t, "doctor", "--inventory", l.Inventory, "-o", "junit")
			if code != cli.ExitFindings || !strings.Contains(out, `<testcase name="mtu-blackhole [node3]"`) || !strings.Contains(out, `<testcase name="mtu-blackhole [node3 IPv6]"`) {
				t.Errorf("doctor -o junit: exit %d; want a case per family:\n%s", code, out)
			}
			code, out, _ = run(t, "doctor", "--inventory", l.Inventory)
			if code != cli.ExitFindings || !strings.Contains(out, "pod layer (IPv6) — path MTU") || !strings.Contains(out, "1330*") {
				t.Errorf("doctor text: exit %d; want the IPv6 pod matrix with 1330*:\n%s", code, out)
			}
		case "ipv6-forward-off=node2":
			// IPv4 forwards: only the IPv6 pass sees the fault.
			for _, f := range r.Findings {
				if f.Severity == model.SeverityError && f.Family != model.FamilyIPv6 {
					t.Errorf("%s (error) without family: IPv4 works; findings %s", f.ID, summary(r))
				}
			}
			for _, p := range r.Pairs.All() {
				if p.Family == "" && p.Known() && !p.Reachable {
					t.Errorf("IPv4 pair %s %s → %s unreachable; only IPv6 forwarding is off", p.Layer, p.From, p.To)
				}
			}
		case "ip-forward-off=node2":
			if r.Findings[0].Family != "" {
				t.Errorf("top finding %s is IPv6's; IPv4 forwarding is what is off", summary(r))
			}
		}
	})
}

// checkFamilies: both families' pairs, every one reachable, the Pods at
// the IPv6 tunnel's MTU on both.
func checkFamilies(t *testing.T, r *model.Report) {
	t.Helper()
	count := map[string]int{}
	for _, p := range r.Pairs.All() {
		count[p.Family]++
		if !p.Reachable {
			t.Errorf("%s %s %s → %s unreachable on a healthy lab", p.Family, p.Layer, p.From, p.To)
		}
		if p.Layer == model.LayerPod && p.PathMTU != 0 && p.PathMTU != 1430 {
			t.Errorf("%s pod %s → %s path MTU %d; want 1430", p.Family, p.From, p.To, p.PathMTU)
		}
	}
	if count[""] != 12 || count[model.FamilyIPv6] != 12 {
		t.Errorf("pairs by family %v; want 12 IPv4 and 12 IPv6 (3 nodes, 2 layers)", count)
	}
}

// Dual-stack over BGP: BIRD peers each node over IPv4 and IPv6 (sessions
// named as calico-node's are) and announces each family's block. A BGP
// filter on one node stops both families' sessions: one firewall finding.
func TestDoctorDualStackBGP(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendBGP).IPFamily(lab.FamilyDual))
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"block-bgp=node2", "firewall-drop", "error", []string{"node2"}},
		{"ipv6-forward-off=node3", "ip-forward-disabled", "error", []string{"node3"}},
	}
	runMatrix(t, l, cases, func(t *testing.T) { waitMesh(t, l) }, func(t *testing.T, c doctorCase, r *model.Report) {
		switch c.fault {
		case "healthy":
			count := map[string]int{}
			for _, p := range r.Pairs.All() {
				count[p.Family]++
				if !p.Reachable || p.Layer == model.LayerPod && p.PathMTU != 1500 {
					t.Errorf("%s %s %s → %s: reachable %v, path MTU %d; want reachable at 1500 (no encapsulation)", p.Family, p.Layer, p.From, p.To, p.Reachable, p.PathMTU)
				}
			}
			if count[""] != 12 || count[model.FamilyIPv6] != 12 {
				t.Errorf("pairs by family %v; want 12 and 12", count)
			}
		case "block-bgp=node2":
			n := 0
			for _, f := range r.Findings {
				if f.ID == "firewall-drop" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d firewall-drop findings; want one, the rule stopping both families' sessions (%s)", n, summary(r))
			}
		}
	})
}

// An IPv6-only lab (routed VXLAN, the controller on node1): nodes and
// Pods with IPv6 addresses alone, Pod traffic in vxlan-v6.calico only,
// the inventory naming everything by its IPv6 address. The doctor makes
// one pass and judges it by IPv6's rules: the seed's MTU fault asks for
// 1330 (1400 less 70), IPv6 forwarding off is named, and IPv4's
// forwarding and rp_filter, which carry none of this cluster's traffic,
// are not.
func TestDoctorIPv6Only(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN).Topology(lab.TopologyRouted).
		Controller("node1").IPFamily(lab.FamilyIPv6))
	node3Block := l.Spec.Nodes[2].Block6.String()
	cases := []doctorCase{
		{"healthy", "", "", nil},
		{"underlay-mtu=node3:1400", "mtu-blackhole", "error", []string{"node3"}},
		{"ipv6-forward-off=node2", "ip-forward-disabled", "error", []string{"node2"}},
		{"ip-forward-off=node2", "", "", nil},
		{"rp-filter-strict=node2", "", "", nil},
		{"block-vxlan=node2", "encap-blocked", "error", []string{"node2"}},
		{"route-missing=node1:" + node3Block, "route-missing", "error", []string{"node1"}},
	}
	runMatrix(t, l, cases, nil, func(t *testing.T, c doctorCase, r *model.Report) {
		for _, f := range r.Findings {
			if f.Family != "" {
				t.Errorf("%s carries family %q: an IPv6-only cluster is one pass", f.ID, f.Family)
			}
		}
		switch c.fault {
		case "healthy":
			n := 0
			for _, p := range r.Pairs.All() {
				n++
				if !p.Reachable || p.Family != "" {
					t.Errorf("%s %s → %s: reachable %v, family %q", p.Layer, p.From, p.To, p.Reachable, p.Family)
				}
				if p.Layer == model.LayerPod && p.PathMTU != 1430 {
					t.Errorf("pod %s → %s path MTU %d; want 1430 (vxlan-v6.calico: 1500 less 70)", p.From, p.To, p.PathMTU)
				}
			}
			if n != 12 {
				t.Errorf("%d pairs; want 12 (3 nodes, 2 layers, one family)", n)
			}
		case "underlay-mtu=node3:1400":
			if f := r.Findings[0]; f.Remedy == nil || f.Remedy.MTU != 1330 {
				t.Errorf("mtu-blackhole remedy %+v; want MTU 1330 (1400 less VXLAN over IPv6's 70)", f.Remedy)
			}
		case "ipv6-forward-off=node2":
			if ev := strings.Join(r.Findings[0].Evidence, "\n"); !strings.Contains(ev, "net.ipv6.conf.all.forwarding = 0") {
				t.Errorf("ip-forward-disabled evidence %q; want IPv6's sysctl", ev)
			}
		}
	})
	code, out, _ := run(t, "lab", "status", "--name", l.Spec.Name)
	if code != 0 || !strings.Contains(out, "IPv6 only") || !strings.Contains(out, "fd00:198:18::1") || strings.Contains(out, "198.18.0.1") {
		t.Errorf("lab status: exit %d; want the IPv6 side alone:\n%s", code, out)
	}
}
