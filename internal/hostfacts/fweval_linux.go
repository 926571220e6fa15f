package hostfacts

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// The firewall as the kernel applies it: for each kind of traffic Calico
// needs, a packet that stands for it is walked through every base chain on
// its hooks, in priority order, following jumps, gotos and returns, up to
// an accept, a drop, or the chain's policy. A packet must get through every
// base chain of a hook: an accept ends only its own chain.
//
// What the packet carries is what this node knows: the interfaces it
// arrives on and leaves by, the node's own address and a local Pod's, its
// connection-tracking state (a first packet is new, an answer established,
// an ICMP error related) and its mark (0, until a rule sets it). The far
// end's address is any peer's and stays unknown. A test on anything
// unknown makes what follows conditional: a drop reached past such a test
// is reported as conditional, and an accept behind one does not stop the
// walk but makes every later drop conditional.

// Bounds of a walk: nftables itself refuses jumps more than 16 deep, and
// no real ruleset needs more steps than this to judge one packet.
const (
	maxJumpDepth = 16
	maxWalkSteps = 20000
)

// chainRef names a chain.
type chainRef struct {
	family      nftables.TableFamily
	table, name string
}

// fwChain is one chain and its rules, parsed.
type fwChain struct {
	ref    chainRef
	hook   string // "" for a regular chain
	prio   int32
	policy string // base chains: accept or drop
	rules  []fwRule
}

type fwRule struct {
	parsedRule
	handle uint64
}

// ruleset is every chain the walk may meet, with the sets they look up.
type ruleset struct {
	chains map[chainRef]*fwChain
	sets   map[string]map[string]*nftSet // by family/table
}

func tableKey(r chainRef) string { return familyName(r.family) + "/" + r.table }

// add puts a chain into the ruleset.
func (rs *ruleset) add(c *fwChain) {
	if rs.chains == nil {
		rs.chains = map[chainRef]*fwChain{}
	}
	rs.chains[c.ref] = c
}

// A stage is one hook of one layer of the stack a packet passes: the
// netdev layer on a device (ingress, egress), the bridge layer when the
// node's underlay is a bridge, the IP layer (ip, ip6, inet families and
// legacy iptables).
type stage struct {
	layer    string // "netdev", "bridge" or "ip"
	hook     string
	iif, oif string // the packet's interfaces at this layer, when not the IP layer's
}

// chainLayer is the layer a chain's family belongs to.
func chainLayer(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	}
	return "ip"
}

// baseChains are the base chains of a stage that see packets of nfproto,
// in the order the kernel runs them.
func (rs *ruleset) baseChains(st stage, nfproto byte) []*fwChain {
	var out []*fwChain
	for _, c := range rs.chains {
		if c.hook == st.hook && chainLayer(c.ref.family) == st.layer && familyCarries(c.ref.family, nfproto) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].prio != out[j].prio {
			return out[i].prio < out[j].prio
		}
		return tableKey(out[i].ref)+out[i].ref.name < tableKey(out[j].ref)+out[j].ref.name
	})
	return out
}

// how a walk through a chain ended.
type ending int

const (
	fellThrough ending = iota // the end of the chain, or a return
	accepted
	dropped
)

type walk struct {
	rs    *ruleset
	pkt   packet
	steps int
	maybe *FirewallDrop // the first drop met past a test that could not be evaluated
}

// run walks c. past: the walk came here past a test it could not evaluate,
// so whatever happens here happens only perhaps; passed reports that the
// walk went on past such a test in c, or in a chain it called.
// mayAccept reports an accept met behind such a test. A base chain's
// policy is its caller's to apply (verdict), after a fall-through or a
// return alike.
func (w *walk) run(c *fwChain, depth int, past bool) (end ending, drop *FirewallDrop, passed, mayAccept bool) {
	sets := w.rs.sets[tableKey(c.ref)]
	for i := range c.rules {
		r := &c.rules[i]
		if w.steps++; w.steps > maxWalkSteps {
			return fellThrough, nil, true, true // not walked to the end: nothing after this is certain
		}
		match, unsure := r.matches(w.pkt, sets)
		if !match {
			continue
		}
		cond := past || unsure
		if r.setsMark {
			w.pkt.mark = nil
		}
		switch r.verdict {
		case "drop", "reject":
			d := w.dropBy(c, r, cond)
			if !unsure {
				return dropped, d, past, mayAccept
			}
			w.note(d) // it may drop: remembered, and the walk goes on as if it did not
		case "accept":
			if !unsure {
				return accepted, nil, past, mayAccept
			}
			mayAccept, past = true, true
		case "return":
			if !unsure {
				return fellThrough, nil, past, mayAccept
			}
			past = true
		case "jump", "goto":
			t := w.rs.chains[chainRef{c.ref.family, c.ref.table, r.target}]
			if t == nil || depth >= maxJumpDepth {
				past = true
				continue
			}
			end, d, p, acc := w.run(t, depth+1, cond)
			past = past || p || unsure
			mayAccept = mayAccept || acc
			switch {
			case end == dropped && !unsure:
				return dropped, d, past, mayAccept
			case end == dropped:
				w.note(d)
			case end == accepted && !unsure:
				return accepted, nil, past, mayAccept
			case end == accepted:
				mayAccept = true
			case r.verdict == "goto" && !unsure:
				return fellThrough, nil, past, mayAccept
			}
		}
	}
	return fellThrough, nil, past, mayAccept
}

