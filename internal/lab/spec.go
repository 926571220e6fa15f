package lab

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"podpath/internal/calico"
)

// Backend is how nodes reach each other's Pod blocks.
type Backend string

// Topology is the shape of the underlay.
type Topology string

const (
	BackendVXLAN Backend = "vxlan"
	BackendBGP   Backend = "bgp"
	BackendNone  Backend = "none"

	TopologyFlat   Topology = "flat"
	TopologyRouted Topology = "routed"

	// IP families: IPv4 alone (the default), dual-stack, as Kubespray's
	// ipv6_stack (every node, Pod and tunnel has an IPv6 address beside
	// its IPv4 one), or IPv6 alone (Kubespray's ipv6_stack without
	// ipv4_stack: nodes, Pods and the tunnel IPv6 only, as calico-node with
	// IP=none).
	FamilyIPv4 = "ipv4"
	FamilyDual = "dual"
	FamilyIPv6 = "ipv6"
)

// Limits and defaults of the lab. Calico's and Kubespray's values where they have one.
const (
	DefaultName        = "podpath"
	DefaultNodes       = 3
	DefaultPodsPerNode = 1
	DefaultUnderlayMTU = 1500
	MaxNodes           = 250 // a /18 pool holds 256 /26 blocks, one per node here
	MaxPodsPerNode     = 62  // block .0 is the VXLAN tunnel address, .63 is left free
	MinMTU             = 576 // smallest IPv4 datagram every host must accept (RFC 791)
	MaxMTU             = 9216
	VXLANOverhead      = calico.OverheadVXLAN
	VXLANVNI           = 4096
	VXLANPort          = 4789
	VXLANDevice        = "vxlan.calico"
	VXLANDeviceV6      = "vxlan-v6.calico" // Felix's IPv6 tunnel: IPv6 in VXLAN over the nodes' IPv6 addresses
	VXLANOverheadV6    = calico.OverheadVXLANv6
	PodCIDRv6          = "fd85:ee78:d8a6:8607::1:0/112"  // Kubespray's kube_pods_subnet_ipv6
	ServiceCIDRv6      = "fd85:ee78:d8a6:8607::1000/116" // Kubespray's kube_service_addresses_ipv6
	BlockBitsV6        = 122                             // Kubespray's calico_pool_blocksize_ipv6
	// PodGatewayV6 is the link-local address the host side of a Pod veth
	// gets from its MAC ee:ee:ee:ee:ee:ee: the Calico CNI plugin routes the
	// Pod's IPv6 through it.
	PodGatewayV6 = "fe80::ecee:eeff:feee:eeee"
	ASNumber     = 64512
	AgentPort    = 7946
	PodGateway   = "169.254.1.1"
	CaliMAC      = "ee:ee:ee:ee:ee:ee"
	PodCIDR      = "10.233.64.0/18"
	ServiceCIDR  = "10.233.0.0/18"
	BlockBits    = 26

	// The control plane of a Kubernetes lab: on the first subnet, beside its gateway.
	ControlPlaneAddr = "198.18.255.253"
	APIServerPort    = 6443
	RegistryPort     = 5000
	CalicoKubespray  = "kubespray"
	CalicoManifest   = "manifest"
	CalicoOperator   = "operator"
)

// NodeMTU overrides MTUs on one node; zero fields keep the lab's value.
type NodeMTU struct {
	Underlay int `json:"underlay,omitempty"`
	Pod      int `json:"pod,omitempty"`
	VXLAN    int `json:"vxlan,omitempty"`
}

// Config is what a user asks for. Builder fills it; SpecOf turns it into a Spec.
type Config struct {
	Name        string             `json:"name"`
	Nodes       int                `json:"nodes"`
	PodsPerNode int                `json:"podsPerNode"`
	Backend     Backend            `json:"backend"`
	Topology    Topology           `json:"topology"`
	UnderlayMTU int                `json:"underlayMTU"`
	PodMTU      int                `json:"podMTU"`   // 0: underlay MTU less the backend's overhead
	VXLANMTU    int                `json:"vxlanMTU"` // 0: as PodMTU, as Calico sets it
	NodeMTUs    map[string]NodeMTU `json:"nodeMTUs,omitempty"`
	// IPFamily is FamilyIPv4 (empty) or FamilyDual: an IPv6 underlay, Pod
	// blocks and vxlan-v6.calico beside IPv4's. Calico then gives the Pods
	// the smaller of its two tunnels' MTUs (VXLAN over IPv6 costs 70 bytes).
	IPFamily string `json:"ipFamily,omitempty"`
	// Agents starts a host agent in every node and a Pod-network agent in
	// every Pod, listening on AgentPort.
	Agents bool `json:"agents,omitempty"`
	// Controller names the node whose network the inventory has the
	// controller dial every agent from, as when podpath runs on that node:
	// its calls then cross the lab's network like a real cluster's. Empty:
	// each agent is dialled from inside its own namespace.
	Controller string `json:"controller,omitempty"`
	// Kubernetes makes the lab a cluster of real nodes: a control plane in a
	// namespace of its own on the fabric, and kubelet, containerd, runc and
	// kube-proxy on every node. Pods are then Kubernetes' own.
	Kubernetes bool `json:"kubernetes,omitempty"`
	// Calico is how Calico's objects are installed in such a cluster:
	// "kubespray" (Kubespray's calico-config, calico-node in kube-system),
	// "manifest" (Calico's own manifest's calico-config, veth_mtu "0") or
	// "operator" (an Installation, calico-node in calico-system).
	Calico string `json:"calico,omitempty"`
}

