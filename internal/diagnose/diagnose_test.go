package diagnose

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"podpath/internal/bird"
	"podpath/internal/model"
)

func ip(i int) string      { return fmt.Sprintf("198.18.0.%d", i) }
func vtepMAC(i int) string { return fmt.Sprintf("66:70:70:00:00:%02x", i) }
func block(i int) string   { return fmt.Sprintf("10.233.64.%d/26", 64*(i-1)) }
func iptr(v int) *int      { return &v }

// stack is one address family's side of a test cluster: the nodes'
// addresses and Pod blocks, the VXLAN device, MTU and sysctls.
type stack struct {
	family      string // route family: ipv4, ipv6
	addr, block func(int) string
	bits        string // the underlay's prefix length
	lo          []string
	tunnel      string
	podMTU      int
	sysctls     func() model.Sysctls
}

var ipv4Stack = stack{family: "ipv4", addr: ip, block: block, bits: "/16", lo: []string{"127.0.0.1/8"},
	tunnel: "vxlan.calico", podMTU: 1450,
	sysctls: func() model.Sysctls {
		return model.Sysctls{IPv4Forward: iptr(1), RPFilterAll: iptr(0), Conf: map[string]model.LinkConf{"eth0": {RPFilter: iptr(0)}}}
	}}

// healthy is the evidence of a healthy n-node VXLAN cluster, as the doctor
// collects it on the lab.
func healthy(n int) Evidence { return healthyOn(n, ipv4Stack) }

// healthyOn is healthy on one address family's stack.
func healthyOn(n int, st stack) Evidence {
	ev := Evidence{Network: model.Network{Backend: "vxlan", PodMTU: st.podMTU}, Addresses: map[string]string{},
		Facts: map[string]*model.Facts{}, FactErrors: map[string]string{}}
	vtep := func(i int) string { return strings.SplitN(st.block(i), "/", 2)[0] }
	host := "/32"
	if st.family == "ipv6" {
		host = "/128"
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node%d", i)
		ev.Nodes = append(ev.Nodes, name)
		ev.Addresses[name] = st.addr(i)
		f := &model.Facts{
			Links: []model.Link{
				{Name: "lo", MTU: 65536, Addresses: st.lo},
				{Name: "eth0", MTU: 1500, Addresses: []string{st.addr(i) + st.bits}},
				{Name: st.tunnel, MTU: st.podMTU, MAC: vtepMAC(i), Addresses: []string{vtep(i) + host}, VXLAN: &model.VXLAN{VNI: 4096, Port: 4789, Local: st.addr(i)}},
				{Name: "cali0123456789a", MTU: st.podMTU},
			},
			Routes:        []model.Route{{Family: st.family, Dst: st.block(i), Type: "blackhole"}},
			Sysctls:       st.sysctls(),
			KernelModules: []model.Module{{Name: "vxlan", State: model.ModuleBuiltin, Need: "vxlan"}, {Name: "ipip", State: model.ModuleMissing, Need: "ipip"}},
			Conntrack:     model.Conntrack{Count: iptr(10), Max: iptr(1000)},
			Calico: model.Calico{Felix: model.Felix{Error: "connection refused"},
				BIRD: model.BIRDState{Error: "no such file or directory"}},
		}
		for j := 1; j <= n; j++ {
			if j != i {
				f.Routes = append(f.Routes, model.Route{Family: st.family, Dst: st.block(j), Type: "unicast", Dev: st.tunnel})
				vx := f.Links[2].VXLAN
				vx.FDB = append(vx.FDB, model.FDBEntry{MAC: vtepMAC(j), Dst: st.addr(j)})
				vx.Neighbors = append(vx.Neighbors, model.Neighbor{IP: vtep(j), MAC: vtepMAC(j)})
			}
		}
		ev.Facts[name] = f
	}
	var ps []model.Pair
	for _, l := range []model.Layer{model.LayerNode, model.LayerPod} {
		mtu := 1500
		if l == model.LayerPod {
			mtu = st.podMTU
		}
		for _, a := range ev.Nodes {
			for _, b := range ev.Nodes {
				if a == b {
					continue
				}
				loss := 0.0
				ps = append(ps, model.Pair{From: a, To: b, Layer: l, Reachable: true,
					PathMTU: mtu, IfaceMTU: mtu, PathMTULimit: "none",
					RTTMs: &model.Percentiles{P50: 0.1, P99: 0.3}, ICMPRTTMs: &model.Percentiles{P50: 0.1},
					ICMPLossPct: &loss, TCPConnectMs: &model.Percentiles{P50: 0.1}, TransferBytes: 300000})
			}
		}
	}
	ev.Pairs = model.PairsOf(ps)
	return ev
}

// each applies fn to the pairs that match.
func each(ev *Evidence, match func(model.Pair) bool, fn func(*model.Pair)) {
	ps := ev.Pairs.Slice()
	for i := range ps {
		if match(ps[i]) {
			fn(&ps[i])
		}
	}
}

func with(n string) func(model.Pair) bool {
	return func(p model.Pair) bool { return p.From == n || p.To == n }
}

