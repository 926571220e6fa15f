package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"podpath/internal/model"
)

// withServices adds the Service checks a doctor run makes on n nodes (each
// Pod agent through the Services of the other nodes' Pod agents), all
// passing, and kube-proxy healthy with its nftables rules everywhere.
func withServices(ev *Evidence) {
	for i, a := range ev.Nodes {
		ev.Facts[a].KubeProxy = model.KubeProxy{Healthz: model.KubeProxyHealthy, HealthzAddress: "http://127.0.0.1:10256/healthz", Rules: []string{"nftables"}}
		for j, b := range ev.Nodes {
			if i != j {
				ev.Services = append(ev.Services, model.Pair{From: a, To: b, Layer: model.LayerService, Reachable: true,
					Service: fmt.Sprintf("podpath-1/backend-%d 10.233.0.%d:7946", j, 10+j),
					RTTMs:   &model.Percentiles{P50: 0.2}, TCPConnectMs: &model.Percentiles{P50: 0.2}, TCPConnectTried: 2, TransferBytes: 300000},
					model.Pair{From: a, To: b, Layer: model.LayerNodePort, Reachable: true,
						Service: fmt.Sprintf("podpath-1/backend-%d NodePort %s:%d", j, ip(j+1), 30000+j),
						RTTMs:   &model.Percentiles{P50: 0.2}, TCPConnectMs: &model.Percentiles{P50: 0.2}, TCPConnectTried: 2, TransferBytes: 300000})
			}
		}
	}
}

// throughProxyOf: the checks node's kube-proxy takes part in: the
// ClusterIP checks its Pods send, the NodePort checks it receives.
func throughProxyOf(n string) func(model.Pair) bool {
	return func(p model.Pair) bool {
		return p.Layer == model.LayerService && p.From == n || p.Layer == model.LayerNodePort && p.To == n
	}
}

func clusterIPFrom(n string) func(model.Pair) bool {
	return func(p model.Pair) bool { return p.Layer == model.LayerService && p.From == n }
}

func failService(p *model.Pair) {
	p.Reachable, p.RTTMs, p.TCPConnectMs, p.TransferBytes = false, nil, nil, 0
	p.Errors = []string{"transfer: connect: i/o timeout"}
}

func eachService(ev *Evidence, match func(model.Pair) bool, fn func(*model.Pair)) {
	for i := range ev.Services {
		if match(ev.Services[i]) {
			fn(&ev.Services[i])
		}
	}
}