// Spec is the fully planned lab: every name, address and MTU the kernel will see.
type Spec struct {
	Config
	Fabric string `json:"fabric"` // namespace of the bridge(s) and, when routed, the router
	// ControlPlane is the namespace of the control plane (Kubernetes labs).
	ControlPlane string   `json:"controlPlane,omitempty"`
	Subnets      []Subnet `json:"subnets"`
	Nodes        []Node   `json:"nodes"`
}

// Subnet is one underlay segment: a bridge in the fabric namespace.
type Subnet struct {
	Bridge  string       `json:"bridge"`
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Addr   `json:"gateway"`
	// Prefix6 and Gateway6 are its IPv6 ones on a dual-stack lab.
	Prefix6  netip.Prefix `json:"prefix6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
}

// Node is one lab node: a namespace with eth0 on the underlay.
type Node struct {
	Name        string       `json:"name"`
	Netns       string       `json:"netns"`
	Address     netip.Addr   `json:"address"`
	Subnet      int          `json:"subnet"`     // index into Spec.Subnets
	FabricPort  string       `json:"fabricPort"` // fabric-side name of the node's eth0 veth
	Block       netip.Prefix `json:"block"`
	VTEP        netip.Addr   `json:"vtep"` // vxlan.calico address, first of the block
	VTEPMAC     string       `json:"vtepMAC"`
	UnderlayMTU int          `json:"underlayMTU"`
	PodMTU      int          `json:"podMTU"`
	VXLANMTU    int          `json:"vxlanMTU"`
	Pods        []Pod        `json:"pods"`
	// A dual-stack lab's IPv6 side: the underlay address, the Pod block,
	// vxlan-v6.calico's address (first of the block), MAC and MTU.
	Address6   netip.Addr   `json:"address6,omitzero"`
	Block6     netip.Prefix `json:"block6,omitzero"`
	VTEP6      netip.Addr   `json:"vtep6,omitzero"`
	VTEPMAC6   string       `json:"vtepMAC6,omitempty"`
	VXLANMTUV6 int          `json:"vxlanMTUV6,omitempty"`
}

// Pod is a Pod namespace with eth0 veth'd to a cali* interface on its node.
type Pod struct {
	Name    string     `json:"name"`
	Netns   string     `json:"netns"`
	Address netip.Addr `json:"address"`
	HostIf  string     `json:"hostIf"`
	// Address6 is its IPv6 address on a dual-stack lab.
	Address6 netip.Addr `json:"address6,omitzero"`
}

// ErrInvalid marks bad input: the CLI exits 2 on it.
var ErrInvalid = errors.New("invalid input")

// invalidError is bad input, said as it is (no "invalid input:" prefix),
// and errors.Is ErrInvalid.
type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, a ...any) error {
	return invalidError{fmt.Sprintf(format, a...)}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$`)

// ValidName reports whether name can name a lab. Names end up in namespace
// names ("<lab>.node1"), so no dots and a bounded length.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return invalidf("lab name %q: use 1-20 lowercase letters, digits or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// Overhead is the bytes the backend's encapsulation adds to each Pod packet.
func (b Backend) Overhead() int {
	if b == BackendVXLAN {
		return VXLANOverhead
	}
	return 0
}