func podWith(n string) func(model.Pair) bool {
	return func(p model.Pair) bool { return p.Layer == model.LayerPod && (p.From == n || p.To == n) }
}

func from(n string) func(model.Pair) bool {
	return func(p model.Pair) bool { return p.From == n }
}

// notAsked is a pair whose agent the controller could not ask.
func notAsked(p *model.Pair) {
	*p = model.Pair{From: p.From, To: p.To, Layer: p.Layer, Unknown: "the controller could not ask the agent on " + p.From + ": context deadline exceeded"}
}

// routerSays1400 is a node pair across a router whose link carries 1400
// bytes and which sends "fragmentation needed".
func routerSays1400(p *model.Pair) {
	p.PathMTU, p.PathMTULimit, p.ICMPMTU, p.ICMPFrom = 1400, "icmp", 1400, "198.18.255.254"
}

func cutPair(p *model.Pair) {
	lost := 100.0
	p.Reachable, p.RTTMs, p.TCPConnectMs, p.PathMTU, p.LossPct = false, nil, nil, 0, 100
	p.ICMPLossPct, p.ICMPRTTMs = &lost, nil
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Evidence)
		id       string // top finding; "" = none above info
		severity string
		nodes    []string
		absent   []string // IDs that must not appear: look-alikes and folded symptoms
	}{
		{name: "healthy_cluster_is_quiet", mutate: func(*Evidence) {}},
		{
			name: "seed_case_blackhole_towards_node3",
			mutate: func(ev *Evidence) {
				each(ev, with("node3"), func(p *model.Pair) {
					p.PathMTU, p.PathMTULimit, p.Stalled = p.IfaceMTU-100, "silent", p.Layer == model.LayerPod
				})
			},
			id: MTUBlackhole, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition, PacketLoss},
		},
		{
			name: "icmp_blocked_is_not_a_partition",
			mutate: func(ev *Evidence) {
				each(ev, with("node2"), func(p *model.Pair) { loss := 100.0; p.ICMPLossPct, p.ICMPRTTMs = &loss, nil })
			},
			id: ICMPFiltered, severity: Info, nodes: []string{"node2"}, absent: []string{PodNetworkPartition, NodeUnreachable, PacketLoss},
		},
		{
			name:   "slow_node_is_high_latency_on_that_node",
			mutate: func(ev *Evidence) { each(ev, with("node2"), func(p *model.Pair) { p.RTTMs.P50 = 40 }) },
			id:     HighLatency, severity: Warning, nodes: []string{"node2"},
		},
		{
			name: "slow_everywhere_names_no_node",
			mutate: func(ev *Evidence) {
				each(ev, func(model.Pair) bool { return true }, func(p *model.Pair) { p.RTTMs.P50 = 80 })
			},
			id: HighLatency, severity: Warning, nodes: nil,
		},
		{
			name: "vxlan_dropped_at_node2",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "t", Chain: "input", Rule: "udp dport 4789 drop", Needs: []string{model.NeedVXLAN}}}
				each(ev, podWith("node2"), cutPair)
			},
			id: EncapBlocked, severity: Error, nodes: []string{"node2"}, absent: []string{PodNetworkPartition},
		},
		{
			name: "forward_policy_drop_explains_the_partition",
			mutate: func(ev *Evidence) {
				ev.Facts["node3"].Firewall.Drops = []model.FirewallDrop{{Family: "ip", Table: "filter", Chain: "FORWARD", Hook: "forward",
					Rule: "policy drop", Policy: true, Needs: []string{model.NeedICMP, model.NeedPodTraffic}}}
				each(ev, podWith("node3"), cutPair)
			},
			id: FirewallDrop, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition},
		},
		{
			// A rule that may drop VXLAN, past a test podpath cannot
			// evaluate, while every Pod pair works: nothing to report.
			name: "possible_drop_without_a_symptom_is_quiet",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "ip", Table: "filter", Chain: "cali-INPUT",
					Rule: "udp dport 4789 xt match addrtype drop", Conditional: true, Possible: []string{model.NeedVXLAN}}}
			},
		},
		{
			// An input policy drop behind an accept of the node network: it
			// may stop VXLAN (podpath cannot tell the far end's address), it
			// stops BGP for certain, which a VXLAN cluster does not use.
			name: "allow_list_policy_on_a_healthy_vxlan_node_is_quiet",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "filter", Chain: "input", Hook: "input",
					Rule: "policy drop", Policy: true, Needs: []string{model.NeedBGP, model.NeedIPIP}, Possible: []string{model.NeedVXLAN}}}
			},
		},
		{
			name: "possible_drop_where_pods_fail",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "t", Chain: "input",
					Rule: "ip saddr 10.1.0.0/16 udp dport 4789 drop", Conditional: true, Possible: []string{model.NeedVXLAN}}}
				each(ev, podWith("node2"), cutPair)
			},
			id: EncapBlocked, severity: Error, nodes: []string{"node2"}, absent: []string{PodNetworkPartition},
		},
		{
			name: "vxlan_port_differs_on_node3",
			mutate: func(ev *Evidence) {
				ev.Facts["node3"].Links[2].VXLAN.Port = 8472
				each(ev, podWith("node3"), cutPair)
			},
			id: EncapMismatch, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition},
		},
		{
			name: "vni_differs_on_node2",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Links[2].VXLAN.VNI = 4097
				each(ev, podWith("node2"), cutPair)
			},
			id: EncapMismatch, severity: Error, nodes: []string{"node2"}, absent: []string{PodNetworkPartition},
		},
		{
			// node1 still sends node3's frames to an address node3 gave up.
			name: "stale_fdb_entry_on_node1",
			mutate: func(ev *Evidence) {
				ev.Facts["node1"].Links[2].VXLAN.FDB[1].Dst = "198.18.0.99"
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node1" && p.To == "node3" }, cutPair)
			},
			id: EncapMismatch, severity: Error, nodes: []string{"node1"}, absent: []string{PodNetworkPartition},
		},
		{
			// Peers send node3's VXLAN to its second NIC; node3 answers by
			// eth0; eth1 is strict.
			name: "second_nic_with_strict_rp_filter",
			mutate: func(ev *Evidence) {
				f := ev.Facts["node3"]
				f.Links = append(f.Links, model.Link{Name: "eth1", MTU: 1500, Addresses: []string{"198.51.100.3/24"}})
				f.Routes = append(f.Routes, model.Route{Family: "ipv4", Dst: "198.18.0.0/16", Type: "unicast", Dev: "eth0"},
					model.Route{Family: "ipv4", Dst: "198.51.100.0/24", Type: "unicast", Dev: "eth1"})
				f.Sysctls.Conf["eth1"] = model.LinkConf{RPFilter: iptr(1)}
				for _, n := range []string{"node1", "node2"} {
					fdb := ev.Facts[n].Links[2].VXLAN.FDB
					for i := range fdb {
						if fdb[i].MAC == vtepMAC(3) {
							fdb[i].Dst = "198.51.100.3"
						}
					}
				}
				each(ev, podWith("node3"), cutPair)
			},
			id: RPFilterStrict, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition, EncapMismatch},
		},
		{
			// node3 behind a router whose link carries 1400 and which says
			// so: path MTU discovery works, VXLAN's larger packets cross as
			// fragments.
			name: "routed_underlay_fragments_pod_packets",
			mutate: func(ev *Evidence) {
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && (p.From == "node3" || p.To == "node3") }, routerSays1400)
			},
			id: UnderlayFragmentation, severity: Warning, nodes: []string{"node3"}, absent: []string{MTUBlackhole, MTUInconsistent},
		},
		{
			name: "fragments_dropped_make_a_black_hole",
			mutate: func(ev *Evidence) {
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && (p.From == "node3" || p.To == "node3") }, routerSays1400)
				each(ev, podWith("node3"), func(p *model.Pair) { p.PathMTU, p.PathMTULimit, p.Stalled = 1350, "silent", true })
			},
			id: MTUBlackhole, severity: Error, nodes: []string{"node3"}, absent: []string{UnderlayFragmentation, PodNetworkPartition, PacketLoss},
		},
		{
			// The same router, and Pods configured to fit it.
			name: "routed_underlay_with_a_pod_mtu_that_fits_is_quiet",
			mutate: func(ev *Evidence) {
				ev.Network.PodMTU = 1350
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && (p.From == "node3" || p.To == "node3") }, routerSays1400)
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod }, func(p *model.Pair) { p.PathMTU, p.IfaceMTU = 1350, 1350 })
				for _, f := range ev.Facts {
					f.Links[3].MTU, f.Links[2].MTU = 1350, 1350
				}
			},
		},
		{
			// node2 drops BGP from node3 only: their session is down, and
			// with it the routes between them, which the firewall explains.
			name: "bgp_firewall_explains_the_routes_it_cuts",
			mutate: func(ev *Evidence) {
				ev.Network.Backend = "bgp"
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "t", Chain: "input", Hook: "input",
					Rule: "ip saddr 198.18.0.3 tcp dport 179 drop", Conditional: true, Possible: []string{model.NeedBGP}}}
				ev.Facts["node2"].Routes = slices.DeleteFunc(ev.Facts["node2"].Routes, func(r model.Route) bool { return r.Dst == block(3) })
				ev.Facts["node3"].Routes = slices.DeleteFunc(ev.Facts["node3"].Routes, func(r model.Route) bool { return r.Dst == block(2) })
				each(ev, func(p model.Pair) bool {
					return p.Layer == model.LayerPod && ((p.From == "node2" && p.To == "node3") || (p.From == "node3" && p.To == "node2"))
				}, cutPair)
			},
			id: FirewallDrop, severity: Error, nodes: []string{"node2"}, absent: []string{RouteMissing, PodNetworkPartition},
		},
		{
			// As above, with BIRD's sessions in the facts, and node1 not
			// announcing its block besides: the firewall explains what the
			// node2–node3 session carried, not node2's missing route to node1.
			name:   "bgp_firewall_explains_only_its_own_sessions",
			mutate: bgpFirewallBetween2And3,
			id:     FirewallDrop, severity: Error, nodes: []string{"node2"}, absent: []string{PodNetworkPartition},
		},
		{
			// node3's second default route, with the better metric, sends
			// everything to the other nodes out of eth1, where it goes nowhere.
			name: "second_default_route_cuts_the_host_network",
			mutate: func(ev *Evidence) {
				f := ev.Facts["node3"]
				f.Links = append(f.Links, model.Link{Name: "eth1", MTU: 1500, Addresses: []string{"10.61.0.3/24"}})
				f.Routes = append(f.Routes, model.Route{Family: "ipv4", Dst: "default", Gw: "198.18.255.254", Dev: "eth0", Type: "unicast", Metric: 100},
					model.Route{Family: "ipv4", Dst: "default", Gw: "10.61.0.254", Dev: "eth1", Type: "unicast", Metric: 50})
				each(ev, with("node3"), cutPair)
			},
			id: NodeNetworkPartition, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition, NodeUnreachable},
		},
		{
			// A stateful router on an asymmetric path: UDP passes, TCP's
			// answers and ICMP echo replies arrive "invalid" and are dropped.
			name: "tcp_fails_while_udp_passes",
			mutate: func(ev *Evidence) {
				each(ev, with("node3"), func(p *model.Pair) {
					lost := 100.0
					p.TCPConnectMs, p.TCPConnectTried, p.ICMPLossPct, p.ICMPRTTMs, p.TransferBytes = nil, 2, &lost, nil, 0
				})
			},
			id: TCPBlocked, severity: Error, nodes: []string{"node3"}, absent: []string{ICMPFiltered, PodNetworkPartition},
		},
		{
			name: "bird_down_explains_missing_routes",
			mutate: func(ev *Evidence) {
				ev.Network.Backend = "bgp"
				for _, n := range []string{"node1", "node2", "node3"} {
					f := ev.Facts[n]
					f.Calico.BIRD.Error = ""
					for j := 1; j <= 3; j++ {
						if peer := fmt.Sprintf("node%d", j); peer != n {
							state := "Established"
							if peer == "node2" {
								state = "Active"
							}
							f.Calico.BIRD.Protocols = append(f.Calico.BIRD.Protocols, bird.Protocol{Name: fmt.Sprintf("Mesh_198_18_0_%d", j), Proto: "BGP", State: "up", Info: state})
						}
					}
				}
				ev.Facts["node2"].Calico.BIRD = model.BIRDState{Error: "dial unix bird.ctl: no such file or directory"}
				for _, n := range []string{"node1", "node3"} {
					ev.Facts[n].Routes = slices.DeleteFunc(ev.Facts[n].Routes, func(r model.Route) bool { return r.Dst == block(2) })
				}
				each(ev, podWith("node2"), cutPair)
			},
			id: BGPSessionDown, severity: Error, nodes: []string{"node2"}, absent: []string{RouteMissing, PodNetworkPartition},
		},
		{
			// Right after an install: node2's BIRD started 9 s ago, the
			// sessions to it are not up and its routes are not there yet.
			name:   "bgp_sessions_still_connecting",
			mutate: func(ev *Evidence) { bgpSessionsTo(ev, "node2", "2026-12-03 14:45:15.697") },
			id:     BGPSessionStarting, severity: Warning, nodes: []string{"node2"}, absent: []string{BGPSessionDown, RouteMissing, PodNetworkPartition},
		},
		{
			// The same sessions, dropped 9 s ago between BIRDs running for
			// an hour (a firewall rule added, a link cut): down.
			name:   "bgp_sessions_dropped_between_old_birds",
			mutate: func(ev *Evidence) { bgpSessionsTo(ev, "node2", "2026-12-03 13:45:00.000") },
			id:     BGPSessionDown, severity: Error, nodes: []string{"node2"}, absent: []string{BGPSessionStarting, RouteMissing, PodNetworkPartition},
		},
		{
			name: "route_missing_on_node1",
			mutate: func(ev *Evidence) {
				ev.Facts["node1"].Routes = slices.DeleteFunc(ev.Facts["node1"].Routes, func(r model.Route) bool { return r.Dst == block(2) })
				each(ev, func(p model.Pair) bool {
					return p.Layer == model.LayerPod && ((p.From == "node1" && p.To == "node2") || (p.From == "node2" && p.To == "node1"))
				}, cutPair)
			},
			id: RouteMissing, severity: Error, nodes: []string{"node1"}, absent: []string{PodNetworkPartition},
		},
		{
			// A stale, more specific route on node1 takes half of node2's
			// block to the underlay's gateway.
			name: "more_specific_route_hijacks_a_block",
			mutate: func(ev *Evidence) {
				ev.Facts["node1"].Routes = append(ev.Facts["node1"].Routes, model.Route{Family: "ipv4", Dst: "10.233.64.64/27", Gw: "198.18.255.254", Dev: "eth0", Type: "unicast"})
				each(ev, func(p model.Pair) bool {
					return p.Layer == model.LayerPod && ((p.From == "node1" && p.To == "node2") || (p.From == "node2" && p.To == "node1"))
				}, cutPair)
			},
			id: RouteMissing, severity: Error, nodes: []string{"node1"}, absent: []string{PodNetworkPartition},
		},
		{
			name: "ip_forward_off",
			mutate: func(ev *Evidence) {
				ev.Facts["node2"].Sysctls.IPv4Forward = iptr(0)
				each(ev, podWith("node2"), cutPair)
			},
			id: IPForwardDisabled, severity: Error, nodes: []string{"node2"}, absent: []string{PodNetworkPartition},
		},
		{
			name:   "strict_rp_filter",
			mutate: func(ev *Evidence) { ev.Facts["node2"].Sysctls.RPFilterAll = iptr(1) },
			id:     RPFilterStrict, severity: Warning, nodes: []string{"node2"},
		},
		{
			name:   "unexplained_partition",
			mutate: func(ev *Evidence) { each(ev, podWith("node2"), cutPair) },
			id:     PodNetworkPartition, severity: Error, nodes: []string{"node2"},
		},
		{
			name: "dead_node_is_unreachable_not_broken",
			mutate: func(ev *Evidence) {
				delete(ev.Facts, "node3")
				ev.FactErrors["node3"] = "connection refused"
				each(ev, with("node3"), cutPair)
				each(ev, from("node3"), notAsked)
			},
			id: NodeUnreachable, severity: Error, nodes: []string{"node3"}, absent: []string{PodNetworkPartition, RouteMissing, ResultsUnknown},
		},
		{
			// node3 is up: its host answers "port unreachable", the agent is gone.
			name: "dead_agent_on_a_live_node_is_unknown",
			mutate: func(ev *Evidence) {
				delete(ev.Facts, "node3")
				ev.FactErrors["node3"] = "connection refused"
				each(ev, with("node3"), cutPair)
				each(ev, with("node3"), func(p *model.Pair) { p.NoAgent = p.To == "node3" })
				each(ev, from("node3"), notAsked)
			},
			id: ResultsUnknown, severity: Warning, nodes: []string{"node3"}, absent: []string{NodeUnreachable, PodNetworkPartition, RouteMissing},
		},
		{
			// The controller cannot talk to node3's agents, its peers can.
			name: "lost_control_channel_is_unknown_not_unreachable",
			mutate: func(ev *Evidence) {
				delete(ev.Facts, "node3")
				ev.FactErrors["node3"] = "context deadline exceeded"
				each(ev, from("node3"), notAsked)
			},
			id: ResultsUnknown, severity: Warning, nodes: []string{"node3"}, absent: []string{NodeUnreachable, PodNetworkPartition},
		},
		{
			// node1 lacks the route to node3's block, so the controller on
			// node1 cannot ask node3's Pod agent: node3 → node2 is unknown,
			// not failed, and healthy node2 is named by nothing.
			name: "could_not_ask_is_not_no_answer",
			mutate: func(ev *Evidence) {
				ev.Facts["node1"].Routes = slices.DeleteFunc(ev.Facts["node1"].Routes, func(r model.Route) bool { return r.Dst == block(3) })
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node1" && p.To == "node3" }, cutPair)
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node3" }, notAsked)
			},
			id: RouteMissing, severity: Error, nodes: []string{"node1"}, absent: []string{PodNetworkPartition, NodeUnreachable},
		},
		{
			name: "unsettled_size_search_is_said_not_silent",
			mutate: func(ev *Evidence) {
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && p.From == "node1" && p.To == "node3" }, func(p *model.Pair) {
					p.PathMTU, p.PathMTULimit, p.PathMTUError = 0, "", "path MTU search did not settle in 24 rounds"
				})
			},
			id: ResultsUnknown, severity: Warning, nodes: []string{"node1", "node3"}, absent: []string{MTUBlackhole, NodeUnreachable},
		},
		{
			name: "loss_is_not_a_blackhole",
			mutate: func(ev *Evidence) {
				each(ev, with("node2"), func(p *model.Pair) { p.LossPct, p.Stalled = 30, true })
			},
			id: PacketLoss, severity: Warning, nodes: []string{"node2"}, absent: []string{MTUBlackhole},
		},
		{
			// The lab's loss fault: one pair's ten echoes all came back by
			// chance, but its transfer stalled. Its size search saw full-size
			// packets answered, so the stall is not about size.
			// Loss on node2: one pair's five ICMP echoes all lost by chance.
			name: "lost_icmp_echoes_amid_loss_are_not_a_filter",
			mutate: func(ev *Evidence) {
				each(ev, with("node2"), func(p *model.Pair) { p.LossPct = 30 })
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && p.From == "node3" && p.To == "node2" },
					func(p *model.Pair) { loss := 100.0; p.ICMPLossPct, p.ICMPRTTMs = &loss, nil })
			},
			id: PacketLoss, severity: Warning, nodes: []string{"node2"}, absent: []string{ICMPFiltered},
		},
		{
			name: "stall_where_full_size_crosses_is_not_a_blackhole",
			mutate: func(ev *Evidence) {
				each(ev, with("node2"), func(p *model.Pair) { p.LossPct = 30 })
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod && p.From == "node2" && p.To == "node1" },
					func(p *model.Pair) { p.LossPct, p.Stalled = 0, true })
			},
			id: PacketLoss, severity: Warning, nodes: []string{"node2"}, absent: []string{MTUBlackhole},
		},
		{
			name: "pod_mtu_above_the_tunnel",
			mutate: func(ev *Evidence) {
				for _, f := range ev.Facts {
					f.Links[3].MTU = 1500
				}
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerPod }, func(p *model.Pair) {
					p.IfaceMTU, p.PathMTU, p.PathMTULimit, p.ICMPMTU = 1500, 1450, "icmp", 1450
				})
			},
			id: MTUInconsistent, severity: Error, nodes: []string{"node1", "node2", "node3"}, absent: []string{MTUBlackhole},
		},
		{
			name: "one_node_jumbo",
			mutate: func(ev *Evidence) {
				ev.Facts["node3"].Links[1].MTU = 9000
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode && p.From == "node3" }, func(p *model.Pair) {
					p.IfaceMTU, p.PathMTULimit = 9000, "silent"
				})
			},
			id: MTUInconsistent, severity: Error, nodes: []string{"node3"}, absent: []string{MTUBlackhole},
		},
		{
			name:   "vxlan_module_missing",
			mutate: func(ev *Evidence) { ev.Facts["node1"].KernelModules[0].State = model.ModuleMissing },
			id:     KernelModuleMissing, severity: Error, nodes: []string{"node1"},
		},
		{
			name:   "felix_not_ready",
			mutate: func(ev *Evidence) { ev.Facts["node2"].Calico.Felix = model.Felix{StatusCode: 503} },
			id:     CalicoNodeUnhealthy, severity: Error, nodes: []string{"node2"},
		},
		{
			name:   "conntrack_nearly_full",
			mutate: func(ev *Evidence) { ev.Facts["node1"].Conntrack.Count = iptr(950) },
			id:     ConntrackFull, severity: Warning, nodes: []string{"node1"},
		},
		{
			name: "bgp_port_dropped",
			mutate: func(ev *Evidence) {
				ev.Network.Backend = "bgp"
				for _, f := range ev.Facts {
					f.Calico.BIRD.Error = ""
				}
				ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "t", Chain: "input", Rule: "tcp dport 179 drop", Needs: []string{model.NeedBGP}}}
			},
			id: FirewallDrop, severity: Error, nodes: []string{"node2"},
		},
		{
			name:   "ippool_mtu_is_ignored",
			mutate: func(ev *Evidence) { ev.IPPoolMTUs = map[string]int{"default-ipv4-ippool": 1500} },
			id:     IPPoolMTUIgnored, severity: Warning,
		},
		{
			// As the cluster source hands it over: node3 NotReady and
			// cordoned, so no agent and no pairs there.
			name: "not_ready_node_is_not_a_partition",
			mutate: func(ev *Evidence) {
				ev.Nodes = ev.Nodes[:2]
				ev.Pairs = model.PairsOf(slices.DeleteFunc(ev.Pairs.Slice(), with("node3")))
				delete(ev.Facts, "node3")
				ev.NotReady = map[string]string{"node3": "False (KubeletNotReady)"}
				ev.Cordoned = []string{"node3"}
			},
			id: NodeNotReady, severity: Warning, nodes: []string{"node3"},
			absent: []string{PodNetworkPartition, NodeUnreachable, NodeCordoned},
		},
		{
			name: "calico_node_pod_not_ready",
			mutate: func(ev *Evidence) {
				ev.CalicoPods = map[string]CalicoPod{"node1": {Name: "kube-system/calico-node-a", Ready: true},
					"node2": {Name: "kube-system/calico-node-b", LogErrors: []string{"[WARNING] Failed to auto-detect host MTU"}}}
			},
			id: CalicoNodeUnhealthy, severity: Error, nodes: []string{"node2"},
		},
		{
			name:   "cordoned_ready_node_is_info",
			mutate: func(ev *Evidence) { ev.Cordoned = []string{"node2"} },
			id:     NodeCordoned, severity: Info, nodes: []string{"node2"},
		},
		{
			name: "jumbo_path_with_small_pods_is_wasteful",
			mutate: func(ev *Evidence) {
				each(ev, func(p model.Pair) bool { return p.Layer == model.LayerNode }, func(p *model.Pair) { p.PathMTU, p.IfaceMTU = 9000, 9000 })
			},
			id: MTUWasteful, severity: Info,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := healthy(3)
			tt.mutate(&ev)
			got := Diagnose(ev)
			var top *model.Finding
			for i := range got {
				if got[i].Severity != Info || tt.severity == Info {
					top = &got[i]
					break
				}
			}
			switch {
			case tt.id == "" && top != nil:
				t.Errorf("findings %v; want none above info", ids(got))
			case tt.id != "" && (top == nil || top.ID != tt.id || top.Severity != tt.severity || !slices.Equal(top.Nodes, tt.nodes)):
				t.Errorf("findings %v; want top %s (%s) on %v", ids(got), tt.id, tt.severity, tt.nodes)
			}
			for _, f := range got {
				if slices.Contains(tt.absent, f.ID) {
					t.Errorf("findings %v include %s, which the cause explains (or which this is not)", ids(got), f.ID)
				}
			}
		})
	}
}

