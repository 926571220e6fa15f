package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		in   string
		want Fault
	}{
		{"underlay-mtu=node3:1400", Fault{Kind: FaultUnderlayMTU, Node: "node3", Value: 1400}},
		{"pod-mtu=1500", Fault{Kind: FaultPodMTU, Value: 1500}},
		{"block-vxlan=node2", Fault{Kind: FaultBlockVXLAN, Node: "node2"}},
		{"block-bgp=node2", Fault{Kind: FaultBlockBGP, Node: "node2"}},
		{"block-icmp=node1", Fault{Kind: FaultBlockICMP, Node: "node1"}},
		{"bird-down=node2", Fault{Kind: FaultBIRDDown, Node: "node2"}},
		{"route-missing=node1:10.233.64.64/26", Fault{Kind: FaultRouteMissing, Node: "node1", Block: netip.MustParsePrefix("10.233.64.64/26")}},
		{"route-missing=node1:10.233.64.70/26", Fault{Kind: FaultRouteMissing, Node: "node1", Block: netip.MustParsePrefix("10.233.64.64/26")}},
		{"ip-forward-off=node2", Fault{Kind: FaultIPForwardOff, Node: "node2"}},
		{"ipv6-forward-off=node2", Fault{Kind: FaultIPv6ForwardOff, Node: "node2"}},
		{"uplink-bridge=node2", Fault{Kind: FaultUplinkBridge, Node: "node2"}},
		{"rp-filter-strict=node2", Fault{Kind: FaultRPFilterStrict, Node: "node2"}},
		{"delay=node2:20", Fault{Kind: FaultDelay, Node: "node2", Value: 20}},
		{"loss=node2:5", Fault{Kind: FaultLoss, Node: "node2", Value: 5}},
		{"node-mtu=node3:9000", Fault{Kind: FaultNodeMTU, Node: "node3", Value: 9000}},
		{"rate=node2:100", Fault{Kind: FaultRate, Node: "node2", Value: 100}},
		{"router-mtu=1400", Fault{Kind: FaultRouterMTU, Value: 1400}},
		{"router-no-frag-needed", Fault{Kind: FaultRouterNoFragNeeded}},
		{"router-no-icmp", Fault{Kind: FaultRouterNoICMP}},
		{"drop-fragments", Fault{Kind: FaultDropFragments}},
		{"forward-policy-drop=node2", Fault{Kind: FaultForwardPolicyDrop, Node: "node2"}},
		{"vxlan-port=node3:8472", Fault{Kind: FaultVXLANPort, Node: "node3", Value: 8472}},
		{"vxlan-vni=node3:4097", Fault{Kind: FaultVXLANVNI, Node: "node3", Value: 4097}},
		{"asymmetric-nic=node3", Fault{Kind: FaultAsymmetricNIC, Node: "node3"}},
		{"bgp-second-nic=node3", Fault{Kind: FaultBGPSecondNIC, Node: "node3"}},
		{"kube-proxy-stopped=node2", Fault{Kind: FaultKubeProxyStopped, Node: "node2"}},
		{"kube-proxy-flushed=node3", Fault{Kind: FaultKubeProxyFlushed, Node: "node3"}},
		{"dns-udp-dropped=node1", Fault{Kind: FaultDNSUDPDropped, Node: "node1"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFault(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseFault(%q) = %+v; want %+v", tt.in, got, tt.want)
			}
			// What status prints parses back to the same fault.
			if again, err := ParseFault(got.String()); err != nil || again != got {
				t.Errorf("round trip of %s: %+v, %v", got, again, err)
			}
		})
	}
	if len(tests) < len(faultArgs) {
		t.Errorf("%d fault kinds, %d tested", len(faultArgs), len(tests))
	}
}