// Parse completes c from the command line's spellings: the backend, the
// topology and the per-node MTU overrides (ParseNodeMTU). podsGiven says
// --pods-per-node was given, which a Kubernetes lab refuses.
func (c *Config) Parse(backend, topology, family string, overrides []string, podsGiven bool) error {
	var err error
	if c.IPFamily, err = ParseIPFamily(family); err != nil {
		return err
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes { // 0 would be taken as the default
		return invalidf("nodes %d: must be between 1 and %d", c.Nodes, MaxNodes)
	}
	if c.Backend, err = ParseBackend(backend); err != nil {
		return err
	}
	if c.Topology, err = ParseTopology(topology); err != nil {
		return err
	}
	if c.Kubernetes && podsGiven {
		return invalidf("--pods-per-node and --kubernetes: a Kubernetes lab's Pods are Kubernetes' own (kubectl run, the doctor's agents)")
	}
	c.NodeMTUs = map[string]NodeMTU{}
	for _, o := range overrides {
		if err := ParseNodeMTU(o, c.NodeMTUs); err != nil {
			return err
		}
	}
	return nil
}

// ParseBackend accepts the backend names of the CLI.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case BackendVXLAN, BackendBGP, BackendNone:
		return b, nil
	}
	return "", invalidf("backend %q: use vxlan, bgp or none", s)
}

// ParseIPFamily accepts --ip-family's values; the default, IPv4, is
// kept as the empty string (a lab's state file without the field).
func ParseIPFamily(s string) (string, error) {
	switch s {
	case "", FamilyIPv4:
		return "", nil
	case FamilyDual, FamilyIPv6:
		return s, nil
	}
	return "", invalidf("ip family %q: use ipv4, ipv6 or dual", s)
}

// Dual reports whether the lab is dual-stack.
func (c Config) Dual() bool { return c.IPFamily == FamilyDual }

// IPv6Only reports whether the lab's nodes and Pods have IPv6 addresses
// alone. Its IPv4 addresses are planned (faults and names refer to the
// nodes by them) but never given to an interface.
func (c Config) IPv6Only() bool { return c.IPFamily == FamilyIPv6 }

// HasIPv6 reports whether the lab's nodes and Pods have IPv6 addresses.
func (c Config) HasIPv6() bool { return c.Dual() || c.IPv6Only() }

// HasIPv4 reports whether the lab's nodes and Pods have IPv4 addresses.
func (c Config) HasIPv4() bool { return !c.IPv6Only() }

// Primary is the address an IPv6-only lab's agents are known by (a6),
// any other lab's (a4).
func (c Config) Primary(a4, a6 netip.Addr) netip.Addr {
	if c.IPv6Only() {
		return a6
	}
	return a4
}

// ParseTopology accepts the topology names of the CLI.
func ParseTopology(s string) (Topology, error) {
	switch t := Topology(s); t {
	case TopologyFlat, TopologyRouted:
		return t, nil
	}
	return "", invalidf("topology %q: use flat or routed", s)
}

func checkMTU(what string, v int) error {
	if v < MinMTU || v > MaxMTU {
		return invalidf("%s %d: must be between %d and %d", what, v, MinMTU, MaxMTU)
	}
	return nil
}

// withDefaults fills zero fields with the lab's defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.PodsPerNode == 0 {
		c.PodsPerNode = DefaultPodsPerNode
	}
	if c.Backend == "" {
		c.Backend = BackendVXLAN
	}
	if c.Topology == "" {
		c.Topology = TopologyFlat
	}
	if c.UnderlayMTU == 0 {
		c.UnderlayMTU = DefaultUnderlayMTU
	}
	if c.Kubernetes {
		c.PodsPerNode = 0 // the Pods are Kubernetes'
		if c.Calico == "" {
			c.Calico = CalicoKubespray
		}
	}
	return c
}

// NodeName is the name of the i-th node, counting from 1.
func NodeName(i int) string { return "node" + strconv.Itoa(i) }

