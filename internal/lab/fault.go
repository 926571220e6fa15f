package lab

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// FaultKind names a way the lab can be broken.
type FaultKind string

// The faults a running lab accepts. Each mirrors a way real Calico clusters break.
const (
	FaultUnderlayMTU    FaultKind = "underlay-mtu"     // <node>:<bytes>: fabric side of the node's link carries fewer bytes (silent L2 drop)
	FaultPodMTU         FaultKind = "pod-mtu"          // <bytes>: every Pod interface gets this MTU
	FaultBlockVXLAN     FaultKind = "block-vxlan"      // <node>: nftables drops UDP 4789 arriving at the node
	FaultBlockBGP       FaultKind = "block-bgp"        // <node>: nftables drops TCP 179 arriving at the node
	FaultBlockICMP      FaultKind = "block-icmp"       // <node>: nftables drops ICMP to, from and through the node
	FaultBIRDDown       FaultKind = "bird-down"        // <node>: BIRD stopped
	FaultRouteMissing   FaultKind = "route-missing"    // <node>:<block>: the route to a remote block deleted
	FaultIPForwardOff   FaultKind = "ip-forward-off"   // <node>: net.ipv4.ip_forward=0
	FaultIPv6ForwardOff FaultKind = "ipv6-forward-off" // <node>: net.ipv6.conf.all.forwarding=0 (dual-stack and IPv6-only labs): IPv4 forwards, IPv6 does not
	FaultRPFilterStrict FaultKind = "rp-filter-strict" // <node>: net.ipv4.conf.all.rp_filter=1
	FaultDelay          FaultKind = "delay"            // <node>:<ms>: packets leaving the node wait ms
	FaultLoss           FaultKind = "loss"             // <node>:<pct>: packets leaving the node dropped at random
	FaultNodeMTU        FaultKind = "node-mtu"         // <node>:<bytes>: the node's eth0 MTU (e.g. one node jumbo)
	FaultRate           FaultKind = "rate"             // <node>:<mbit>: packets leaving the node shaped to this rate (a slower NIC)

	// The router between the subnets (--topology routed), as routers behave.
	FaultRouterMTU          FaultKind = "router-mtu"            // <bytes>: it forwards at most this between the subnets: "fragmentation needed" for larger DF packets, the others fragmented
	FaultRouterNoFragNeeded FaultKind = "router-no-frag-needed" // it sends no "fragmentation needed": with router-mtu, larger DF packets vanish
	FaultRouterNoICMP       FaultKind = "router-no-icmp"        // it sends no ICMP error at all (fragmentation needed, time exceeded, unreachable)
	FaultDropFragments      FaultKind = "drop-fragments"        // the underlay drops every IP fragment (a firewall on the path that does)

	FaultForwardPolicyDrop FaultKind = "forward-policy-drop" // <node>: a Docker host's filter FORWARD chain: policy drop, accepting only docker0's traffic
	FaultVXLANPort         FaultKind = "vxlan-port"          // <node>:<port>: the node's vxlan.calico uses another UDP port
	FaultVXLANVNI          FaultKind = "vxlan-vni"           // <node>:<vni>: the node's vxlan.calico uses another VNI
	// A second NIC (eth1, 198.51.100.N/24) that Calico's address
	// auto-detection picked instead of eth0.
	FaultAsymmetricNIC FaultKind = "asymmetric-nic" // <node>: peers send VXLAN to its eth1, its routes back leave by eth0, and eth1's rp_filter is strict
	FaultBGPSecondNIC  FaultKind = "bgp-second-nic" // <node>: its BGP address is eth1's, on a network its peers cannot reach
	// A second NIC the node's traffic does not use (ens9, up, no route to
	// the other nodes) whose name matches Felix's mtuIfacePattern: Felix's
	// auto-detection takes the smallest matching MTU.
	FaultSecondNICMTU FaultKind = "second-nic-mtu" // <node>:<bytes>
	// The node's uplink a bridge, br0, over its NIC renamed em1 (a Dell
	// server's name under biosdevname), the node's addresses and routes on
	// br0: a host set up for VMs. mtuIfacePattern matches neither name, so
	// Felix's auto-detection falls back to 1460.
	FaultUplinkBridge FaultKind = "uplink-bridge" // <node>

	// Kubernetes labs (--kubernetes).
	FaultKubeProxyStopped FaultKind = "kube-proxy-stopped" // <node>: its kube-proxy stopped (SIGTERM), its rules left as they were
	// A node that came back without kube-proxy (rebooted: the kernel's
	// tables empty, kube-proxy's Pod not starting). Flushed with kube-proxy
	// running is no lasting fault: kube-proxy rewrites its rules at its
	// next sync.
	FaultKubeProxyFlushed FaultKind = "kube-proxy-flushed" // <node>: kube-proxy stopped and its nftables tables deleted
	// An operator's firewall rule on the node that drops DNS over UDP
	// towards its Pods (a CoreDNS replica there stops answering most
	// clients, which retry over TCP only when told the answer was cut).
	FaultDNSUDPDropped FaultKind = "dns-udp-dropped" // <node>: nftables drops UDP to port 53 forwarded into the node's Pod veths; TCP 53 passes
)

