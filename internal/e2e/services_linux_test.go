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

// Services through kube-proxy on real nodes (nftables mode): each node's
// Pod agent through the run's Services' ClusterIPs to the other nodes' Pod
// agents, and each node's host through the other nodes' NodePorts.
// Healthy, every check passes and kube-proxy is healthy everywhere; with
// kube-proxy stopped on node2 the doctor names kube-proxy on node2, not
// the Pod network; with node3's kube-proxy gone and its rules flushed,
// the same, saying no rule is left; and once kube-proxy runs again, all
// is well.
func TestKubeServices(t *testing.T) {
	k := newKubeCluster(t, "kubespray")
	r, code, _ := k.doctor(t)
	if code != cli.ExitOK || len(r.Findings) > 0 {
		t.Fatalf("healthy: exit %d, findings %s; want exit 0, none", code, summary(r))
	}
	checkServices(t, r, "")
	if r.Config == nil || !slices.ContainsFunc(r.Config.Sources, func(s string) bool {
		return strings.HasPrefix(s, "kube-proxy mode nftables (ConfigMap kube-system/kube-proxy")
	}) {
		t.Errorf("config %+v; want kube-proxy's mode read from its ConfigMap", r.Config)
	}
	for _, n := range r.Nodes {
		if kp := n.Facts.KubeProxy; kp.Healthz != model.KubeProxyHealthy || !slices.Contains(kp.Rules, "nftables") {
			t.Errorf("%s's kube-proxy: %+v; want healthy, nftables rules", n.Name, kp)
		}
	}
	k.nothingLeft(t)

	for _, tc := range []struct{ fault, node, evidence string }{
		{"kube-proxy-stopped=node2", "node2", "rule sets in node2's kernel: nftables"},
		{"kube-proxy-flushed=node3", "node3", "rule sets in node3's kernel: none"},
	} {
		fault(t, k.lab, tc.fault)
		r, code, _ = k.doctor(t)
		t.Logf("%s: exit %d, findings %s", tc.fault, code, summary(r))
		if code != cli.ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != diagnose.KubeProxyDown {
			t.Fatalf("%s: exit %d, findings %s; want %s on top", tc.fault, code, summary(r), diagnose.KubeProxyDown)
		}
		top := r.Findings[0]
		ev := strings.Join(top.Evidence, "\n")
		if !slices.Equal(top.Nodes, []string{tc.node}) || !strings.Contains(ev, "nothing listens (connection refused)") || !strings.Contains(ev, tc.evidence) {
			t.Errorf("%s: %v\n%s\nwant %s only, its health port refusing, %q", tc.fault, top.Nodes, ev, tc.node, tc.evidence)
		}
		for _, o := range r.Findings[1:] {
			if o.Severity == model.SeverityError {
				t.Errorf("%s: another error %s %v: %s", tc.fault, o.ID, o.Nodes, o.Title)
			}
		}
		checkServices(t, r, tc.node)
		k.nothingLeft(t)
		f, err := lab.ParseFault(tc.fault)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.lab.ClearFaults(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	r, code, _ = k.doctor(t)
	if code != cli.ExitOK || len(r.Findings) > 0 {
		t.Errorf("kube-proxy running again: exit %d, findings %s; want exit 0, none", code, summary(r))
	}
	checkServices(t, r, "")
}

// checkServices: every node's Pod went through the ClusterIPs, and its host
// through the NodePorts, of both other nodes' Services; the checks broken's
// kube-proxy takes part in (the ClusterIPs from it, its NodePorts) fail,
// every other one passes.
func checkServices(t *testing.T, r *model.Report, broken string) {
	t.Helper()
	if len(r.Services) != 12 {
		t.Fatalf("%d Service checks; want 12 (3 nodes, 2 ClusterIPs and 2 NodePorts each): %+v", len(r.Services), r.Services)
	}
	for _, p := range r.Services {
		through := p.From
		if p.Layer == model.LayerNodePort {
			through = p.To
		}
		if ok := diagnose.ServiceOK(p); ok == (through == broken) || !strings.Contains(p.Service, "/backend-") {
			t.Errorf("%s %s → %s via %q: ok %v (%s); want ok unless through %q", p.Layer, p.From, p.To, p.Service, ok, diagnose.ServiceFailure(p), broken)
		}
	}
}