func TestServicePaths(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Evidence)
		id       string // "": no finding at all
		severity string
		nodes    []string
		evidence string // a line of the evidence contains it
		size     int    // nodes in the cluster; 0: 4
	}{
		{name: "healthy", mutate: func(*Evidence) {}},
		{name: "kube-proxy_stopped_on_node2", mutate: func(ev *Evidence) {
			eachService(ev, throughProxyOf("node2"), failService)
			ev.Facts["node2"].KubeProxy.Healthz, ev.Facts["node2"].KubeProxy.HealthzDetail = model.KubeProxyNotListening, "connection refused"
		}, id: KubeProxyDown, severity: Error, nodes: []string{"node2"}, evidence: "nothing listens (connection refused)"},
		{name: "kube-proxy_gone_and_its_rules", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
			ev.Facts["node2"].KubeProxy = model.KubeProxy{Healthz: model.KubeProxyNotListening, HealthzAddress: "http://127.0.0.1:10256/healthz", HealthzDetail: "connection refused"}
		}, id: KubeProxyDown, severity: Error, nodes: []string{"node2"}, evidence: "rule sets in node2's kernel: none"},
		{name: "kube-proxy_unhealthy_on_node3", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node3"), failService)
			ev.Facts["node3"].KubeProxy.Healthz = model.KubeProxyUnhealthy
		}, id: KubeProxyDown, severity: Error, nodes: []string{"node3"}},
		{name: "rules_flushed_kube-proxy_healthy", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
			ev.Facts["node2"].KubeProxy.Rules = nil
		}, id: ServicePathFailing, severity: Error, nodes: []string{"node2"}, evidence: "rule sets in node2's kernel: none"},
		{name: "no_facts_from_the_sender", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
			delete(ev.Facts, "node2")
		}, id: ServicePathFailing, severity: Error, nodes: []string{"node2"}},
		{name: "tcp_only_through_services", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), func(p *model.Pair) { p.TCPConnectMs, p.TransferBytes = nil, 0 })
		}, id: ServicePathFailing, severity: Error, nodes: []string{"node2"}, evidence: "calico #4727"},
		{name: "backend_node4_unreachable_through_its_service", mutate: func(ev *Evidence) {
			eachService(ev, func(p model.Pair) bool { return p.Layer == model.LayerService && p.To == "node4" }, failService)
		}, id: ServicePathFailing, severity: Error, nodes: []string{"node4"}},
		// Two nodes: one check each way, nothing to compare with but
		// kube-proxy's own word.
		{name: "two_nodes_kube-proxy_stopped", size: 2, mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
			ev.Facts["node2"].KubeProxy.Healthz = model.KubeProxyNotListening
		}, id: KubeProxyDown, severity: Error, nodes: []string{"node2"}},
		{name: "two_nodes_one_check_fails", size: 2, mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
		}, id: ServicePathFailing, severity: Warning, nodes: []string{"node2", "node1"}},
		{name: "one_check_fails", mutate: func(ev *Evidence) {
			eachService(ev, func(p model.Pair) bool { return p.Layer == model.LayerService && p.From == "node1" && p.To == "node3" }, failService)
		}, id: ServicePathFailing, severity: Warning, nodes: []string{"node1", "node3"}},
		{name: "kube-proxy_gone_both_paths", mutate: func(ev *Evidence) {
			eachService(ev, throughProxyOf("node3"), failService)
			ev.Facts["node3"].KubeProxy.Healthz = model.KubeProxyNotListening
		}, id: KubeProxyDown, severity: Error, nodes: []string{"node3"}, evidence: "NodePort"},
		// A firewall on node3 dropping the NodePort range: ClusterIPs work.
		{name: "nodeports_of_node3_fail", mutate: func(ev *Evidence) {
			eachService(ev, func(p model.Pair) bool { return p.Layer == model.LayerNodePort && p.To == "node3" }, failService)
		}, id: ServicePathFailing, severity: Error, nodes: []string{"node3"}, evidence: "host to host: answered"},
		// The node network's own failure: host to host fails too.
		{name: "nodeports_with_hosts_cut", mutate: func(ev *Evidence) {
			eachService(ev, func(p model.Pair) bool { return p.Layer == model.LayerNodePort && p.To == "node3" }, failService)
			each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && p.To == "node3" }, cutPair)
		}},
		// The Pod network's own failure: its findings speak, not the Services'.
		{name: "direct_fails_too", mutate: func(ev *Evidence) {
			eachService(ev, clusterIPFrom("node2"), failService)
			each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node2" }, cutPair)
		}},
		// The seed case: large packets vanish towards node3; a Service's
		// upload stalls there as the direct one does. The MTU finding's.
		{name: "mtu_blackhole_is_not_a_service_fault", mutate: func(ev *Evidence) {
			each(ev, with("node3"), func(p *model.Pair) {
				p.PathMTU, p.PathMTULimit, p.Stalled = p.IfaceMTU-100, "silent", p.Layer == model.LayerPod
			})
			eachService(ev, func(p model.Pair) bool { return p.To == "node3" || p.From == "node3" }, func(p *model.Pair) { p.Stalled = true })
		}},
		{name: "unknown_checks_say_nothing", mutate: func(ev *Evidence) {
			eachService(ev, throughProxyOf("node2"), func(p *model.Pair) { failService(p); p.Unknown = "the controller could not ask the agent" })
		}},
		// Calico's eBPF dataplane or another kube-proxy replacement:
		// nothing on the health port, no rules, Services work.
		{name: "no_kube-proxy_services_work", mutate: func(ev *Evidence) {
			for _, f := range ev.Facts {
				f.KubeProxy = model.KubeProxy{Healthz: model.KubeProxyNotListening}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = 4
			}
			ev := healthy(size)
			withServices(&ev)
			tt.mutate(&ev)
			var fs []model.Finding
			for _, f := range Diagnose(ev) {
				if f.ID == KubeProxyDown || f.ID == ServicePathFailing {
					fs = append(fs, f)
				}
			}
			if tt.id == "" {
				if len(fs) > 0 {
					t.Fatalf("got %s %v: %s; want no Service finding", fs[0].ID, fs[0].Nodes, fs[0].Title)
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("got %d Service findings %v; want one %s", len(fs), ids(fs), tt.id)
			}
			f := fs[0]
			if f.ID != tt.id || f.Severity != tt.severity || !slices.Equal(f.Nodes, tt.nodes) {
				t.Errorf("got %s %s %v; want %s %s %v", f.ID, f.Severity, f.Nodes, tt.id, tt.severity, tt.nodes)
			}
			if tt.evidence != "" && !strings.Contains(strings.Join(f.Evidence, "\n"), tt.evidence) {
				t.Errorf("evidence:\n%s\nwant a line with %q", strings.Join(f.Evidence, "\n"), tt.evidence)
			}
		})
	}
}

// The IPVS modules count only where kube-proxy runs in IPVS mode.
func TestIPVSModulesByKubeProxyMode(t *testing.T) {
	for _, mode := range []string{"ipvs", "nftables", ""} {
		ev := healthy(3)
		ev.Network.KubeProxyMode = mode
		ev.Facts["node2"].KernelModules = append(ev.Facts["node2"].KernelModules, model.Module{Name: "ip_vs", State: model.ModuleMissing, Need: "kube-proxy-ipvs", Evidence: "CONFIG_IP_VS is not set"})
		var got []model.Finding
		for _, f := range Diagnose(ev) {
			if f.ID == KernelModuleMissing {
				got = append(got, f)
			}
		}
		if want := mode == "ipvs"; (len(got) == 1 && slices.Equal(got[0].Nodes, []string{"node2"})) != want || (!want && len(got) > 0) {
			t.Errorf("mode %q: %v; want kernel-module-missing on node2: %v", mode, ids(got), want)
		}
	}
}