// faultArgs says what follows "kind=" for each kind.
var faultArgs = map[FaultKind]string{
	FaultUnderlayMTU:    "<node>:<bytes>",
	FaultPodMTU:         "<bytes>",
	FaultBlockVXLAN:     "<node>",
	FaultBlockBGP:       "<node>",
	FaultBlockICMP:      "<node>",
	FaultBIRDDown:       "<node>",
	FaultRouteMissing:   "<node>:<block CIDR>",
	FaultIPForwardOff:   "<node>",
	FaultIPv6ForwardOff: "<node>",
	FaultRPFilterStrict: "<node>",
	FaultDelay:          "<node>:<ms>",
	FaultLoss:           "<node>:<pct>",
	FaultNodeMTU:        "<node>:<bytes>",
	FaultRate:           "<node>:<mbit>",

	FaultRouterMTU:          "<bytes>",
	FaultRouterNoFragNeeded: "",
	FaultRouterNoICMP:       "",
	FaultDropFragments:      "",
	FaultForwardPolicyDrop:  "<node>",
	FaultVXLANPort:          "<node>:<port>",
	FaultVXLANVNI:           "<node>:<vni>",
	FaultAsymmetricNIC:      "<node>",
	FaultBGPSecondNIC:       "<node>",
	FaultSecondNICMTU:       "<node>:<bytes>",
	FaultUplinkBridge:       "<node>",
	FaultKubeProxyStopped:   "<node>",
	FaultKubeProxyFlushed:   "<node>",
	FaultDNSUDPDropped:      "<node>",
}

// FaultUsage lists every fault with its argument, for --help.
func FaultUsage() string {
	var kinds []string
	for k := range faultArgs {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		if form := faultArgs[FaultKind(k)]; form != "" {
			fmt.Fprintf(&b, "  %s=%s\n", k, form)
		} else {
			fmt.Fprintf(&b, "  %s\n", k)
		}
	}
	return b.String()
}

// Fault is one injected fault.
type Fault struct {
	Kind  FaultKind    `json:"kind"`
	Node  string       `json:"node,omitempty"`
	Value int          `json:"value,omitempty"` // bytes, ms or percent
	Block netip.Prefix `json:"block,omitzero"`
}

// String renders the fault as it is typed on the command line.
func (f Fault) String() string {
	switch faultArgs[f.Kind] {
	case "":
		return string(f.Kind)
	case "<bytes>":
		return fmt.Sprintf("%s=%d", f.Kind, f.Value)
	case "<node>":
		return fmt.Sprintf("%s=%s", f.Kind, f.Node)
	case "<node>:<block CIDR>":
		return fmt.Sprintf("%s=%s:%s", f.Kind, f.Node, f.Block)
	}
	return fmt.Sprintf("%s=%s:%d", f.Kind, f.Node, f.Value)
}

