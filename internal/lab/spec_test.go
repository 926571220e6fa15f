package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"podpath/internal/cluster/inventory"
)

func TestPlanDefaults(t *testing.T) {
	s, err := SpecOf(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "podpath" || len(s.Nodes) != 3 || s.Backend != BackendVXLAN || s.Topology != TopologyFlat {
		t.Fatalf("defaults = %s, %d nodes, %s, %s; want podpath, 3, vxlan, flat", s.Name, len(s.Nodes), s.Backend, s.Topology)
	}
	n3 := s.Nodes[2]
	checks := []struct{ what, got, want string }{
		{"node3 address", n3.Address.String(), "198.18.0.3"},
		{"node3 block", n3.Block.String(), "10.233.64.128/26"},
		{"node3 VTEP", n3.VTEP.String(), "10.233.64.128"},
		{"node3 Pod", n3.Pods[0].Address.String(), "10.233.64.129"},
		{"node3 Pod netns", n3.Pods[0].Netns, "podpath.node3-pod1"},
		{"node3 netns", n3.Netns, "podpath.node3"},
		{"fabric", s.Fabric, "podpath.fabric"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s; want %s", c.what, c.got, c.want)
		}
	}
	if n3.UnderlayMTU != 1500 || n3.PodMTU != 1450 || n3.VXLANMTU != 1450 {
		t.Errorf("node3 MTUs = %d/%d/%d; want 1500/1450/1450 (Calico's VXLAN default)", n3.UnderlayMTU, n3.PodMTU, n3.VXLANMTU)
	}
	if !strings.HasPrefix(n3.Pods[0].HostIf, "cali") || len(n3.Pods[0].HostIf) != 15 {
		t.Errorf("host interface %q: want cali + 11 hex digits", n3.Pods[0].HostIf)
	}
}

func TestPlanBlocksDoNotOverlapAndStayInThePool(t *testing.T) {
	s, err := SpecOf(Config{Nodes: MaxNodes, PodsPerNode: MaxPodsPerNode})
	if err != nil {
		t.Fatal(err)
	}
	pool := netip.MustParsePrefix(PodCIDR)
	seen := map[netip.Addr]string{}
	hostIfs := map[string]bool{}
	for _, n := range s.Nodes {
		if !pool.Contains(n.Block.Addr()) || n.Block.Bits() != 26 {
			t.Fatalf("%s block %s outside %s or not a /26", n.Name, n.Block, pool)
		}
		for _, p := range n.Pods {
			if !n.Block.Contains(p.Address) {
				t.Errorf("%s address %s outside its node's block %s", p.Name, p.Address, n.Block)
			}
			if other, dup := seen[p.Address]; dup {
				t.Errorf("%s and %s share %s", p.Name, other, p.Address)
			}
			seen[p.Address] = p.Name
			if hostIfs[p.HostIf] {
				t.Errorf("host interface name %s used twice", p.HostIf)
			}
			hostIfs[p.HostIf] = true
		}
	}
}

func TestPlanRoutedSplitsNodesOverTwoSubnets(t *testing.T) {
	s, err := SpecOf(Config{Nodes: 5, Topology: TopologyRouted})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range s.Nodes {
		got = append(got, n.Address.String())
	}
	want := "198.18.0.1 198.18.0.2 198.18.0.3 198.19.0.4 198.19.0.5"
	if strings.Join(got, " ") != want {
		t.Errorf("addresses = %v; want %s", got, want)
	}
}

func TestPlanMTUs(t *testing.T) {
	tests := []struct {
		name                  string
		cfg                   Config
		node                  int
		underlay, pod, tunnel int
	}{
		{"bgp_has_no_overhead", Config{Backend: BackendBGP}, 0, 1500, 1500, 1500},
		{"jumbo_underlay", Config{UnderlayMTU: 9000}, 0, 9000, 8950, 8950},
		{"explicit_pod_mtu", Config{PodMTU: 1400}, 1, 1500, 1400, 1400},
		{"per_node_override", Config{NodeMTUs: map[string]NodeMTU{"node2": {Underlay: 9000}}}, 1, 9000, 8950, 8950},
		{"per_node_tunnel", Config{NodeMTUs: map[string]NodeMTU{"node1": {VXLAN: 1400}}}, 0, 1500, 1450, 1400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SpecOf(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := s.Nodes[tt.node]
			if n.UnderlayMTU != tt.underlay || n.PodMTU != tt.pod || n.VXLANMTU != tt.tunnel {
				t.Errorf("MTUs = %d/%d/%d; want %d/%d/%d", n.UnderlayMTU, n.PodMTU, n.VXLANMTU, tt.underlay, tt.pod, tt.tunnel)
			}
		})
	}
}

func TestPlanRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative_mtu", Config{UnderlayMTU: -1}, "underlay MTU -1: must be between 576 and 9216"},
		{"huge_pod_mtu", Config{PodMTU: 70000}, "Pod MTU 70000"},
		{"too_many_nodes", Config{Nodes: 300}, "nodes 300: must be between 1 and 250"},
		{"negative_nodes", Config{Nodes: -2}, "nodes -2"},
		{"too_many_pods", Config{PodsPerNode: 63}, "pods per node 63"},
		{"bad_name_dot", Config{Name: "a.b"}, `lab name "a.b"`},
		{"bad_name_upper", Config{Name: "Lab"}, `lab name "Lab"`},
		{"bad_name_long", Config{Name: strings.Repeat("a", 21)}, "lab name"},
		{"bad_backend", Config{Backend: "ipip"}, `backend "ipip": use vxlan, bgp or none`},
		{"bad_topology", Config{Topology: "mesh"}, `topology "mesh"`},
		{"bgp_routed", Config{Backend: BackendBGP, Topology: TopologyRouted}, "backend bgp needs --topology flat"},
		{"override_unknown_node", Config{NodeMTUs: map[string]NodeMTU{"node9": {Pod: 1400}}}, `MTU override for "node9": no such node`},
		{"override_bad_mtu", Config{NodeMTUs: map[string]NodeMTU{"node1": {Pod: 10}}}, "node1 Pod MTU 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SpecOf(tt.cfg)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SpecOf(%+v) error = %v; want ErrInvalid containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestParseNodeMTU(t *testing.T) {
	m := map[string]NodeMTU{}
	for _, s := range []string{"node3:underlay=9000", "node3:pod=8950", "node1:vxlan=1400"} {
		if err := ParseNodeMTU(s, m); err != nil {
			t.Fatal(err)
		}
	}
	if m["node3"] != (NodeMTU{Underlay: 9000, Pod: 8950}) || m["node1"] != (NodeMTU{VXLAN: 1400}) {
		t.Errorf("overrides = %+v", m)
	}
	for _, bad := range []string{"node3", "node3:underlay", "node3:mtu=1", "node3:pod=x", ":pod=1400"} {
		if err := ParseNodeMTU(bad, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseNodeMTU(%q) = %v; want ErrInvalid", bad, err)
		}
	}
}

func TestInventoryOfTheLab(t *testing.T) {
	s, err := SpecOf(Config{Nodes: 2, PodsPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	data, err := inventory.Marshal(s.Inventory("token"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(data)
	if err != nil {
		t.Fatalf("lab inventory does not parse back: %v\n%s", err, data)
	}
	// No --pod-mtu: auto-detected on each node, as Calico without calico_mtu.
	if inv.TokenFile != "token" || inv.Network.Backend != "vxlan" || inv.Network.PodMTU != 0 || inv.Network.PodCIDR != PodCIDR {
		t.Errorf("network = %+v, token %q; want vxlan, Pod MTU 0 (auto)", inv.Network, inv.TokenFile)
	}
	if s, _ := SpecOf(Config{PodMTU: 1400}); s.Inventory("token").Network.PodMTU != 1400 {
		t.Errorf("lab with --pod-mtu 1400: inventory Pod MTU %d; want 1400, as configured", s.Inventory("token").Network.PodMTU)
	}
	n2 := inv.Nodes[1]
	if n2.Name != "node2" || n2.Address != "198.18.0.2" || n2.Agent != "198.18.0.2:7946" ||
		len(n2.Pods) != 2 || n2.Pods[1].Address != "10.233.64.66" || n2.Pods[1].Agent != "10.233.64.66:7946" {
		t.Errorf("node2 = %+v", n2)
	}
}

// A dual-stack lab: IPv6 beside every IPv4 address, blocks of Kubespray's
// IPv6 pool, and MTUs as Felix sets them: each tunnel from the underlay
// (VXLAN over IPv6 costs 70 bytes), the Pods the smaller of the two.
func TestPlanDualStack(t *testing.T) {
	s, err := SpecOf(Config{IPFamily: FamilyDual, Topology: TopologyRouted, Nodes: 4})
	if err != nil {
		t.Fatal(err)
	}
	n1, n4 := s.Nodes[0], s.Nodes[3]
	checks := []struct{ what, got, want string }{
		{"node1 address6", n1.Address6.String(), "fd00:198:18::1"},
		{"node4 address6 (second subnet)", n4.Address6.String(), "fd00:198:19::4"},
		{"node4 block6", n4.Block6.String(), "fd85:ee78:d8a6:8607::1:c0/122"},
		{"node4 VTEP6", n4.VTEP6.String(), "fd85:ee78:d8a6:8607::1:c0"},
		{"node4 Pod address6", n4.Pods[0].Address6.String(), "fd85:ee78:d8a6:8607::1:c1"},
		{"second subnet's IPv6 gateway", s.Subnets[1].Gateway6.String(), "fd00:198:19::fffe"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s; want %s", c.what, c.got, c.want)
		}
	}
	pool := netip.MustParsePrefix(PodCIDRv6)
	for _, n := range s.Nodes {
		if !pool.Contains(n.Block6.Addr()) || n.VTEPMAC6 == n.VTEPMAC {
			t.Errorf("%s: block %s outside %s, or the same VTEP MAC for both tunnels", n.Name, n.Block6, pool)
		}
	}
	if n1.PodMTU != 1430 || n1.VXLANMTU != 1450 || n1.VXLANMTUV6 != 1430 {
		t.Errorf("MTUs pod/vxlan/vxlan-v6 = %d/%d/%d; want 1430/1450/1430", n1.PodMTU, n1.VXLANMTU, n1.VXLANMTUV6)
	}
	// A Pod MTU set: every tunnel takes it, as the operator's one MTU does.
	s, err = SpecOf(Config{IPFamily: FamilyDual, PodMTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Nodes[0]; n.PodMTU != 1400 || n.VXLANMTU != 1400 || n.VXLANMTUV6 != 1400 {
		t.Errorf("--pod-mtu 1400: %d/%d/%d; want 1400 everywhere", n.PodMTU, n.VXLANMTU, n.VXLANMTUV6)
	}
	inv := s.Inventory("token")
	if inv.Nodes[0].Address6 != "fd00:198:18::1" || inv.Nodes[0].Pods[0].Address6 != "fd85:ee78:d8a6:8607::1:1" {
		t.Errorf("inventory's IPv6 addresses: node %q, Pod %q", inv.Nodes[0].Address6, inv.Nodes[0].Pods[0].Address6)
	}
	for _, c := range []Config{
		{IPFamily: FamilyDual, Kubernetes: true},
		{IPFamily: FamilyIPv6, Kubernetes: true},
		{IPFamily: FamilyIPv6, Backend: BackendBGP},
		{IPFamily: "ipv5"},
	} {
		if _, err := SpecOf(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v; want invalid input", c, err)
		}
	}
	// An IPv4 lab's state is what it was: no IPv6 fields written.
	s, _ = SpecOf(Config{})
	if s.Nodes[0].Address6.IsValid() || s.Nodes[0].VXLANMTUV6 != 0 {
		t.Errorf("IPv4 lab has IPv6 parts: %+v", s.Nodes[0])
	}
}

// An IPv6-only lab: the IPv6 side of a dual-stack one alone. One tunnel,
// vxlan-v6.calico, whose 70 bytes set the Pods' MTU; the inventory names
// every node and Pod by its IPv6 address, agents included, and the Pod
// and Service ranges are Kubespray's IPv6 ones.
func TestPlanIPv6Only(t *testing.T) {
	s, err := SpecOf(Config{IPFamily: FamilyIPv6, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := s.Nodes[1]
	if !s.IPv6Only() || s.HasIPv4() || !s.HasIPv6() || s.Dual() {
		t.Errorf("family predicates of %q wrong", s.IPFamily)
	}
	if n.Address6.String() != "fd00:198:18::2" || n.PodMTU != 1430 || n.VXLANMTUV6 != 1430 || n.VXLANMTU != 1430 {
		t.Errorf("node2: %s, MTU pod/vxlan/vxlan-v6 %d/%d/%d; want fd00:198:18::2 and 1430 everywhere", n.Address6, n.PodMTU, n.VXLANMTU, n.VXLANMTUV6)
	}
	inv := s.Inventory("token")
	in := inv.Nodes[1]
	if in.Address != "fd00:198:18::2" || in.Address6 != "" || in.Agent != "[fd00:198:18::2]:7946" ||
		in.Pods[0].Address != "fd85:ee78:d8a6:8607::1:41" || in.Pods[0].Agent != "[fd85:ee78:d8a6:8607::1:41]:7946" {
		t.Errorf("inventory node2 = %+v", in)
	}
	if inv.Network.PodCIDR != PodCIDRv6 || inv.Network.ServiceCIDR != ServiceCIDRv6 {
		t.Errorf("inventory ranges %s, %s; want Kubespray's IPv6 ones", inv.Network.PodCIDR, inv.Network.ServiceCIDR)
	}
	// --vxlan-mtu sets the one tunnel's; --pod-mtu the Pods' and the tunnel's.
	if s, _ := SpecOf(Config{IPFamily: FamilyIPv6, VXLANMTU: 1400}); s.Nodes[0].VXLANMTUV6 != 1400 || s.Nodes[0].PodMTU != 1430 {
		t.Errorf("--vxlan-mtu 1400: vxlan-v6 %d, pod %d; want 1400 and 1430", s.Nodes[0].VXLANMTUV6, s.Nodes[0].PodMTU)
	}
	if s, _ := SpecOf(Config{IPFamily: FamilyIPv6, PodMTU: 1380}); s.Nodes[0].VXLANMTUV6 != 1380 || s.Nodes[0].PodMTU != 1380 {
		t.Errorf("--pod-mtu 1380: vxlan-v6 %d, pod %d; want 1380 both", s.Nodes[0].VXLANMTUV6, s.Nodes[0].PodMTU)
	}
}