// node2 drops BGP from node3 (BIRD's sessions in the facts say so), and
// node1 announces nothing besides.
func bgpFirewallBetween2And3(ev *Evidence) {
	ev.Network.Backend = "bgp"
	for _, n := range []string{"node1", "node2", "node3"} {
		f := ev.Facts[n]
		f.Calico.BIRD.Error = ""
		for j := 1; j <= 3; j++ {
			if peer := fmt.Sprintf("node%d", j); peer != n {
				state := "Established"
				if (n == "node2" && peer == "node3") || (n == "node3" && peer == "node2") {
					state = "Active"
				}
				f.Calico.BIRD.Protocols = append(f.Calico.BIRD.Protocols, bird.Protocol{Name: fmt.Sprintf("Mesh_198_18_0_%d", j), Proto: "BGP", State: "up", Info: state})
			}
		}
	}
	ev.Facts["node2"].Firewall.Drops = []model.FirewallDrop{{Family: "inet", Table: "t", Chain: "input", Hook: "input",
		Rule: "ip saddr 198.18.0.3 tcp dport 179 drop", Conditional: true, Possible: []string{model.NeedBGP}}}
	ev.Facts["node2"].Routes = slices.DeleteFunc(ev.Facts["node2"].Routes, func(r model.Route) bool { return r.Dst == block(3) || r.Dst == block(1) })
	ev.Facts["node3"].Routes = slices.DeleteFunc(ev.Facts["node3"].Routes, func(r model.Route) bool { return r.Dst == block(2) })
	// Every Pod pair with node2 fails: with node3 for the firewall, with
	// node1 for the route node1 never announced.
	each(ev, podWith("node2"), cutPair)
}

