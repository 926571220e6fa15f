package diagnose

import (
	"fmt"
	"strings"
	"testing"

	"podpath/internal/model"
)

func ip6(i int) string { return fmt.Sprintf("fd00:198:18::%d", i) }

// block6 is node i's /122 of Kubespray's kube_pods_subnet_ipv6.
func block6(i int) string { return fmt.Sprintf("fd85:ee78:d8a6:8607::1:%x/122", 64*(i-1)) }

// healthyV6 is the evidence of a healthy n-node IPv6-only VXLAN cluster:
// the nodes' addresses IPv6, Pod traffic in vxlan-v6.calico (MTU 1430,
// 70 bytes under the uplink's 1500), IPv6 routes and forwarding. IPv4
// forwarding is off and IPv4's rp_filter strict, as an IPv6-only host
// may well leave them: nothing of this cluster crosses them.
func healthyV6(n int) Evidence {
	return healthyOn(n, stack{family: "ipv6", addr: ip6, block: block6, bits: "/64", lo: []string{"127.0.0.1/8", "::1/128"},
		tunnel: "vxlan-v6.calico", podMTU: 1430,
		sysctls: func() model.Sysctls {
			return model.Sysctls{IPv4Forward: iptr(0), IPv6Forwarding: iptr(1), RPFilterAll: iptr(1), Conf: map[string]model.LinkConf{"eth0": {RPFilter: iptr(1)}}}
		}})
}

// An IPv6-only cluster is diagnosed in one pass (no Family) by IPv6's
// rules: its tunnel device, overhead, forwarding sysctl and routes;
// IPv4's sysctls (forwarding, rp_filter) say nothing about it.
func TestIPv6OnlyCluster(t *testing.T) {
	if fs := Diagnose(healthyV6(3)); len(fs) != 0 {
		t.Fatalf("healthy IPv6-only cluster with IPv4 forwarding off and strict IPv4 rp_filter: %v", ids(fs))
	}
	cases := []struct {
		name     string
		mutate   func(ev *Evidence)
		id, node string
		want     string // in the top finding's evidence, remedy or commands
	}{
		{"ipv6_forwarding_off_on_node2", func(ev *Evidence) {
			ev.Facts["node2"].Sysctls.IPv6Forwarding = iptr(0)
			each(ev, podWith("node2"), cutPair)
		}, IPForwardDisabled, "node2", "net.ipv6.conf.all.forwarding = 0"},
		{"route_to_node3_block_missing_on_node1", func(ev *Evidence) {
			f := ev.Facts["node1"]
			f.Routes = f.Routes[:len(f.Routes)-1]
			each(ev, func(p model.Pair) bool {
				return p.Layer == model.LayerPod && (p.From == "node1" && p.To == "node3" || p.From == "node3" && p.To == "node1")
			}, cutPair)
		}, RouteMissing, "node1", "no route to " + block6(3)},
		{"vxlan_v6_port_differs_on_node3", func(ev *Evidence) {
			ev.Facts["node3"].Links[2].VXLAN.Port = 8472
			each(ev, podWith("node3"), cutPair)
		}, EncapMismatch, "node3", "vxlan-v6.calico uses UDP port 8472"},
		{"stale_vtep_neighbour_on_node1", func(ev *Evidence) {
			ev.Facts["node1"].Links[2].VXLAN.Neighbors[0].MAC = "66:70:70:00:00:99"
			each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node1" && p.To == "node2" }, cutPair)
		}, EncapMismatch, "node1", "ip -6 neigh show dev vxlan-v6.calico"},
		{"forward_policy_drop_on_node3", func(ev *Evidence) {
			ev.Network.PodCIDR = "fd85:ee78:d8a6:8607::1:0/112"
			ev.Facts["node3"].Firewall.Drops = []model.FirewallDrop{{Family: "ip6", Table: "filter", Chain: "FORWARD", Hook: "forward",
				Rule: "policy drop", Policy: true, Needs: []string{model.NeedPodTraffic}}}
			each(ev, podWith("node3"), cutPair)
		}, FirewallDrop, "node3", "ip6tables -I DOCKER-USER -s fd85:ee78:d8a6:8607::1:0/112 -j ACCEPT"},
		{"seed_mtu_on_node3", func(ev *Evidence) {
			each(ev, with("node3"), func(p *model.Pair) {
				p.PathMTU, p.PathMTULimit = 1400, "silent"
				if p.Layer == model.LayerPod {
					p.PathMTU = 1330
				}
			})
		}, MTUBlackhole, "node3", "1330"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := healthyV6(3)
			c.mutate(&ev)
			fs := Diagnose(ev)
			if len(fs) == 0 || fs[0].ID != c.id || len(fs[0].Nodes) != 1 || fs[0].Nodes[0] != c.node {
				t.Fatalf("findings %v; want %s on %s first", ids(fs), c.id, c.node)
			}
			text := strings.Join(fs[0].Evidence, "\n")
			if r := fs[0].Remedy; r != nil {
				text += "\n" + r.Summary + "\n" + strings.Join(r.Commands, "\n")
			}
			if !strings.Contains(text, c.want) {
				t.Errorf("%s says:\n%s\nwant %q", c.id, text, c.want)
			}
			for _, f := range fs {
				if f.Family != "" {
					t.Errorf("%s carries family %q: an IPv6-only cluster has one pass, its first", f.ID, f.Family)
				}
			}
		})
	}
	// The seed case's remedy is IPv6's: 1400 less VXLAN over IPv6's 70.
	ev := healthyV6(3)
	each(&ev, with("node3"), func(p *model.Pair) {
		p.PathMTU, p.PathMTULimit = 1400, "silent"
		if p.Layer == model.LayerPod {
			p.PathMTU = 1330
		}
	})
	if fs := Diagnose(ev); len(fs) == 0 || fs[0].Remedy == nil || fs[0].Remedy.MTU != 1330 {
		t.Errorf("seed case on IPv6 only: %v; want mtu-blackhole with remedy MTU 1330", fs)
	}
}