// SpecOf validates c and lays out every address and name. It is pure.
func SpecOf(c Config) (Spec, error) {
	c = c.withDefaults()
	if err := ValidName(c.Name); err != nil {
		return Spec{}, err
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return Spec{}, invalidf("nodes %d: must be between 1 and %d", c.Nodes, MaxNodes)
	}
	if c.PodsPerNode < 0 || c.PodsPerNode > MaxPodsPerNode {
		return Spec{}, invalidf("pods per node %d: must be between 0 and %d", c.PodsPerNode, MaxPodsPerNode)
	}
	if _, err := ParseBackend(string(c.Backend)); err != nil {
		return Spec{}, err
	}
	if _, err := ParseTopology(string(c.Topology)); err != nil {
		return Spec{}, err
	}
	if c.Backend == BackendBGP && c.Topology == TopologyRouted {
		// Without encapsulation the router would need to learn the blocks; the lab's
		// router does not speak BGP, as a plain L3 hop in a real network would not.
		return Spec{}, invalidf("backend bgp needs --topology flat: the lab's router does not peer with the nodes (use vxlan across subnets)")
	}
	if err := checkMTU("underlay MTU", c.UnderlayMTU); err != nil {
		return Spec{}, err
	}
	if _, err := ParseIPFamily(c.IPFamily); err != nil {
		return Spec{}, err
	}
	if c.HasIPv6() && c.Kubernetes {
		return Spec{}, invalidf("ip family %s and --kubernetes: the Kubernetes lab is IPv4 only so far; use the namespace lab (without --kubernetes) for IPv6", c.IPFamily)
	}
	if c.IPv6Only() && c.Backend != BackendVXLAN {
		return Spec{}, invalidf("ip family ipv6 with backend %s: the IPv6-only lab has VXLAN only so far (use --backend vxlan, or --ip-family dual for BGP over IPv6)", c.Backend)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Pod MTU", c.PodMTU}, {"VXLAN MTU", c.VXLANMTU}} {
		if f.v != 0 {
			if err := checkMTU(f.name, f.v); err != nil {
				return Spec{}, err
			}
		}
	}
	if c.Kubernetes {
		if c.Agents {
			return Spec{}, invalidf("agents and kubernetes: in a Kubernetes lab the agents are Pods podpath deploys (run `kubectl podpath doctor`)")
		}
		if c.Calico != CalicoKubespray && c.Calico != CalicoManifest && c.Calico != CalicoOperator {
			return Spec{}, invalidf("calico install %q: use kubespray, manifest or operator", c.Calico)
		}
	} else if c.Calico != "" {
		return Spec{}, invalidf("calico install %q needs a Kubernetes lab (--kubernetes)", c.Calico)
	}
	if c.Controller != "" {
		if n, ok := nodeIndex(c.Controller); !ok || n > c.Nodes {
			return Spec{}, invalidf("controller %q: no such node (the lab has node1..node%d)", c.Controller, c.Nodes)
		}
	}
	for name, m := range c.NodeMTUs {
		if n, ok := nodeIndex(name); !ok || n > c.Nodes {
			return Spec{}, invalidf("MTU override for %q: no such node (the lab has node1..node%d)", name, c.Nodes)
		}
		for what, v := range map[string]int{"underlay MTU": m.Underlay, "Pod MTU": m.Pod, "VXLAN MTU": m.VXLAN} {
			if v != 0 {
				if err := checkMTU(name+" "+what, v); err != nil {
					return Spec{}, err
				}
			}
		}
	}

	s := Spec{Config: c, Fabric: c.Name + ".fabric"}
	if c.Kubernetes {
		s.ControlPlane = c.Name + ".cp"
	}
	s.Subnets = append(s.Subnets, Subnet{Bridge: "br-a",
		Prefix: netip.MustParsePrefix("198.18.0.0/16"), Gateway: netip.MustParseAddr("198.18.255.254")})
	if c.Topology == TopologyRouted {
		s.Subnets = append(s.Subnets, Subnet{Bridge: "br-b",
			Prefix: netip.MustParsePrefix("198.19.0.0/16"), Gateway: netip.MustParseAddr("198.19.255.254")})
	}
	if c.HasIPv6() {
		// Unique-local prefixes named after the IPv4 ones: nothing outside
		// the lab routes them.
		for i, p := range []string{"fd00:198:18::/64", "fd00:198:19::/64"}[:len(s.Subnets)] {
			s.Subnets[i].Prefix6 = netip.MustParsePrefix(p)
			s.Subnets[i].Gateway6 = addrAdd(s.Subnets[i].Prefix6.Addr(), 0xfffe)
		}
	}
	pool := netip.MustParsePrefix(PodCIDR)
	pool6 := netip.MustParsePrefix(PodCIDRv6)
	firstHalf := (c.Nodes + 1) / 2
	for i := 1; i <= c.Nodes; i++ {
		n := Node{Name: NodeName(i), FabricPort: "n" + strconv.Itoa(i)}
		n.Netns = c.Name + "." + n.Name
		if c.Topology == TopologyRouted && i > firstHalf {
			n.Subnet = 1
		}
		n.Address = addrAdd(s.Subnets[n.Subnet].Prefix.Addr(), i)
		n.Block = netip.PrefixFrom(addrAdd(pool.Addr(), (i-1)*64), BlockBits)
		n.VTEP = n.Block.Addr()
		n.VTEPMAC = fmt.Sprintf("66:70:70:00:%02x:%02x", i>>8, i&0xff)
		n.UnderlayMTU, n.PodMTU, n.VXLANMTU = c.UnderlayMTU, c.PodMTU, c.VXLANMTU
		if m, ok := c.NodeMTUs[n.Name]; ok {
			if m.Underlay != 0 {
				n.UnderlayMTU = m.Underlay
			}
			if m.Pod != 0 {
				n.PodMTU = m.Pod
			}
			if m.VXLAN != 0 {
				n.VXLANMTU = m.VXLAN
			}
		}
		podAuto := n.PodMTU == 0
		if podAuto {
			n.PodMTU = n.UnderlayMTU - c.Backend.Overhead()
		}
		if c.HasIPv6() {
			n.Address6 = addrAdd(s.Subnets[n.Subnet].Prefix6.Addr(), i)
			n.Block6 = netip.PrefixFrom(addrAdd(pool6.Addr(), (i-1)*64), BlockBitsV6)
			n.VTEP6 = n.Block6.Addr()
			n.VTEPMAC6 = fmt.Sprintf("66:70:76:00:%02x:%02x", i>>8, i&0xff)
			// As Felix: each tunnel's MTU from the underlay (or the one
			// set), the Pods' the smaller of the two.
			switch {
			case c.IPv6Only():
				// One tunnel, vxlan-v6.calico: the Pods' MTU from its
				// overhead, --vxlan-mtu its own.
				if podAuto {
					n.PodMTU = n.UnderlayMTU - VXLANOverheadV6
				}
				n.VXLANMTUV6 = n.PodMTU
				if n.VXLANMTU != 0 {
					n.VXLANMTUV6 = n.VXLANMTU
				}
				n.VXLANMTU = n.VXLANMTUV6
			case c.Backend == BackendVXLAN:
				n.VXLANMTUV6 = n.PodMTU
				if podAuto {
					n.VXLANMTUV6 = n.UnderlayMTU - VXLANOverheadV6
					if n.VXLANMTU == 0 {
						n.VXLANMTU = n.PodMTU
					}
					n.PodMTU = min(n.PodMTU, n.VXLANMTUV6)
				}
			}
		}
		if n.VXLANMTU == 0 {
			n.VXLANMTU = n.PodMTU
		}
		for k := 1; k <= c.PodsPerNode; k++ {
			p := Pod{Name: fmt.Sprintf("%s-pod%d", n.Name, k), Address: addrAdd(n.Block.Addr(), k)}
			if c.HasIPv6() {
				p.Address6 = addrAdd(n.Block6.Addr(), k)
			}
			p.Netns = c.Name + "." + p.Name
			p.HostIf = caliName(c.Name, p.Name)
			n.Pods = append(n.Pods, p)
		}
		s.Nodes = append(s.Nodes, n)
	}
	return s, nil
}