// The firewall between node2 and node3 explains the routes their session
// carried, and leaves node2's missing route to node1's block (node1
// announces nothing) to route-missing.
func TestBGPFirewallLeavesOtherRoutes(t *testing.T) {
	ev := healthy(3)
	bgpFirewallBetween2And3(&ev)
	var ids []string
	for _, f := range Diagnose(ev) {
		ids = append(ids, f.ID+"/"+strings.Join(f.Nodes, ","))
	}
	for _, want := range []string{"firewall-drop/node2", "route-missing/node2"} {
		if !slices.Contains(ids, want) {
			t.Errorf("findings %v; want %s among them", ids, want)
		}
	}
	if slices.Contains(ids, "route-missing/node3") {
		t.Errorf("findings %v: node3's missing route to node2's block is the firewall's doing, not its own finding", ids)
	}
}

func TestSeedRemedy(t *testing.T) {
	ev := healthy(3)
	each(&ev, with("node3"), func(p *model.Pair) { p.PathMTU, p.PathMTULimit = p.IfaceMTU-100, "silent" })
	f := Diagnose(ev)[0]
	if f.Remedy == nil || f.Remedy.MTU != 1350 {
		t.Fatalf("remedy %+v; want MTU 1350", f.Remedy)
	}
	text := f.Remedy.Summary + strings.Join(f.Remedy.Commands, " ")
	for _, want := range []string{"calico_mtu: 1350", "spec.calicoNetwork.mtu", "veth_mtu", "underlay towards node3 carry 1500"} {
		if !strings.Contains(text, want) {
			t.Errorf("remedy lacks %q: %s", want, text)
		}
	}
}