func (w *walk) note(d *FirewallDrop) {
	if w.maybe == nil {
		w.maybe = d
	}
}

func (w *walk) dropBy(c *fwChain, r *fwRule, cond bool) *FirewallDrop {
	return &FirewallDrop{Family: familyName(c.ref.family), Table: c.ref.table, Chain: c.ref.name, Hook: c.hook,
		Handle: r.handle, Rule: r.describe(c.ref.family, w.rs.sets[tableKey(c.ref)]), Conditional: cond}
}

// verdict walks pkt through every base chain of a stage: the drop that
// stops it, or nil when it gets through. A drop that is certain wins over
// one that is only possible. A netdev chain is bound to a device this
// reader is not told (the library does not decode it), so what it drops it
// drops only perhaps.
func (rs *ruleset) verdict(pkt packet, st stage) *FirewallDrop {
	if st.iif != "" {
		pkt.iif = st.iif
	}
	if st.oif != "" {
		pkt.oif = st.oif
	}
	w := &walk{rs: rs, pkt: pkt}
	for _, c := range rs.baseChains(st, pkt.nfproto) {
		end, d, past, _ := w.run(c, 0, st.layer == "netdev")
		if end == fellThrough && c.policy == "drop" {
			end, d = dropped, &FirewallDrop{Family: familyName(c.ref.family), Table: c.ref.table, Chain: c.ref.name, Hook: c.hook,
				Rule: "policy drop", Policy: true, Conditional: past || st.layer == "netdev"}
		}
		if end != dropped {
			continue
		}
		if !d.Conditional {
			return d
		}
		w.note(d)
	}
	return w.maybe
}

// hostView is what the walk's packets are made of: this node's side of
// its traffic.
type hostView struct {
	underlay  string     // the link peers' encapsulated and BGP traffic arrives on
	node      netip.Addr // the node's address on it
	tunnel    string     // the encapsulation's device (vxlan.calico, tunl0, wireguard.cali); "" without
	vxlanPort int
	workload  string     // one of its Pods' cali* links; "" without Pods
	pod       netip.Addr // that Pod's address
	// ipv6: the node has IPv6 to lose (a global address on its underlay, or
	// Calico's IPv6 VXLAN device): only then is its IPv6 traffic judged.
	ipv6 bool
	// port: when the underlay is a bridge, the one interface enslaved to it
	// (the NIC the traffic really arrives on); "" when it is not a bridge,
	// or has several.
	bridged bool
	port    string
	// agentPort: podpath's agent's port here; 0 when not known.
	agentPort int
}