// caliName names the host side of a Pod veth as the Calico CNI plugin does:
// "cali" and 11 hex digits of a hash of the workload's identity.
func caliName(lab, pod string) string {
	sum := sha1.Sum([]byte(lab + "/" + pod))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	if a.Is6() {
		b := a.As16()
		carry := uint32(n)
		for i := 15; i >= 0 && carry > 0; i-- {
			v := uint32(b[i]) + carry
			b[i], carry = byte(v), v>>8
		}
		return netip.AddrFrom16(b)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func nodeIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "node")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 1 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

// Node returns the node called name.
func (s *Spec) Node(name string) (*Node, error) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], nil
		}
	}
	return nil, invalidf("no node %q in lab %s (it has node1..node%d)", name, s.Name, len(s.Nodes))
}

// NamespacePrefix is shared by all of a lab's namespaces and by no other lab's:
// lab names hold no dots.
func NamespacePrefix(lab string) string { return lab + "." }

// ParseNodeMTU reads a per-node override such as "node3:underlay=9000".
func ParseNodeMTU(s string, into map[string]NodeMTU) error {
	node, kv, ok := strings.Cut(s, ":")
	k, v, ok2 := strings.Cut(kv, "=")
	if !ok || !ok2 || node == "" {
		return invalidf("MTU override %q: use NODE:underlay=N, NODE:pod=N or NODE:vxlan=N", s)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return invalidf("MTU override %q: %q is not a number", s, v)
	}
	m := into[node]
	switch k {
	case "underlay":
		m.Underlay = n
	case "pod":
		m.Pod = n
	case "vxlan":
		m.VXLAN = n
	default:
		return invalidf("MTU override %q: unknown field %q (use underlay, pod or vxlan)", s, k)
	}
	into[node] = m
	return nil
}