// Knowing how Calico was installed, the remedy names the one object to
// change and where the configuration was read.
func TestRemedyByInstall(t *testing.T) {
	for install, want := range map[string][]string{
		"operator":  {"installation.operator.tigera.io default", "spec.calicoNetwork.mtu"},
		"manifest":  {"configmap calico-config", "veth_mtu"},
		"kubespray": {"calico_mtu: 1350", "k8s-net-calico.yml", "--kubespray-inventory", "reverted by the next Kubespray run"},
	} {
		ev := healthy(3)
		ev.Network.Install = install
		ev.Network.Sources = []string{"Pod MTU 1450: calico-config veth_mtu"}
		each(&ev, with("node3"), func(p *model.Pair) { p.PathMTU, p.PathMTULimit = p.IfaceMTU-100, "silent" })
		f := Diagnose(ev)[0]
		text := f.Remedy.Summary + strings.Join(f.Remedy.Commands, " ")
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: remedy lacks %q: %s", install, w, text)
			}
		}
		other := map[string]string{"operator": "calico-config", "manifest": "installation.operator", "kubespray": "patch configmap"}[install]
		if strings.Contains(text, other) {
			t.Errorf("%s: remedy mentions %s, another install type's object: %s", install, other, text)
		}
		if !slices.Contains(f.Evidence, "Pod MTU 1450: calico-config veth_mtu") {
			t.Errorf("%s: evidence %v lacks where the configuration was read", install, f.Evidence)
		}
	}
}

