//go:build !agentonly

package e2e

import (
	"slices"
	"strings"
	"testing"

	"podpath/internal/cli"
	"podpath/internal/diagnose"
	"podpath/internal/lab"
	"podpath/internal/model"
)

// The cluster DNS on real nodes: CoreDNS built from its module, deployed
// as Kubespray deploys it (two Pods on two nodes behind kube-system/coredns
// at 10.233.0.3). Healthy, every node's Pod gets small and large answers
// over UDP and TCP from the Service and from each CoreDNS Pod. With UDP 53
// dropped in front of one CoreDNS Pod, the doctor names that Pod's node
// and UDP, nothing else as an error. With the seed's MTU fault on the
// node without CoreDNS, its Pods lose the large answers (fragmented over
// UDP, full-sized segments over TCP), which the MTU black hole explains:
// mtu-blackhole stays the top finding and dns-failing on that node is a
// warning naming it.
func TestKubeDNS(t *testing.T) {
	k := newKubeCluster(t, "kubespray")
	r, code, _ := k.doctor(t)
	if code != cli.ExitOK || len(r.Findings) > 0 {
		t.Fatalf("healthy: exit %d, findings %s; want exit 0, none", code, summary(r))
	}
	servers := checkDNS(t, r, "", "")
	k.nothingLeft(t)
	var coredns, without string
	for _, n := range []string{"node1", "node2", "node3"} {
		if slices.Contains(servers, n) {
			coredns = n
		} else {
			without = n
		}
	}
	if len(servers) != 2 || without == "" {
		t.Fatalf("CoreDNS Pods on %v; want two nodes of three (Kubespray's anti-affinity)", servers)
	}

	fault(t, k.lab, "dns-udp-dropped="+coredns)
	r, code, _ = k.doctor(t)
	t.Logf("dns-udp-dropped=%s: exit %d, findings %s", coredns, code, summary(r))
	if code != cli.ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != diagnose.DNSFailing {
		t.Fatalf("exit %d, findings %s; want %s on top", code, summary(r), diagnose.DNSFailing)
	}
	top := r.Findings[0]
	if top.Severity != model.SeverityError || !slices.Equal(top.Nodes, []string{coredns}) ||
		!strings.Contains(top.Title, "small answers over UDP") || strings.Contains(top.Title, "TCP") {
		t.Errorf("top: %s %v %q; want an error on %s, UDP only", top.Severity, top.Nodes, top.Title, coredns)
	}
	if ev := strings.Join(top.Evidence, "\n"); !strings.Contains(ev, "dport 53") {
		t.Errorf("evidence lacks the node's rule dropping port 53:\n%s", ev)
	}
	for _, o := range r.Findings[1:] {
		if o.Severity == model.SeverityError {
			t.Errorf("another error %s %v: %s", o.ID, o.Nodes, o.Title)
		}
	}
	checkDNS(t, r, coredns, "udp")
	k.nothingLeft(t)
	clearFault(t, k.lab, "dns-udp-dropped="+coredns)

	// The seed case: the underlay towards the node without CoreDNS carries
	// 1400 bytes.
	fault(t, k.lab, "underlay-mtu="+without+":1400")
	r, code, _ = k.doctor(t)
	t.Logf("underlay-mtu=%s:1400: exit %d, findings %s", without, code, summary(r))
	if code != cli.ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != diagnose.MTUBlackhole {
		t.Fatalf("exit %d, findings %s; want %s on top", code, summary(r), diagnose.MTUBlackhole)
	}
	f := finding(r, diagnose.DNSFailing)
	if f == nil || f.Severity != model.SeverityWarning || !slices.Equal(f.Nodes, []string{without}) ||
		!strings.Contains(f.Title, "large answers over UDP") || strings.Contains(f.Title, "small") || !strings.Contains(f.Title, "explained by mtu-blackhole") {
		t.Errorf("dns-failing: %+v; want a warning on %s: large answers lost, explained by mtu-blackhole", f, without)
	}
	for _, p := range r.DNS {
		for _, a := range p.DNS {
			if a.Size == "small" && !a.OK() {
				t.Errorf("%s → %s%s: a small answer failed: %+v", p.From, p.ToPod, p.Service, a)
			}
			if a.Size == "large" && a.OK() == (p.From == without) {
				t.Errorf("%s → %s%s: large %s answer ok=%v; want lost only from %s", p.From, p.ToPod, p.Service, a.Transport, a.OK(), without)
			}
		}
	}
	k.nothingLeft(t)
}

// checkDNS: three nodes' Pods asked the Service and both CoreDNS Pods;
// every answer came, large ones over 1,450 bytes (the Pod MTU), except
// the transport broken towards the CoreDNS Pod on node broken (through
// the Service, kube-proxy picks a Pod per flow: either may come). It
// returns the CoreDNS Pods' nodes.
func checkDNS(t *testing.T, r *model.Report, broken, transport string) []string {
	t.Helper()
	if len(r.DNS) != 9 {
		t.Fatalf("%d DNS checks; want 9 (3 nodes: the Service, 2 CoreDNS Pods)", len(r.DNS))
	}
	var servers []string
	for _, p := range r.DNS {
		if p.To != "" && !slices.Contains(servers, p.To) {
			servers = append(servers, p.To)
		}
		if p.To == "" && !strings.HasPrefix(p.Service, "kube-system/coredns 10.233.0.3:53") {
			t.Errorf("the Service asked: %q; want kube-system/coredns at 10.233.0.3:53", p.Service)
		}
		if len(p.DNS) != 4 {
			t.Errorf("%s → %s%s: %d questions; want 4", p.From, p.ToPod, p.Service, len(p.DNS))
			continue
		}
		for _, a := range p.DNS {
			want := broken == "" || p.To != broken || a.Transport != transport
			if p.To == "" && broken != "" && a.Transport == transport {
				continue
			}
			if a.OK() != want {
				t.Errorf("%s → %s%s: %s %s: ok=%v (%+v); want %v", p.From, p.ToPod, p.Service, a.Transport, a.Size, a.OK(), a, want)
			}
			if a.OK() && a.Size == "large" && (a.Bytes <= 1450 || a.Records != 180) {
				t.Errorf("%s → %s%s: the large answer over %s: %d bytes, %d records; want over 1450, 180", p.From, p.ToPod, p.Service, a.Transport, a.Bytes, a.Records)
			}
		}
	}
	slices.Sort(servers)
	return servers
}

func clearFault(t *testing.T, l *lab.Lab, spec string) {
	t.Helper()
	f, err := lab.ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ClearFaults(t.Context(), f); err != nil {
		t.Fatal(err)
	}
}