// viewOf reads the view from the node's links and routes.
func viewOf(links []Link, routes []Route) hostView {
	v := hostView{vxlanPort: 4789}
	byName := map[string]*Link{}
	for i := range links {
		byName[links[i].Name] = &links[i]
	}
	for _, name := range []string{"vxlan.calico", "tunl0", "wireguard.cali"} {
		if l := byName[name]; l != nil {
			v.tunnel = name
			if l.VXLAN != nil {
				v.vxlanPort = l.VXLAN.Port
				if a, err := netip.ParseAddr(l.VXLAN.Local); err == nil {
					v.node = a
				}
				v.underlay = l.VXLAN.Dev
			}
			break
		}
	}
	holder := func(a netip.Addr) string {
		for _, l := range links {
			for _, c := range l.Addresses {
				if p, err := netip.ParsePrefix(c); err == nil && p.Addr() == a {
					return l.Name
				}
			}
		}
		return ""
	}
	if v.underlay == "" && v.node.IsValid() {
		v.underlay = holder(v.node)
	}
	// An IPv6-only node: its VXLAN device, vxlan-v6.calico, names the
	// underlay its peers' IPv6 VXLAN arrives on.
	if l := byName["vxlan-v6.calico"]; v.underlay == "" && l != nil && l.VXLAN != nil {
		v.underlay = l.VXLAN.Dev
		if a, err := netip.ParseAddr(l.VXLAN.Local); v.underlay == "" && err == nil {
			v.underlay = holder(a)
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, r := range routes {
			if v.underlay == "" && r.Family == fam && r.Dst == "default" && r.Dev != "" {
				v.underlay = r.Dev
			}
		}
	}
	for _, r := range routes {
		if v.workload == "" && r.Family == "ipv4" && strings.HasPrefix(r.Dev, "cali") && strings.HasSuffix(r.Dst, "/32") {
			if p, err := netip.ParsePrefix(r.Dst); err == nil {
				v.workload, v.pod = r.Dev, p.Addr()
			}
		}
	}
	if l := byName[v.underlay]; l != nil {
		for _, c := range l.Addresses {
			p, err := netip.ParsePrefix(c)
			switch {
			case err != nil:
			case p.Addr().Is4() && !v.node.IsValid():
				v.node = p.Addr()
			case p.Addr().Is6() && p.Addr().IsGlobalUnicast():
				v.ipv6 = true
			}
		}
	}
	v.ipv6 = v.ipv6 || byName["vxlan-v6.calico"] != nil
	if l := byName[v.underlay]; l != nil && l.Type == "bridge" {
		v.bridged = true
		var ports []string
		for _, p := range links {
			if p.Master == l.Name {
				ports = append(ports, p.Name)
			}
		}
		if len(ports) == 1 {
			v.port = ports[0]
		}
	}
	return v
}

// flow is one packet of a Need's traffic and which way it goes.
type flow struct {
	need string
	what string // which way it goes, for the evidence
	pkt  packet
	way  direction
}

type direction int

const (
	inbound  direction = iota // to the node itself
	outbound                  // from the node itself
	forward                   // through the node (Pod traffic)
)

// stages are the hooks a packet going way meets, in order: the device's
// netdev ingress, the bridge's hooks when the underlay is a bridge, the IP
// layer's, and the device's egress.
func (v hostView) stages(way direction, pkt packet) []stage {
	phys := func(dev string) string { // the NIC below a bridged underlay
		if dev == v.underlay && v.bridged {
			return v.port
		}
		return dev
	}
	var out []stage
	if way != outbound {
		out = append(out, stage{layer: "netdev", hook: "ingress", iif: phys(pkt.iif)})
		if way == inbound && v.bridged {
			out = append(out, stage{layer: "bridge", hook: "prerouting", iif: v.port}, stage{layer: "bridge", hook: "input", iif: v.port})
		}
	}
	switch way {
	case inbound:
		out = append(out, stage{layer: "ip", hook: "prerouting"}, stage{layer: "ip", hook: "input"})
	case outbound:
		out = append(out, stage{layer: "ip", hook: "output"}, stage{layer: "ip", hook: "postrouting"})
	case forward:
		out = append(out, stage{layer: "ip", hook: "prerouting"}, stage{layer: "ip", hook: "forward"}, stage{layer: "ip", hook: "postrouting"})
	}
	if way != inbound {
		if way == outbound && v.bridged {
			out = append(out, stage{layer: "bridge", hook: "output", oif: v.port}, stage{layer: "bridge", hook: "postrouting", oif: v.port})
		}
		out = append(out, stage{layer: "netdev", hook: "egress", oif: phys(pkt.oif)})
	}
	return out
}

// flows are the packets that stand for what Calico needs this node to
// pass, in the order of the Need constants.
func (v hostView) flows() []flow {
	zero := uint32(0)
	in := func(p packet, ct uint32) packet {
		p.iif, p.daddr, p.ctState, p.mark = v.underlay, v.node, ct, &zero
		return p
	}
	out := func(p packet, ct uint32) packet {
		p.oif, p.saddr, p.ctState, p.mark = v.underlay, v.node, ct, &zero
		return p
	}
	v6 := func(p packet, ct uint32) packet { // the node's IPv6 side is not modelled: interfaces only
		p.iif, p.ctState, p.mark = v.underlay, ct, &zero
		return p
	}
	vx := uint16(v.vxlanPort)
	fs := []flow{
		{NeedVXLAN, "arriving", in(udp(unix.NFPROTO_IPV4, ephemeralPort, vx), ctNew), inbound},
		{NeedVXLAN, "leaving", out(udp(unix.NFPROTO_IPV4, ephemeralPort, vx), ctNew), outbound},
		{NeedBGP, "sessions opened to it", in(tcp(unix.NFPROTO_IPV4, ephemeralPort, 179), ctNew), inbound},
		{NeedBGP, "answers to its own sessions", in(tcpAnswer(tcp(unix.NFPROTO_IPV4, 179, ephemeralPort)), ctEstablished), inbound},
		{NeedBGP, "its own sessions", out(tcp(unix.NFPROTO_IPV4, ephemeralPort, 179), ctNew), outbound},
		{NeedIPIP, "arriving", in(ipipPacket, ctNew), inbound},
		{NeedIPIP, "leaving", out(ipipPacket, ctNew), outbound},
		{NeedICMPFragNeeded, "to the node", in(icmp4(3, 4), ctRelated), inbound},
		{NeedICMPFragNeeded, "sent by the node", out(icmp4(3, 4), ctRelated), outbound},
		{NeedICMP, "echo requests to the node", in(icmp4(8, 0), ctNew), inbound},
		{NeedICMP, "echo replies to the node", in(icmp4(0, 0), ctEstablished), inbound},
		{NeedICMP, "echo replies from the node", out(icmp4(0, 0), ctEstablished), outbound},
		{NeedWireGuard, "arriving", in(udp(unix.NFPROTO_IPV4, 51820, 51820), ctNew), inbound},
	}
	if ap := uint16(v.agentPort); ap != 0 {
		fs = append(fs,
			flow{NeedAgent, "UDP probes to the agent", in(udp(unix.NFPROTO_IPV4, ephemeralPort, ap), ctNew), inbound},
			flow{NeedAgent, "TCP to the agent", in(tcp(unix.NFPROTO_IPV4, ephemeralPort, ap), ctNew), inbound},
		)
	}
	if v.ipv6 {
		fs = append(fs,
			flow{NeedVXLAN, "arriving over IPv6", v6(udp(unix.NFPROTO_IPV6, ephemeralPort, vx), ctNew), inbound},
			flow{NeedBGP, "over IPv6", v6(tcp(unix.NFPROTO_IPV6, ephemeralPort, 179), ctNew), inbound},
			flow{NeedICMPFragNeeded, "over IPv6", v6(icmp6(2, 0), ctRelated), inbound},
			flow{NeedICMP, "over IPv6", v6(icmp6(128, 0), ctNew), inbound},
			flow{NeedWireGuard, "over IPv6", v6(udp(unix.NFPROTO_IPV6, 51821, 51821), ctNew), inbound},
		)
	}
	if v.workload == "" {
		return fs
	}
	// Pod traffic, both ways through the node: from the tunnel (or, with BGP,
	// the underlay) to the Pod's cali* link, and back.
	outer := v.tunnel
	if outer == "" {
		outer = v.underlay
	}
	toPod := func(p packet, ct uint32) packet {
		p.iif, p.oif, p.daddr, p.ctState, p.mark = outer, v.workload, v.pod, ct, &zero
		return p
	}
	fromPod := func(p packet, ct uint32) packet {
		p.iif, p.oif, p.saddr, p.ctState, p.mark = v.workload, outer, v.pod, ct, &zero
		return p
	}
	return append(fs,
		flow{NeedICMPFragNeeded, "on the way to its Pods", toPod(icmp4(3, 4), ctRelated), forward},
		flow{NeedICMP, "echo requests to its Pods", toPod(icmp4(8, 0), ctNew), forward},
		flow{NeedPodTraffic, "new TCP connections to its Pods", toPod(tcp(unix.NFPROTO_IPV4, ephemeralPort, appPort), ctNew), forward},
		flow{NeedPodTraffic, "UDP to its Pods", toPod(udp(unix.NFPROTO_IPV4, ephemeralPort, appPort), ctNew), forward},
		flow{NeedPodTraffic, "new TCP connections from its Pods", fromPod(tcp(unix.NFPROTO_IPV4, ephemeralPort, appPort), ctNew), forward},
		flow{NeedPodTraffic, "UDP from its Pods", fromPod(udp(unix.NFPROTO_IPV4, ephemeralPort, appPort), ctNew), forward},
		flow{NeedDNS, "UDP 53 to its Pods", toPod(udp(unix.NFPROTO_IPV4, ephemeralPort, 53), ctNew), forward},
		flow{NeedDNS, "TCP 53 to its Pods", toPod(tcp(unix.NFPROTO_IPV4, ephemeralPort, 53), ctNew), forward},
		flow{NeedDNS, "UDP 53 from its Pods", fromPod(udp(unix.NFPROTO_IPV4, ephemeralPort, 53), ctNew), forward},
		flow{NeedDNS, "TCP 53 from its Pods", fromPod(tcp(unix.NFPROTO_IPV4, ephemeralPort, 53), ctNew), forward},
	)
}

// appPort stands for the port of an application in a Pod that no rule
// names on its own: a rule that stops it stops Pod traffic as such (a
// policy, a catch-all), where one naming a service's port (DNS's 53, a web
// server's 80) stops that service: its own checks say so.
const appPort = 40000

func familyCarries(f nftables.TableFamily, nfproto byte) bool {
	switch f {
	case nftables.TableFamilyIPv4, legacyFamily:
		return nfproto == unix.NFPROTO_IPV4
	case nftables.TableFamilyIPv6:
		return nfproto == unix.NFPROTO_IPV6
	}
	return true // inet, bridge and netdev see both
}

// drops walks every flow through rs and lists what drops them: one entry
// per rule or policy, with the Needs it stops for certain and those it may
// stop (past a test podpath could not evaluate).
func (rs *ruleset) drops(v hostView) []FirewallDrop {
	var out []FirewallDrop
	at := map[string]int{}
	for _, f := range v.flows() {
		for _, st := range v.stages(f.way, f.pkt) {
			d := rs.verdict(f.pkt, st)
			if d == nil {
				continue
			}
			key := fmt.Sprintf("%s/%s/%s/%d/%v", d.Family, d.Table, d.Chain, d.Handle, d.Policy)
			i, seen := at[key]
			if !seen {
				i = len(out)
				at[key] = i
				out = append(out, *d)
				out[i].Conditional = true
			}
			e := &out[i]
			e.Conditional = e.Conditional && d.Conditional
			if !d.Conditional {
				if !slices.Contains(e.Needs, f.need) {
					e.Needs = append(e.Needs, f.need)
				}
				e.Possible = slices.DeleteFunc(e.Possible, func(n string) bool { return n == f.need })
			} else if !slices.Contains(e.Needs, f.need) && !slices.Contains(e.Possible, f.need) {
				e.Possible = append(e.Possible, f.need)
			}
			w := f.need + ": " + f.what
			if d.Conditional {
				w += " (perhaps)"
			}
			if !slices.Contains(e.Traffic, w) {
				e.Traffic = append(e.Traffic, w)
			}
			break // the first hook that stops it is where it stops
		}
	}
	return out
}

// xtMatch reads the x_tables matches iptables-nft leaves in rules: a
// comment always matches; conntrack and state test the connection's state,
// mark the packet's mark, tcp, udp and multiport its ports. Others are not
// evaluated.
func xtMatch(m *expr.Match) cond {
	opaque := cond{kind: condOpaque, text: "xt match " + m.Name}
	switch info := m.Info.(type) {
	case *xt.Comment:
		return cond{kind: condTrue, text: fmt.Sprintf("comment %q", string(*info))}
	case *xt.ConntrackMtinfo1:
		return ctMatch(info.ConntrackMtinfoBase, uint32(info.StateMask))
	case *xt.ConntrackMtinfo2:
		return ctMatch(info.ConntrackMtinfoBase, uint32(info.StateMask))
	case *xt.ConntrackMtinfo3:
		return ctMatch(info.ConntrackMtinfoBase, uint32(info.StateMask))
	case *xt.Tcp:
		if info.Option != 0 || info.FlagsMask != 0 {
			return cond{kind: condOpaque, text: "xt match tcp flags"}
		}
		return portsMatch(info.SrcPorts, info.DstPorts, info.InvFlags&xt.TcpInvSrcPorts != 0, info.InvFlags&xt.TcpInvDestPorts != 0)
	case *xt.Udp:
		return portsMatch(info.SrcPorts, info.DstPorts, info.InvFlags&xt.UdpInvSrcPorts != 0, info.InvFlags&xt.UdpInvDestPorts != 0)
	case *xt.Unknown:
		return rawMatch(m.Name, m.Rev, []byte(*info), opaque)
	}
	return opaque
}

// ctMatch: only a test of the state is evaluated.
func ctMatch(b xt.ConntrackMtinfoBase, mask uint32) cond {
	if xt.ConntrackFlags(b.MatchFlags)&^(xt.ConntrackState|xt.ConntrackStateAlias) != 0 {
		return cond{kind: condOpaque, text: "xt match conntrack"} // origin, reply, status or expiry tests
	}
	neg := xt.ConntrackFlags(b.InvertFlags)&xt.ConntrackState != 0
	text := "ct state " + ctStateText(mask)
	if neg {
		text = "ct state != " + ctStateText(mask)
	}
	return cond{kind: condCtState, mask: mask, neg: neg, text: text}
}

// portsMatch is x_tables' tcp or udp match: both port ranges must hold.
// Each is one condPorts; the second is folded in as a further range test.
func portsMatch(src, dst [2]uint16, negSrc, negDst bool) cond {
	full := [2]uint16{0, 0xffff}
	text := func(what string, r [2]uint16, neg bool) string {
		if neg {
			what += " !="
		}
		if r[0] == r[1] {
			return fmt.Sprintf("%s %d", what, r[0])
		}
		return fmt.Sprintf("%s %d-%d", what, r[0], r[1])
	}
	switch {
	case src != full && dst != full:
		return cond{kind: condOpaque, text: "xt match ports"} // both: rare, not worth a second condition
	case src != full:
		return cond{kind: condPorts, portOf: 0, ports: []portRange{{src[0], src[1]}}, neg: negSrc, text: text("sport", src, negSrc)}
	case dst != full:
		return cond{kind: condPorts, portOf: 1, ports: []portRange{{dst[0], dst[1]}}, neg: negDst, text: text("dport", dst, negDst)}
	}
	return cond{kind: condTrue, text: ""}
}

// rawMatch reads the matches the library leaves as bytes.
func rawMatch(name string, rev uint32, b []byte, opaque cond) cond {
	u16 := func(off int) uint16 { return binary.NativeEndian.Uint16(b[off:]) }
	switch name {
	case "state": // struct xt_state_info { unsigned int statemask; }
		if len(b) < 4 {
			return opaque
		}
		mask := binary.NativeEndian.Uint32(b)
		return cond{kind: condCtState, mask: mask, text: "ct state " + ctStateText(mask)}
	case "mark": // struct xt_mark_mtinfo1 { u32 mark, mask; u8 invert; }
		if rev != 1 || len(b) < 9 {
			return opaque
		}
		c := cond{kind: condMark, value: binary.NativeEndian.Uint32(b), mask: binary.NativeEndian.Uint32(b[4:]), neg: b[8] != 0}
		c.text = fmt.Sprintf("mark 0x%x/0x%x", c.value, c.mask)
		if c.neg {
			c.text = "mark != " + c.text[5:]
		}
		return c
	case "multiport":
		// struct xt_multiport_v1 { u8 flags, count; u16 ports[15]; u8 pflags[15]; u8 invert; }
		if rev != 1 || len(b) < 48 || b[0] > 2 || b[1] > 15 {
			return opaque
		}
		c := cond{kind: condPorts, portOf: int(b[0]), neg: b[47] != 0}
		var parts []string
		for i := 0; i < int(b[1]); i++ {
			lo := u16(2 + 2*i)
			r := portRange{lo, lo}
			if b[32+i] != 0 && i+1 < int(b[1]) { // a range: this port and the next
				r.hi = u16(2 + 2*(i+1))
				i++
			}
			c.ports = append(c.ports, r)
			if r.lo == r.hi {
				parts = append(parts, fmt.Sprint(r.lo))
			} else {
				parts = append(parts, fmt.Sprintf("%d:%d", r.lo, r.hi))
			}
		}
		c.text = []string{"sports ", "dports ", "ports "}[c.portOf] + strings.Join(parts, ",")
		if c.neg {
			c.text = "! " + c.text
		}
		return c
	}
	return opaque
}

func ctStateText(mask uint32) string {
	var s []string
	for _, b := range []struct {
		bit  uint32
		name string
	}{{ctInvalid, "invalid"}, {ctEstablished, "established"}, {ctRelated, "related"}, {ctNew, "new"}, {1 << 6, "untracked"}, {1 << 8, "untracked"}} {
		if mask&b.bit != 0 && !slices.Contains(s, b.name) {
			s = append(s, b.name)
		}
	}
	return strings.Join(s, ",")
}