func TestLocalize(t *testing.T) {
	all := healthy(4).Pairs.Slice()
	var node3, all2 []model.Pair
	for _, p := range all {
		if p.Layer == model.LayerPod && (p.From == "node3" || p.To == "node3") {
			node3 = append(node3, p)
		}
		if p.Layer == model.LayerPod {
			all2 = append(all2, p)
		}
	}
	if got := Localize(node3, slices.All(all)); !slices.Equal(got, []string{"node3"}) {
		t.Errorf("Localize(pairs of node3) = %v", got)
	}
	if got := Localize(all2, slices.All(all)); got != nil {
		t.Errorf("Localize(every pair) = %v; want nil (everywhere)", got)
	}
}

func ids(fs []model.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+"/"+f.Severity+"/"+strings.Join(f.Nodes, ","))
	}
	return out
}

// bgpSessionsTo makes ev a BGP cluster whose BIRDs (clock 14:45:24.528,
// started at 13:45, node's at started) have every session Established
// but those to node, which are in state start since 14:45:15.696, Active;
// node's block is not routed and its Pod pairs fail.
func bgpSessionsTo(ev *Evidence, node, started string) {
	ev.Network.Backend = "bgp"
	for i, n := range []string{"node1", "node2", "node3"} {
		f := ev.Facts[n]
		f.Calico.BIRD = model.BIRDState{ServerTime: "2026-12-03 14:45:24.528", Started: "2026-12-03 13:45:00.000"}
		if n == node {
			f.Calico.BIRD.Started = started
		}
		for j := 1; j <= 3; j++ {
			if peer := fmt.Sprintf("node%d", j); j != i+1 {
				p := bird.Protocol{Name: fmt.Sprintf("Mesh_198_18_0_%d", j), Proto: "BGP", State: "up", Since: "13:45:03.000", Info: "Established"}
				if peer == node || n == node {
					p.State, p.Since, p.Info = "start", "14:45:15.696", "Active"
				}
				f.Calico.BIRD.Protocols = append(f.Calico.BIRD.Protocols, p)
			}
		}
		if n != node {
			f.Routes = slices.DeleteFunc(f.Routes, func(r model.Route) bool { return r.Dst == block(2) })
		}
	}
	each(ev, podWith(node), cutPair)
}

