package diagnose

import (
	"slices"
	"strings"
	"testing"

	"podpath/internal/model"
)

// withDNS adds the cluster DNS checks a doctor run makes: every node's
// Pod agent asks the Service and the CoreDNS Pods (on the nodes given)
// four questions each, all answered.
func withDNS(ev *Evidence, podNodes ...string) {
	answers := func() []model.DNSAnswer {
		var out []model.DNSAnswer
		for _, size := range []string{"small", "large"} {
			for _, tr := range []string{"udp", "tcp"} {
				a := model.DNSAnswer{Name: "kubernetes.default.svc.cluster.local", Transport: tr, Size: size, Bytes: 90, Records: 1, Rcode: "NOERROR", RTTMs: 0.4}
				if size == "large" {
					a.Name, a.Want, a.Bytes, a.Records = "dns-large.podpath-1.svc.cluster.local", 2967, 2967, 180
				}
				out = append(out, a)
			}
		}
		return out
	}
	for _, n := range ev.Nodes {
		ev.DNS = append(ev.DNS, model.Pair{From: n, FromPod: "probe-" + n, Layer: model.LayerDNS, Reachable: true,
			Service: "kube-system/coredns 10.233.0.3:53", DNS: answers()})
		for _, m := range podNodes {
			ev.DNS = append(ev.DNS, model.Pair{From: n, FromPod: "probe-" + n, To: m, ToPod: "coredns-" + m, Layer: model.LayerDNS, Reachable: true, DNS: answers()})
		}
	}
}

// failDNS makes the questions of this transport and size ("": any) time out.
func failDNS(transport, size string) func(*model.Pair) {
	return func(p *model.Pair) {
		for i, a := range p.DNS {
			if (transport == "" || a.Transport == transport) && (size == "" || a.Size == size) {
				p.DNS[i] = model.DNSAnswer{Name: a.Name, Transport: a.Transport, Size: a.Size, Want: a.Want, Error: "timeout"}
			}
		}
	}
}

func eachDNS(ev *Evidence, match func(model.Pair) bool, fn func(*model.Pair)) {
	for i := range ev.DNS {
		if match(ev.DNS[i]) {
			fn(&ev.DNS[i])
		}
	}
}