func TestParseFaultRejects(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mtu-broken=node3", `unknown fault "mtu-broken": known faults are`},
		{"underlay-mtu", "missing argument"},
		{"underlay-mtu=node3", "missing node or value"},
		{"underlay-mtu=node3:-1", "underlay-mtu -1: must be between 576 and 9216"},
		{"underlay-mtu=node3:big", `"big" is not a number`},
		{"pod-mtu=0", "pod-mtu 0"},
		{"block-vxlan=node2:4789", "takes only a node name"},
		{"route-missing=node1:10.233.64.64", "is not a CIDR"},
		{"delay=node1:0", "delay 0 ms must be between 1 and 10000"},
		{"loss=node1:101", "loss 101% must be between 1 and 100"},
		{"rate=node1:0", "rate 0 Mbit/s must be between 1 and 100000"},
		{"router-no-icmp=node1", "takes no argument"},
		{"router-mtu=100", "router-mtu 100: must be between 576"},
		{"vxlan-port=node3:0", "port 0 must be between 1 and 65535"},
		{"vxlan-vni=node3:16777216", "VNI 16777216 must be between 1 and 16777215"},
		{"dns-udp-dropped", "missing argument (write dns-udp-dropped=<node>)"},
		{"dns-udp-dropped=node1:53", "takes only a node name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseFault(tt.in)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFault(%q) error = %v; want ErrInvalid containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestCheckFault(t *testing.T) {
	vx, _ := SpecOf(Config{})
	bgp, _ := SpecOf(Config{Backend: BackendBGP})
	none, _ := SpecOf(Config{Backend: BackendNone})
	routed, _ := SpecOf(Config{Topology: TopologyRouted})
	kube := vx
	kube.Kubernetes = true
	v6, _ := SpecOf(Config{IPFamily: FamilyIPv6})
	dual, _ := SpecOf(Config{IPFamily: FamilyDual})
	tests := []struct {
		name  string
		spec  Spec
		fault string
		want  string // "" for accepted
	}{
		{"known_node", vx, "underlay-mtu=node3:1400", ""},
		{"unknown_node", vx, "underlay-mtu=node9:1400", `no node "node9" in lab podpath (it has node1..node3)`},
		{"bird_without_bgp", vx, "bird-down=node1", "runs backend vxlan, which has no BGP"},
		{"bird_with_bgp", bgp, "bird-down=node1", ""},
		{"remote_block", vx, "route-missing=node1:10.233.64.64/26", ""},
		{"own_block", vx, "route-missing=node1:10.233.64.0/26", "node1 has no route to 10.233.64.0/26"},
		{"foreign_block", vx, "route-missing=node1:10.1.0.0/26", "node1 has no route to 10.1.0.0/26"},
		{"no_routes_on_none", none, "route-missing=node1:10.233.64.64/26", "backend none has no routes"},
		{"pod_mtu_has_no_node", vx, "pod-mtu=1500", ""},
		{"router_on_flat", vx, "router-mtu=1400", "has a flat underlay with no router"},
		{"router_on_routed", routed, "router-no-frag-needed", ""},
		{"vxlan_port_on_bgp", bgp, "vxlan-port=node1:8472", "which has no VXLAN"},
		{"second_nic_bgp_on_vxlan", vx, "bgp-second-nic=node1", "which has no BGP"},
		{"asymmetric_nic", vx, "asymmetric-nic=node3", ""},
		{"kube_proxy_without_kubernetes", vx, "kube-proxy-stopped=node2", "runs no kube-proxy"},
		{"kube_proxy", kube, "kube-proxy-stopped=node2", ""},
		{"dns_without_kubernetes", vx, "dns-udp-dropped=node1", "has no cluster DNS (build it with --kubernetes)"},
		{"dns", kube, "dns-udp-dropped=node1", ""},
		{"dns_unknown_node", kube, "dns-udp-dropped=node7", `no node "node7"`},
		{"uplink_bridge", vx, "uplink-bridge=node2", ""},
		{"uplink_bridge_on_bgp", bgp, "uplink-bridge=node2", "which has no VXLAN"},
		{"ipv6_forward_on_ipv4", vx, "ipv6-forward-off=node2", "is IPv4 only (build it with --ip-family dual or ipv6)"},
		{"ipv6_only_forward", v6, "ipv6-forward-off=node2", ""},
		{"ipv6_only_ipv4_forward", v6, "ip-forward-off=node2", ""}, // changes nothing there: a healthy variant
		{"ipv6_only_block6", v6, "route-missing=node1:fd85:ee78:d8a6:8607::1:40/122", ""},
		{"ipv6_only_block4", v6, "route-missing=node1:10.233.64.64/26", "IPv6 /122 blocks, e.g. fd85:ee78:d8a6:8607::1:40/122"},
		{"ipv6_only_icmp", v6, "block-icmp=node2", "not built for an IPv6-only lab yet"},
		{"ipv6_only_vxlan_port", v6, "vxlan-port=node2:8472", "not built for an IPv6-only lab yet"},
		{"dual_block6", dual, "route-missing=node1:fd85:ee78:d8a6:8607::1:40/122", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFault(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.spec.CheckFault(f)
			if tt.want == "" && err != nil {
				t.Errorf("CheckFault(%s) = %v; want accepted", tt.fault, err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckFault(%s) = %v; want error containing %q", tt.fault, err, tt.want)
			}
		})
	}
}

func TestFaultKeyReplacesSameTarget(t *testing.T) {
	a, _ := ParseFault("underlay-mtu=node3:1400")
	b, _ := ParseFault("underlay-mtu=node3:1300")
	c, _ := ParseFault("underlay-mtu=node2:1400")
	if a.Key() != b.Key() || a.Key() == c.Key() {
		t.Errorf("keys %s %s %s: want the first two equal, the third different", a.Key(), b.Key(), c.Key())
	}
}