// The doctor hands large runs' pairs over compact (model.CompactPairs):
// the diagnosis must not tell the two apart, on plain pairs (the cheap
// check's reachable ones) beside measured ones, healthy or not.
func TestCompactPairsDiagnoseAlike(t *testing.T) {
	for _, broken := range []bool{false, true} {
		ev := healthy(4)
		ps := ev.Pairs.Slice()
		for i := range ps {
			if i%2 == 0 {
				p := ps[i]
				ps[i] = model.Pair{From: p.From, To: p.To, Layer: p.Layer, Reachable: true}
			}
			if broken && ps[i].To == "node3" && ps[i].Layer == model.LayerPod {
				ps[i].Reachable, ps[i].RTTMs, ps[i].LossPct = false, nil, 100
			}
		}
		compact := ev
		compact.Pairs = model.CompactPairs(len(ps), func(i int) model.Pair {
			return model.Pair{From: ps[i].From, To: ps[i].To, Layer: ps[i].Layer}
		})
		for i, p := range ps {
			compact.Pairs.Set(i, p)
		}
		if !slices.EqualFunc(compact.Pairs.Slice(), ps, func(a, b model.Pair) bool { return reflect.DeepEqual(a, b) }) {
			t.Fatalf("compact pairs read back differently")
		}
		want, got := Diagnose(ev), Diagnose(compact)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("broken=%v: compact pairs gave %v, whole ones %v", broken, ids(got), ids(want))
		}
		if broken && len(want) == 0 {
			t.Errorf("broken=%v: no finding at all; the case tests nothing", broken)
		}
	}
}