// Key identifies what a fault breaks: adding a fault with the same key
// replaces the old one (underlay-mtu=node3:1400 then :1300 leaves one fault).
func (f Fault) Key() string {
	k := string(f.Kind) + "=" + f.Node
	if f.Block.IsValid() {
		k += ":" + f.Block.String()
	}
	return k
}

// ParseFaults parses each of args with ParseFault.
func ParseFaults(args []string) ([]Fault, error) {
	var out []Fault
	for _, a := range args {
		f, err := ParseFault(a)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseFault reads "kind=args" as typed on the command line. It checks the
// syntax and ranges; Spec.CheckFault checks it against a lab.
func ParseFault(s string) (Fault, error) {
	kind, args, ok := strings.Cut(s, "=")
	form, known := faultArgs[FaultKind(kind)]
	if !known {
		return Fault{}, invalidf("unknown fault %q: known faults are %s", kind, strings.Join(faultNames(), ", "))
	}
	f := Fault{Kind: FaultKind(kind)}
	bad := func(why string) (Fault, error) {
		return Fault{}, invalidf("fault %q: %s (write %s=%s)", s, why, kind, form)
	}
	if form == "" {
		if ok {
			return bad("takes no argument")
		}
		return f, nil
	}
	if !ok || args == "" {
		return bad("missing argument")
	}
	number := func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	switch form {
	case "<bytes>":
		n, ok := number(args)
		if !ok {
			return bad(fmt.Sprintf("%q is not a number", args))
		}
		f.Value = n
	case "<node>":
		if strings.Contains(args, ":") {
			return bad("takes only a node name")
		}
		f.Node = args
	default:
		node, v, ok := strings.Cut(args, ":")
		if !ok || node == "" || v == "" {
			return bad("missing node or value")
		}
		f.Node = node
		if form == "<node>:<block CIDR>" {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return bad(fmt.Sprintf("%q is not a CIDR (a node's block, IPv4 or IPv6)", v))
			}
			f.Block = p.Masked()
			break
		}
		n, ok := number(v)
		if !ok {
			return bad(fmt.Sprintf("%q is not a number", v))
		}
		f.Value = n
	}
	switch f.Kind {
	case FaultUnderlayMTU, FaultPodMTU, FaultNodeMTU, FaultRouterMTU, FaultSecondNICMTU:
		if err := checkMTU(kind, f.Value); err != nil {
			return Fault{}, err
		}
	case FaultVXLANPort:
		if f.Value < 1 || f.Value > 65535 {
			return bad(fmt.Sprintf("port %d must be between 1 and 65535", f.Value))
		}
	case FaultVXLANVNI:
		if f.Value < 1 || f.Value > 1<<24-1 {
			return bad(fmt.Sprintf("VNI %d must be between 1 and %d", f.Value, 1<<24-1))
		}
	case FaultDelay:
		if f.Value < 1 || f.Value > 10000 {
			return bad(fmt.Sprintf("delay %d ms must be between 1 and 10000", f.Value))
		}
	case FaultRate:
		if f.Value < 1 || f.Value > 100000 {
			return bad(fmt.Sprintf("rate %d Mbit/s must be between 1 and 100000", f.Value))
		}
	case FaultLoss:
		if f.Value < 1 || f.Value > 100 {
			return bad(fmt.Sprintf("loss %d%% must be between 1 and 100", f.Value))
		}
	}
	return f, nil
}

func faultNames() []string {
	var out []string
	for k := range faultArgs {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

// ipv6OnlyFaults are the faults an IPv6-only lab takes: those that act
// on IPv6 as on IPv4 (MTUs, VXLAN's port, the wire, the shaper, a random
// drop), IPv6's own (ipv6-forward-off, an IPv6 block's route), and
// IPv4's sysctls, which must change nothing there (a healthy variant).
// The rest act on IPv4 alone or would need IPv6 rules of their own
// (ICMPv6 carries neighbour discovery: blocking it is another fault).
var ipv6OnlyFaults = map[FaultKind]bool{
	FaultUnderlayMTU: true, FaultPodMTU: true, FaultNodeMTU: true, FaultBlockVXLAN: true,
	FaultIPv6ForwardOff: true, FaultIPForwardOff: true, FaultRPFilterStrict: true, FaultRouteMissing: true,
	FaultDelay: true, FaultLoss: true, FaultRate: true, FaultRouterMTU: true,
}

func ipv6OnlyFaultNames() []string {
	var out []string
	for k := range ipv6OnlyFaults {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

// CheckFault checks that f makes sense on this lab: the node exists, the
// block is one the node routes, BIRD runs where it is to be stopped, a
// router is there to misbehave.
func (s *Spec) CheckFault(f Fault) error {
	if s.IPv6Only() && !ipv6OnlyFaults[f.Kind] {
		return invalidf("fault %s: not built for an IPv6-only lab yet (there: %s)", f, strings.Join(ipv6OnlyFaultNames(), ", "))
	}
	switch f.Kind {
	case FaultRouterMTU, FaultRouterNoFragNeeded, FaultRouterNoICMP:
		if s.Topology != TopologyRouted {
			return invalidf("fault %s: lab %s has a flat underlay with no router (use --topology routed)", f, s.Name)
		}
	case FaultVXLANPort, FaultVXLANVNI, FaultAsymmetricNIC, FaultUplinkBridge:
		if s.Backend != BackendVXLAN {
			return invalidf("fault %s: lab %s runs backend %s, which has no VXLAN (use --backend vxlan)", f, s.Name, s.Backend)
		}
	case FaultBGPSecondNIC:
		if s.Backend != BackendBGP {
			return invalidf("fault %s: lab %s runs backend %s, which has no BGP (use --backend bgp)", f, s.Name, s.Backend)
		}
	case FaultKubeProxyStopped, FaultKubeProxyFlushed:
		if !s.Kubernetes {
			return invalidf("fault %s: lab %s runs no kube-proxy (build it with --kubernetes)", f, s.Name)
		}
	case FaultIPv6ForwardOff:
		if !s.HasIPv6() {
			return invalidf("fault %s: lab %s is IPv4 only (build it with --ip-family dual or ipv6)", f, s.Name)
		}
	case FaultDNSUDPDropped:
		if !s.Kubernetes {
			return invalidf("fault %s: lab %s has no cluster DNS (build it with --kubernetes)", f, s.Name)
		}
	}
	if f.Node == "" {
		return nil
	}
	n, err := s.Node(f.Node)
	if err != nil {
		return err
	}
	switch f.Kind {
	case FaultBIRDDown, FaultBlockBGP:
		if s.Backend != BackendBGP {
			return invalidf("fault %s: lab %s runs backend %s, which has no BGP (use --backend bgp)", f, s.Name, s.Backend)
		}
	case FaultRouteMissing:
		if s.Backend == BackendNone {
			return invalidf("fault %s: backend none has no routes between nodes", f)
		}
		for _, o := range s.Nodes {
			if o.Name != n.Name && (o.Block == f.Block && s.HasIPv4() || o.Block6.IsValid() && o.Block6 == f.Block && s.Backend == BackendVXLAN) {
				return nil
			}
		}
		if s.IPv6Only() {
			return invalidf("fault %s: %s has no route to %s (remote blocks are the other nodes' IPv6 /122 blocks, e.g. %s)",
				f, n.Name, f.Block, s.Nodes[(nodeIdx(s, n.Name)+1)%len(s.Nodes)].Block6)
		}
		return invalidf("fault %s: %s has no route to %s (remote blocks are the other nodes' /26 blocks, e.g. %s)",
			f, n.Name, f.Block, s.Nodes[(nodeIdx(s, n.Name)+1)%len(s.Nodes)].Block)
	}
	return nil
}

func nodeIdx(s *Spec, name string) int {
	for i, n := range s.Nodes {
		if n.Name == name {
			return i
		}
	}
	return 0
}