func TestDNSFailing(t *testing.T) {
	toPod := func(n string) func(model.Pair) bool { return func(p model.Pair) bool { return p.To == n } }
	from := func(n string) func(model.Pair) bool { return func(p model.Pair) bool { return p.From == n } }
	tests := []struct {
		name     string
		mutate   func(*Evidence)
		severity string // "": no dns-failing finding
		nodes    []string
		title    string // the title contains it
		evidence string
		// notEvidence: no line of the evidence contains it.
		notEvidence string
	}{
		{name: "healthy", mutate: func(*Evidence) {}},
		// UDP 53 dropped in front of node2's CoreDNS Pod: every sender, its
		// own node's too; about half the Service's flows go there.
		{name: "udp_dropped_towards_node2s_coredns", mutate: func(ev *Evidence) {
			eachDNS(ev, toPod("node2"), failDNS("udp", ""))
			eachDNS(ev, func(p model.Pair) bool { return p.To == "" && (p.From == "node1" || p.From == "node4") }, failDNS("udp", ""))
			ev.Facts["node2"].Firewall.Drops = append(ev.Facts["node2"].Firewall.Drops, model.FirewallDrop{Family: "inet", Table: "filter", Chain: "forward", Rule: "oifname \"cali*\" udp dport 53 drop",
				Needs: []string{model.NeedDNS}, Traffic: []string{"dns: UDP 53 to its Pods"}},
				// kube-proxy's reject of ClusterIPs without endpoints: only perhaps DNS's.
				model.FirewallDrop{Family: "ip", Table: "kube-proxy", Chain: "cluster-ips-check", Rule: "ip daddr @cluster-ips reject",
					Possible: []string{model.NeedDNS, model.NeedPodTraffic}, Traffic: []string{"dns: UDP 53 to its Pods (perhaps)"}})
		}, severity: Error, nodes: []string{"node2"}, title: "towards CoreDNS Pod coredns-node2 on node2: small answers over UDP, large answers over UDP",
			evidence: "udp dport 53 drop; it stops DNS: UDP 53 to its Pods", notEvidence: "cluster-ips"},
		// The seed case with CoreDNS on node1 and node2: node3's Pods lose
		// large answers (both transports), which the MTU finding explains.
		{name: "mtu_blackhole_on_node3", mutate: func(ev *Evidence) {
			each(ev, with("node3"), func(p *model.Pair) {
				p.PathMTU, p.PathMTULimit, p.Stalled = p.IfaceMTU-100, "silent", p.Layer == model.LayerPod
			})
			eachDNS(ev, from("node3"), failDNS("", "large"))
		}, severity: Warning, nodes: []string{"node3"}, title: "(explained by mtu-blackhole)"},
		// The same with CoreDNS on node3 too: its Pod's large answers are
		// lost to every other node; named on node3, explained.
		{name: "mtu_blackhole_on_coredns_node", mutate: func(ev *Evidence) {
			each(ev, with("node3"), func(p *model.Pair) {
				p.PathMTU, p.PathMTULimit, p.Stalled = p.IfaceMTU-100, "silent", p.Layer == model.LayerPod
			})
			eachDNS(ev, func(p model.Pair) bool { return p.To == "node3" && p.From != "node3" }, failDNS("", "large"))
		}, severity: Warning, nodes: []string{"node3"}, title: "CoreDNS Pod coredns-node3 on node3"},
		// Fragments dropped on node4 and nothing else known: large UDP answers only.
		{name: "large_udp_lost_from_node4", mutate: func(ev *Evidence) {
			eachDNS(ev, from("node4"), failDNS("udp", "large"))
		}, severity: Warning, nodes: []string{"node4"}, title: "from node4's Pods: large answers over UDP"},
		// The seed case where node3 has a CoreDNS Pod: its Pod's large answers
		// are lost to the others, and its own Pods' from the others: one
		// finding on node3.
		{name: "mtu_blackhole_both_ways_coredns_node", mutate: func(ev *Evidence) {
			each(ev, with("node3"), func(p *model.Pair) {
				p.PathMTU, p.PathMTULimit, p.Stalled = p.IfaceMTU-100, "silent", p.Layer == model.LayerPod
			})
			eachDNS(ev, func(p model.Pair) bool {
				return p.To == "node3" && p.From != "node3" || p.From == "node3" && p.To != "node3"
			}, failDNS("", "large"))
		}, severity: Warning, nodes: []string{"node3"}, title: "towards CoreDNS Pod coredns-node3 on node3 and from node3's Pods"},
		// Through the Service only, from node2: its kube-proxy's rules.
		{name: "service_only_from_node2", mutate: func(ev *Evidence) {
			eachDNS(ev, func(p model.Pair) bool { return p.From == "node2" && p.To == "" }, failDNS("", ""))
		}, severity: Error, nodes: []string{"node2"}, title: "through the Service"},
		// A moment's loss measured again and passing: the retry replaced it.
		{name: "unknown_says_nothing", mutate: func(ev *Evidence) {
			eachDNS(ev, toPod("node2"), func(p *model.Pair) { failDNS("", "")(p); p.Unknown = "the controller could not ask the agent" })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := healthy(4)
			pods := []string{"node1", "node2"}
			if strings.Contains(tt.name, "coredns_node") {
				pods = []string{"node1", "node3"}
			}
			withDNS(&ev, pods...)
			tt.mutate(&ev)
			all := Diagnose(ev)
			var fs []model.Finding
			for _, f := range all {
				if f.ID == DNSFailing {
					fs = append(fs, f)
				}
			}
			if tt.severity == "" {
				if len(fs) > 0 {
					t.Fatalf("got %s %v: %s; want no DNS finding", fs[0].ID, fs[0].Nodes, fs[0].Title)
				}
				return
			}
			if len(fs) != 1 {
				for _, f := range fs {
					t.Logf("%s %v: %s", f.Severity, f.Nodes, f.Title)
				}
				t.Fatalf("got %d DNS findings; want one", len(fs))
			}
			f := fs[0]
			if f.Severity != tt.severity || !slices.Equal(f.Nodes, tt.nodes) || !strings.Contains(f.Title, tt.title) {
				t.Errorf("got %s %v %q; want %s %v, title with %q", f.Severity, f.Nodes, f.Title, tt.severity, tt.nodes, tt.title)
			}
			if tt.evidence != "" && !strings.Contains(strings.Join(f.Evidence, "\n"), tt.evidence) {
				t.Errorf("evidence:\n%s\nwant a line with %q", strings.Join(f.Evidence, "\n"), tt.evidence)
			}
			if tt.notEvidence != "" && strings.Contains(strings.Join(f.Evidence, "\n"), tt.notEvidence) {
				t.Errorf("evidence:\n%s\nwant no line with %q", strings.Join(f.Evidence, "\n"), tt.notEvidence)
			}
			if f.Severity == Error && f.Remedy == nil {
				t.Error("an error without a remedy")
			}
			// Only the fault's own finding is an error.
			for _, g := range all {
				if g.Severity == Error && g.ID != DNSFailing && tt.severity == Error {
					t.Errorf("another error: %s %v %s", g.ID, g.Nodes, g.Title)
				}
			}
		})
	}
}