// Right after an install every BIRD has just started and no session is
// up yet: one warning naming every node, not one per node, and nothing
// judged down, missing or partitioned.
func TestBGPStartingEverywhereIsOneFinding(t *testing.T) {
	ev := healthy(3)
	bgpSessionsTo(&ev, "node2", "2026-12-03 14:45:15.697")
	for _, n := range ev.Nodes {
		b := &ev.Facts[n].Calico.BIRD
		b.Started = "2026-12-03 14:45:15.697"
		for i := range b.Protocols {
			b.Protocols[i].State, b.Protocols[i].Since, b.Protocols[i].Info = "start", "14:45:15.696", "Active"
		}
	}
	each(&ev, func(p model.Pair) bool { return p.Layer == model.LayerPod }, cutPair)
	var starting []model.Finding
	for _, f := range Diagnose(ev) {
		switch f.ID {
		case BGPSessionStarting:
			starting = append(starting, f)
		case BGPSessionDown, RouteMissing, PodNetworkPartition:
			t.Errorf("%s (%v) while every session is still connecting", f.ID, f.Nodes)
		}
	}
	if len(starting) != 1 || !slices.Equal(starting[0].Nodes, ev.Nodes) {
		t.Fatalf("%d %s findings %v; want one naming every node", len(starting), BGPSessionStarting, starting)
	}
	if got := starting[0].Title; got != "BGP sessions with node1, node2, node3 are still connecting" {
		t.Errorf("title %q", got)
	}
}
