package hostfacts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// readFirewall walks the traffic Calico needs (flows) through this host's
// nftables rules, iptables-nft's among them, and its legacy iptables
// tables, and lists what drops it. It
// talks netlink from the calling thread, so it sees the network namespace
// that thread is in.
func readFirewall(v hostView) Firewall {
	fw := Firewall{Drops: []FirewallDrop{}}
	rs, err := readNftables()
	if rs == nil {
		rs = &ruleset{sets: map[string]map[string]*nftSet{}}
	}
	err = errors.Join(err, readLegacy(rs))
	if err != nil {
		fw.Error = err.Error()
	}
	fw.Drops = append(fw.Drops, rs.drops(v)...)
	return fw
}

// readNftables reads every chain and rule of every table, with the sets
// the rules look up. What cannot be read is said in the error; the rest is
// returned.
func readNftables() (*ruleset, error) {
	// No WithNetNSFd: the socket is opened on this thread, in its namespace.
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	rs := &ruleset{sets: map[string]map[string]*nftSet{}}
	var errs []string
	for _, ch := range chains {
		if ch.Table.Family == nftables.TableFamilyARP {
			continue // ARP carries none of Calico's traffic
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			errs = append(errs, fmt.Sprintf("list rules of %s %s %s: %v", familyName(ch.Table.Family), ch.Table.Name, ch.Name, err))
			continue
		}
		fc := &fwChain{ref: chainRef{ch.Table.Family, ch.Table.Name, ch.Name}, hook: hookName(ch.Table.Family, ch.Hooknum), policy: "accept"}
		if ch.Priority != nil {
			fc.prio = int32(*ch.Priority)
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			fc.policy = "drop"
		}
		for _, r := range rules {
			p := parseRule(r.Exprs)
			key := tableKey(fc.ref)
			if _, read := rs.sets[key]; !read && p.usesSets() {
				rs.sets[key] = readSets(c, ch.Table)
			}
			fc.rules = append(fc.rules, fwRule{parsedRule: p, handle: r.Handle})
		}
		rs.add(fc)
	}
	if len(errs) > 0 {
		return rs, errors.New(strings.Join(errs, "; "))
	}
	return rs, nil
}

// readSets reads the sets of a table and their elements. A set that cannot
// be read is left out, and rules looking it up count as conditional.
func readSets(c *nftables.Conn, t *nftables.Table) map[string]*nftSet {
	out := map[string]*nftSet{}
	sets, err := c.GetSets(t)
	if err != nil {
		return out
	}
	for _, s := range sets {
		if s.IsMap || s.Concatenation {
			continue // a map's verdict or a concatenated key is beyond this reader
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			continue
		}
		out[s.Name] = &nftSet{interval: s.Interval, elems: elems}
	}
	return out
}

// nftSet is a set's elements as the kernel keeps them. In an interval set an
// element opens a range and the next one flagged IntervalEnd closes it
// (exclusive); a KeyEnd element is a closed range on its own.
type nftSet struct {
	interval bool
	elems    []nftables.SetElement
}

// contains reports whether v is in the set.
func (s *nftSet) contains(v []byte) bool {
	if !s.interval {
		for _, e := range s.elems {
			if len(v) >= len(e.Key) && bytes.Equal(v[:len(e.Key)], e.Key) {
				return true
			}
		}
		return false
	}
	var best *nftables.SetElement
	for i := range s.elems {
		e := &s.elems[i]
		if len(v) < len(e.Key) {
			continue
		}
		k := v[:len(e.Key)]
		if len(e.KeyEnd) > 0 && bytes.Compare(k, e.Key) >= 0 && bytes.Compare(k, e.KeyEnd) <= 0 {
			return true
		}
		if bytes.Compare(e.Key, k) <= 0 && (best == nil || bytes.Compare(e.Key, best.Key) > 0) {
			best = e
		}
	}
	return best != nil && !best.IntervalEnd
}

// srcKind says where a register's value came from.
type srcKind int

const (
	srcNone    srcKind = iota // nothing we track: a condition on it cannot be evaluated
	srcMeta                   // meta <key>
	srcPayload                // a header field
	srcCtState                // the connection-tracking state bits (ct state)
)

// source is what a register holds: a packet field, possibly masked.
type source struct {
	kind      srcKind
	name      string // for srcNone: what loaded it (ct, fib, …), for the description
	meta      expr.MetaKey
	base      expr.PayloadBase
	off, n    uint32
	mask, xor []byte
}

// condKind is how a rule tests a register.
type condKind int

const (
	condCmp     condKind = iota // cmp <op> data
	condRange                   // range [data, to], or outside it
	condSet                     // lookup in a set
	condOpaque                  // a test podpath does not evaluate: xt match, limit, quota
	condTrue                    // always true: an xt comment
	condCtState                 // x_tables conntrack/state: the state bits in mask, neg inverts
	condMark                    // x_tables mark: mark & mask == value, neg inverts
	condPorts                   // x_tables multiport: the ports of ports (ranges where flagged)
)

// cond is one test of a rule; every test must pass for the verdict to apply.
type cond struct {
	kind     condKind
	src      source
	op       expr.CmpOp
	data, to []byte
	set      string
	neg      bool   // range or lookup inverted
	text     string // for condOpaque, condTrue (how to print it)
	// x_tables matches: ct state bits, mark value and mask, ports.
	mask, value uint32
	ports       []portRange
	portOf      int // multiport: 0 source, 1 destination, 2 either
}

type portRange struct{ lo, hi uint16 }

// parsedRule is a rule reduced to its tests and its terminal statement.
type parsedRule struct {
	conds  []cond
	action string // "drop", "reject", or "" when the rule never drops
	// verdict is what the rule does to a packet that matches it: drop,
	// reject, accept, return, jump or goto (to target), or "" to go on with
	// the next rule.
	verdict, target string
	setsMark        bool // it changes the packet's mark (meta set mark, -j MARK)
}

func (p parsedRule) usesSets() bool {
	return slices.ContainsFunc(p.conds, func(c cond) bool { return c.kind == condSet })
}

// parseRule follows the registers through a rule's expressions, the way the
// kernel runs them, up to the first terminal statement. Counters, logs and
// other statements that neither test nor decide are skipped, so a rule that
// only counts has no action.
func parseRule(exprs []expr.Any) parsedRule {
	var p parsedRule
	regs := map[uint32]source{}
	end := func(verdict string) parsedRule {
		p.verdict = verdict
		if verdict == "drop" || verdict == "reject" {
			p.action = verdict
		}
		return p
	}
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister { // `meta set`, a statement
				p.setsMark = p.setsMark || e.Key == expr.MetaKeyMARK
				continue
			}
			regs[e.Register] = source{kind: srcMeta, meta: e.Key}
		case *expr.Payload:
			if e.OperationType == expr.PayloadLoad {
				regs[e.DestRegister] = source{kind: srcPayload, base: e.Base, off: e.Offset, n: e.Len}
			}
		case *expr.Bitwise:
			s := regs[e.SourceRegister]
			if s.mask != nil {
				s = source{name: "masked value"} // a second mask: not worth following
			} else {
				s.mask, s.xor = e.Mask, e.Xor
			}
			regs[e.DestRegister] = s
		case *expr.Cmp:
			p.conds = append(p.conds, cond{kind: condCmp, src: regs[e.Register], op: e.Op, data: e.Data})
		case *expr.Range:
			p.conds = append(p.conds, cond{kind: condRange, src: regs[e.Register], data: e.FromData, to: e.ToData, neg: e.Op == expr.CmpOpNeq})
		case *expr.Lookup:
			if e.IsDestRegSet { // a map writes its value into a register
				regs[e.DestRegister] = source{name: "map @" + e.SetName}
				continue
			}
			p.conds = append(p.conds, cond{kind: condSet, src: regs[e.SourceRegister], set: e.SetName, neg: e.Invert})
		case *expr.Ct:
			if e.SourceRegister {
				continue // `ct set`, a statement
			}
			if e.Key == expr.CtKeySTATE {
				regs[e.Register] = source{kind: srcCtState, name: "ct state"}
			} else {
				regs[e.Register] = source{name: "ct"}
			}
		case *expr.Byteorder:
			if src := regs[e.SourceRegister]; strings.HasPrefix(src.name, "numgen") {
				regs[e.DestRegister] = src // nft turns numgen's host order around to compare: the same number
			} else {
				regs[e.DestRegister] = source{name: "byteorder"}
			}
		case *expr.Fib:
			regs[e.Register] = source{name: "fib"}
		case *expr.Rt:
			regs[e.Register] = source{name: "rt"}
		case *expr.Socket:
			regs[e.Register] = source{name: "socket"}
		case *expr.Numgen:
			kind := "inc"
			if e.Type == unix.NFT_NG_RANDOM {
				kind = "random"
			}
			regs[e.Register] = source{name: fmt.Sprintf("numgen %s mod %d", kind, e.Modulus)}
		case *expr.Hash:
			regs[e.DestRegister] = source{name: "hash"}
		case *expr.Exthdr:
			regs[e.DestRegister] = source{name: "exthdr"}
		case *expr.Immediate:
			regs[e.Register] = source{name: "immediate"}
		case *expr.Match:
			p.conds = append(p.conds, xtMatch(e))
		case *expr.Limit:
			p.conds = append(p.conds, cond{kind: condOpaque, text: "limit"})
		case *expr.Quota:
			p.conds = append(p.conds, cond{kind: condOpaque, text: "quota"})
		case *expr.Connlimit:
			p.conds = append(p.conds, cond{kind: condOpaque, text: "ct count"})
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictDrop:
				return end("drop")
			case expr.VerdictAccept:
				return end("accept")
			case expr.VerdictReturn:
				return end("return")
			case expr.VerdictJump, expr.VerdictGoto:
				p.target = e.Chain
				return end(map[expr.VerdictKind]string{expr.VerdictJump: "jump", expr.VerdictGoto: "goto"}[e.Kind])
			case expr.VerdictContinue:
			default: // queue, stop, break: the packet leaves this reader's view
				return end("accept")
			}
		case *expr.Reject:
			return end("reject")
		case *expr.Target: // iptables-nft keeps -j REJECT (and other x_tables targets) as targets
			switch e.Name {
			case "REJECT":
				return end("reject")
			case "DROP":
				return end("drop")
			case "ACCEPT":
				return end("accept")
			case "MARK", "CONNMARK":
				p.setsMark = true
			}
		case *expr.Counter, *expr.Log, *expr.Objref, *expr.Notrack, *expr.Dynset, *expr.SecMark:
			// statements: they neither test the packet nor decide its fate
		case *expr.NAT, *expr.Masq, *expr.Redir, *expr.Queue, *expr.TProxy, *expr.FlowOffload:
			return end("accept") // these end the rule without dropping
		default:
			// An expression this reader does not know may write any register.
			clear(regs)
		}
	}
	return p // no terminal statement: the rule only counts, logs or marks
}

// packet is one packet of the traffic a Need stands for, with the header
// bytes a firewall rule usually tests.
type packet struct {
	nfproto byte // unix.NFPROTO_IPV4 or NFPROTO_IPV6
	l4      byte
	// th is the start of the transport header. Bytes that vary from packet
	// to packet (ICMP checksum, the inner header of IPIP) hold a typical
	// value, so a raw `th dport 4789` is not taken for a rule on ICMP.
	th []byte
	// What else a rule may test, where the node's own facts tell it: the
	// interfaces it arrives on and leaves by, its addresses (the node's own
	// side only: the far end stands for any peer and stays unknown), its
	// connection-tracking state (a ctState* bit; 0 unknown) and its mark.
	iif, oif     string
	saddr, daddr netip.Addr
	ctState      uint32
	mark         *uint32 // nil: unknown, as after a rule that sets it
}

// Connection-tracking state bits, as both nft's `ct state` and x_tables'
// conntrack and state matches number them.
const (
	ctInvalid     = 1
	ctEstablished = 2
	ctRelated     = 4
	ctNew         = 8
)

// ephemeralPort stands for the port a client picks: VXLAN source ports and
// the client side of BGP come from the kernel's local port range (32768-60999
// by default), so a rule on, say, tcp sport 22 spares them.
const ephemeralPort = 49152

func udp(nf byte, sport, dport uint16) packet {
	return packet{nfproto: nf, l4: unix.IPPROTO_UDP, th: binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sport), dport)}
}

// tcp is a connection's first segment: the header up to its flags, SYN set
// (an answer is made with tcpAnswer).
func tcp(nf byte, sport, dport uint16) packet {
	p := udp(nf, sport, dport)
	p.l4 = unix.IPPROTO_TCP
	p.th = append(p.th, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, tcpSYN) // seq, ack, data offset 5, flags
	return p
}

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// tcpAnswer is a later segment of the connection: ACK, not SYN.
func tcpAnswer(p packet) packet {
	p.th = slices.Clone(p.th)
	p.th[13] = tcpACK
	return p
}

// icmp4 and icmp6 carry type, code and a zero checksum.
func icmp4(typ, code byte) packet {
	return packet{nfproto: unix.NFPROTO_IPV4, l4: unix.IPPROTO_ICMP, th: []byte{typ, code, 0, 0}}
}

func icmp6(typ, code byte) packet {
	return packet{nfproto: unix.NFPROTO_IPV6, l4: unix.IPPROTO_ICMPV6, th: []byte{typ, code, 0, 0}}
}

// ipipPacket's "transport header" is the inner IPv4 header: version 4,
// 20 bytes, total length 84 (a ping).
var ipipPacket = packet{nfproto: unix.NFPROTO_IPV4, l4: unix.IPPROTO_IPIP, th: []byte{0x45, 0, 0, 84}}

const (
	v4 = unix.NFPROTO_IPV4
	v6 = unix.NFPROTO_IPV6
)

// matches runs the rule's tests on pkt: match is false when a test that
// podpath can evaluate fails; unsure when some test could not be evaluated.
func (p parsedRule) matches(pkt packet, sets map[string]*nftSet) (match, unsure bool) {
	for _, c := range p.conds {
		ok, known := c.test(pkt, sets)
		if !known {
			unsure = true
			continue
		}
		if !ok {
			return false, false
		}
	}
	return true, unsure
}

func (c cond) test(pkt packet, sets map[string]*nftSet) (ok, known bool) {
	switch c.kind {
	case condOpaque:
		return false, false
	case condTrue:
		return true, true
	case condCtState:
		if pkt.ctState == 0 {
			return false, false
		}
		return (pkt.ctState&c.mask != 0) != c.neg, true
	case condMark:
		if pkt.mark == nil {
			return false, false
		}
		return (*pkt.mark&c.mask == c.value) != c.neg, true
	case condPorts:
		if (pkt.l4 != unix.IPPROTO_TCP && pkt.l4 != unix.IPPROTO_UDP) || len(pkt.th) < 4 {
			return false, false
		}
		sport, dport := binary.BigEndian.Uint16(pkt.th), binary.BigEndian.Uint16(pkt.th[2:])
		in := func(p uint16) bool {
			return slices.ContainsFunc(c.ports, func(r portRange) bool { return p >= r.lo && p <= r.hi })
		}
		hit := (c.portOf != 1 && in(sport)) || (c.portOf != 0 && in(dport))
		return hit != c.neg, true
	}
	v, known := c.src.value(pkt)
	if !known {
		return false, false
	}
	switch c.kind {
	case condCmp:
		if len(v) < len(c.data) {
			return false, false
		}
		d := bytes.Compare(v[:len(c.data)], c.data)
		switch c.op {
		case expr.CmpOpEq:
			return d == 0, true
		case expr.CmpOpNeq:
			return d != 0, true
		case expr.CmpOpLt:
			return d < 0, true
		case expr.CmpOpLte:
			return d <= 0, true
		case expr.CmpOpGt:
			return d > 0, true
		case expr.CmpOpGte:
			return d >= 0, true
		}
	case condRange:
		if len(v) < len(c.data) || len(c.data) != len(c.to) {
			return false, false
		}
		k := v[:len(c.data)]
		in := bytes.Compare(k, c.data) >= 0 && bytes.Compare(k, c.to) <= 0
		return in != c.neg, true
	case condSet:
		s, found := sets[c.set]
		if !found {
			return false, false
		}
		return s.contains(v) != c.neg, true
	}
	return false, false
}

// value is what the source reads from pkt, when podpath knows it.
func (s source) value(pkt packet) ([]byte, bool) {
	var v []byte
	switch s.kind {
	case srcMeta:
		switch s.meta {
		case expr.MetaKeyL4PROTO:
			v = []byte{pkt.l4}
		case expr.MetaKeyNFPROTO:
			v = []byte{pkt.nfproto}
		case expr.MetaKeyPROTOCOL: // the ethertype, network byte order
			v = []byte{0x08, 0x00}
			if pkt.nfproto == v6 {
				v = []byte{0x86, 0xdd}
			}
		case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
			name := pkt.iif
			if s.meta == expr.MetaKeyOIFNAME {
				name = pkt.oif
			}
			if name == "" {
				return nil, false
			}
			v = make([]byte, unix.IFNAMSIZ)
			copy(v, name)
		case expr.MetaKeyMARK:
			if pkt.mark == nil {
				return nil, false
			}
			v = binary.NativeEndian.AppendUint32(nil, *pkt.mark)
		default:
			return nil, false
		}
	case srcCtState:
		if pkt.ctState == 0 {
			return nil, false
		}
		v = binary.NativeEndian.AppendUint32(nil, pkt.ctState) // host order, as the kernel loads it
	case srcPayload:
		switch {
		case s.base == expr.PayloadBaseNetworkHeader && s.n == 1 &&
			(pkt.nfproto == v4 && s.off == 9 || pkt.nfproto == v6 && s.off == 6):
			v = []byte{pkt.l4} // ip protocol, ip6 nexthdr (no extension headers)
		case s.base == expr.PayloadBaseTransportHeader && int(s.off+s.n) <= len(pkt.th):
			v = slices.Clone(pkt.th[s.off : s.off+s.n])
		case s.base == expr.PayloadBaseNetworkHeader && addrOf(pkt.nfproto, s.off, s.n) != "":
			a := pkt.saddr
			if addrOf(pkt.nfproto, s.off, s.n) == "daddr" {
				a = pkt.daddr
			}
			if !a.IsValid() {
				return nil, false
			}
			v = a.AsSlice()[:s.n] // a whole address, or the prefix's leading bytes
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	if s.mask != nil {
		if len(s.mask) != len(v) || len(s.xor) != len(v) {
			return nil, false
		}
		for i := range v {
			v[i] = v[i]&s.mask[i] ^ s.xor[i]
		}
	}
	return v, true
}

// describe renders the rule the way `nft list ruleset` would, close enough
// for a human: dependencies nft adds on its own (`meta l4proto udp` before
// `udp dport`, `meta nfproto ipv4` before `ip protocol`) are left out.
func (p parsedRule) describe(family nftables.TableFamily, sets map[string]*nftSet) string {
	terms := make([]string, len(p.conds))
	implied := map[int]bool{}
	l4, l4Term := -1, -1 // protocol set by the last `== proto` test, and that test
	nf, nfTerm := byte(0), -1
	switch family {
	case nftables.TableFamilyIPv4:
		nf = v4
	case nftables.TableFamilyIPv6:
		nf = v6
	}
	for i, c := range p.conds {
		if c.kind >= condOpaque { // x_tables matches and the like: their own text
			terms[i] = c.text
			if proto, ok := transportNames[l4]; ok && c.kind == condPorts && l4Term >= 0 {
				implied[l4Term] = true // `-p udp --dport 53` reads as `udp dport 53`
				terms[i] = proto + " " + c.text
			}
			continue
		}
		f := describeField(c.src, nf, l4)
		if f.needsL4 && l4Term >= 0 {
			implied[l4Term] = true
			if (l4 == unix.IPPROTO_ICMP || l4 == unix.IPPROTO_ICMPV6) && nfTerm >= 0 {
				implied[nfTerm] = true
			}
		}
		if f.needsNF && nfTerm >= 0 {
			implied[nfTerm] = true
		}
		terms[i] = f.name + " " + c.describeValue(f.format, sets)
		if c.kind == condCmp && c.op == expr.CmpOpEq && c.src.mask == nil && len(c.data) > 0 {
			switch f.role {
			case roleL4:
				l4, l4Term = int(c.data[0]), i
			case roleNF:
				nf, nfTerm = nfprotoOf(c.src, c.data), i
			}
		}
	}
	var out []string
	for i, t := range terms {
		if !implied[i] {
			out = append(out, t)
		}
	}
	return strings.Join(append(out, p.action), " ")
}

// fieldRole marks fields whose equality test is a dependency of later fields.
type fieldRole int

const (
	roleNone fieldRole = iota
	roleL4             // the L4 protocol: transport fields depend on it
	roleNF             // the network protocol: network fields depend on it
)

type fieldDesc struct {
	name             string
	format           func([]byte) string
	role             fieldRole
	needsL4, needsNF bool
	addr             bool // an address: a mask makes it a prefix
}

func describeField(s source, nf byte, l4 int) fieldDesc {
	d := fieldDesc{name: s.name, format: hexValue}
	if s.kind == srcNone && d.name == "" {
		d.name = "?"
	}
	if strings.HasPrefix(s.name, "numgen") {
		d.format = decValue
	}
	switch s.kind {
	case srcMeta:
		d.name = "meta " + metaName(s.meta)
		switch s.meta {
		case expr.MetaKeyL4PROTO:
			d.format, d.role = protoValue, roleL4
		case expr.MetaKeyNFPROTO:
			d.format, d.role = nfprotoValue, roleNF
		case expr.MetaKeyPROTOCOL:
			d.format, d.role = ethertypeValue, roleNF
		case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
			d.name, d.format = metaName(s.meta), ifnameValue
		}
	case srcPayload:
		d = payloadField(s, nf, l4)
	}
	if s.mask != nil {
		if d.addr {
			d.format = prefixValue(s.mask)
		} else {
			d.name += " & " + hexValue(s.mask)
		}
	}
	return d
}

func payloadField(s source, nf byte, l4 int) fieldDesc {
	raw := fieldDesc{format: hexValue}
	at := func(base string) string { return fmt.Sprintf("@%s,%d,%d", base, s.off*8, s.n*8) }
	switch s.base {
	case expr.PayloadBaseNetworkHeader:
		raw.name = at("nh")
		if nf == 0 {
			nf = v4 // inet without a family test: nft would have added one, IPv4 is likelier
		}
		if f, ok := networkFields[networkField{nf, s.off, s.n}]; ok {
			f.needsNF = true
			return f
		}
		// iptables-nft loads only the prefix's bytes: -s 10.1.0.0/16 is 2 bytes at 12.
		if at, size := addrField(nf, s.off, s.n); at != "" {
			return fieldDesc{name: at, needsNF: true, format: func(b []byte) string {
				full := make([]byte, size)
				copy(full, b)
				if a, ok := netip.AddrFromSlice(full); ok {
					return fmt.Sprintf("%s/%d", a, 8*len(b))
				}
				return hexValue(b)
			}}
		}
	case expr.PayloadBaseTransportHeader:
		raw.name = at("th")
		switch l4 {
		case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
			name := "icmp"
			if l4 == unix.IPPROTO_ICMPV6 {
				name = "icmpv6"
			}
			switch {
			case s.off == 0 && s.n == 1:
				return fieldDesc{name: name + " type", format: icmpTypeValue(l4), needsL4: true}
			case s.off == 1 && s.n == 1:
				return fieldDesc{name: name + " code", format: decValue, needsL4: true}
			}
		default:
			proto := "th"
			if p, ok := transportNames[l4]; ok {
				proto = p
			}
			switch {
			case s.off == 0 && s.n == 2:
				return fieldDesc{name: proto + " sport", format: decValue, needsL4: proto != "th"}
			case s.off == 2 && s.n == 2:
				return fieldDesc{name: proto + " dport", format: decValue, needsL4: proto != "th"}
			}
		}
	case expr.PayloadBaseLLHeader:
		raw.name = at("ll")
	}
	return raw
}

// addrOf says whether n bytes at off of an IPv4 or IPv6 header are (the
// start of) its source or destination address.
func addrOf(nf byte, off, n uint32) string {
	switch {
	case nf == v4 && off == 12 && n >= 1 && n <= 4, nf == v6 && off == 8 && n >= 1 && n <= 16:
		return "saddr"
	case nf == v4 && off == 16 && n >= 1 && n <= 4, nf == v6 && off == 24 && n >= 1 && n <= 16:
		return "daddr"
	}
	return ""
}

// addrField names a load of an address's leading bytes, and the address's length.
func addrField(nf byte, off, n uint32) (string, int) {
	what := addrOf(nf, off, n)
	if what == "" {
		return "", 0
	}
	if nf == v6 {
		return "ip6 " + what, 16
	}
	return "ip " + what, 4
}

type networkField struct {
	nf     byte
	off, n uint32
}

// networkFields names the IPv4 and IPv6 header fields a rule on Calico's traffic tests.
var networkFields = map[networkField]fieldDesc{
	{v4, 9, 1}:   {name: "ip protocol", format: protoValue, role: roleL4},
	{v4, 12, 4}:  {name: "ip saddr", format: ipValue, addr: true},
	{v4, 16, 4}:  {name: "ip daddr", format: ipValue, addr: true},
	{v6, 6, 1}:   {name: "ip6 nexthdr", format: protoValue, role: roleL4},
	{v6, 8, 16}:  {name: "ip6 saddr", format: ipValue, addr: true},
	{v6, 24, 16}: {name: "ip6 daddr", format: ipValue, addr: true},
}

// transportNames are the protocols whose first four bytes are two ports.
var transportNames = map[int]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_SCTP: "sctp", unix.IPPROTO_UDPLITE: "udplite"}

func nfprotoOf(s source, data []byte) byte {
	if s.meta == expr.MetaKeyPROTOCOL {
		if bytes.Equal(data, []byte{0x86, 0xdd}) {
			return v6
		}
		return v4
	}
	return data[0]
}

var cmpOpText = map[expr.CmpOp]string{expr.CmpOpNeq: "!= ", expr.CmpOpLt: "< ", expr.CmpOpLte: "<= ", expr.CmpOpGt: "> ", expr.CmpOpGte: ">= "}

func (c cond) describeValue(format func([]byte) string, sets map[string]*nftSet) string {
	neg := ""
	if c.neg {
		neg = "!= "
	}
	switch c.kind {
	case condRange:
		return neg + format(c.data) + "-" + format(c.to)
	case condSet:
		s, ok := sets[c.set]
		if !ok || !strings.HasPrefix(c.set, "__") { // named sets by name, anonymous ones (__set0) by content
			return neg + "@" + c.set
		}
		return neg + "{ " + s.describe(format) + " }"
	}
	return cmpOpText[c.op] + format(c.data)
}

// describe lists an anonymous set's elements, ranges as a-b.
func (s *nftSet) describe(format func([]byte) string) string {
	elems := slices.Clone(s.elems)
	sort.Slice(elems, func(i, j int) bool { return bytes.Compare(elems[i].Key, elems[j].Key) < 0 })
	var out []string
	for i, e := range elems {
		switch {
		case len(e.KeyEnd) > 0:
			out = append(out, format(e.Key)+"-"+format(e.KeyEnd))
		case !s.interval:
			out = append(out, format(e.Key))
		case !e.IntervalEnd && i+1 < len(elems) && elems[i+1].IntervalEnd:
			// the closing element is one past the range
			out = append(out, rangeText(format, e.Key, elems[i+1].Key))
		case !e.IntervalEnd:
			out = append(out, format(e.Key)+"-…")
		}
	}
	return strings.Join(out, ", ")
}

func rangeText(format func([]byte) string, from, endExcl []byte) string {
	last := slices.Clone(endExcl)
	for i := len(last) - 1; i >= 0; i-- { // big-endian minus one
		last[i]--
		if last[i] != 0xff {
			break
		}
	}
	if bytes.Equal(from, last) {
		return format(from)
	}
	return format(from) + "-" + format(last)
}

var metaNames = map[expr.MetaKey]string{
	expr.MetaKeyLEN: "length", expr.MetaKeyPROTOCOL: "protocol", expr.MetaKeyMARK: "mark",
	expr.MetaKeyIIF: "iif", expr.MetaKeyOIF: "oif", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname",
	expr.MetaKeyIIFTYPE: "iiftype", expr.MetaKeyOIFTYPE: "oiftype", expr.MetaKeySKUID: "skuid", expr.MetaKeySKGID: "skgid",
	expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyPKTTYPE: "pkttype",
	expr.MetaKeyBRIIIFNAME: "ibrname", expr.MetaKeyBRIOIFNAME: "obrname", expr.MetaKeyCGROUP: "cgroup",
}

func metaName(k expr.MetaKey) string {
	if n, ok := metaNames[k]; ok {
		return n
	}
	return "key" + strconv.Itoa(int(k))
}

var protoNames = map[byte]string{
	unix.IPPROTO_ICMP: "icmp", unix.IPPROTO_IPIP: "ipip", unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp",
	unix.IPPROTO_GRE: "gre", unix.IPPROTO_ESP: "esp", unix.IPPROTO_ICMPV6: "icmpv6", unix.IPPROTO_SCTP: "sctp",
}

func protoValue(b []byte) string {
	if len(b) == 1 {
		if n, ok := protoNames[b[0]]; ok {
			return n
		}
	}
	return decValue(b)
}

func nfprotoValue(b []byte) string {
	switch {
	case bytes.Equal(b, []byte{v4}):
		return "ipv4"
	case bytes.Equal(b, []byte{v6}):
		return "ipv6"
	}
	return decValue(b)
}

func ethertypeValue(b []byte) string {
	switch {
	case bytes.Equal(b, []byte{0x08, 0x00}):
		return "ip"
	case bytes.Equal(b, []byte{0x86, 0xdd}):
		return "ip6"
	}
	return hexValue(b)
}

var icmpTypes = map[int]map[byte]string{
	unix.IPPROTO_ICMP: {0: "echo-reply", 3: "destination-unreachable", 5: "redirect", 8: "echo-request", 11: "time-exceeded"},
	unix.IPPROTO_ICMPV6: {1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
		128: "echo-request", 129: "echo-reply", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert"},
}

func icmpTypeValue(l4 int) func([]byte) string {
	return func(b []byte) string {
		if len(b) == 1 {
			if n, ok := icmpTypes[l4][b[0]]; ok {
				return n
			}
		}
		return decValue(b)
	}
}

// decValue prints a big-endian number of up to 8 bytes in decimal.
func decValue(b []byte) string {
	if len(b) == 0 || len(b) > 8 {
		return hexValue(b)
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return strconv.FormatUint(n, 10)
}

func hexValue(b []byte) string { return fmt.Sprintf("0x%x", b) }

// ifnameValue prints an interface name; nft compares IFNAMSIZ bytes, or a
// prefix for a wildcard ("eth*").
func ifnameValue(b []byte) string {
	name, _, found := bytes.Cut(b, []byte{0})
	if !found && len(b) < unix.IFNAMSIZ {
		return strconv.Quote(string(name) + "*")
	}
	return strconv.Quote(string(name))
}

func ipValue(b []byte) string {
	if a, ok := netip.AddrFromSlice(b); ok {
		return a.String()
	}
	return hexValue(b)
}

// prefixValue prints an address tested under a netmask as a prefix.
func prefixValue(mask []byte) func([]byte) string {
	ones := 0
	for _, m := range mask {
		ones += bits.OnesCount8(m)
	}
	return func(b []byte) string {
		if a, ok := netip.AddrFromSlice(b); ok {
			if p, err := a.Prefix(ones); err == nil {
				return p.String()
			}
		}
		return hexValue(b) + " & " + hexValue(mask)
	}
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyARP:
		return "arp"
	case legacyFamily:
		return "ip (iptables-legacy)"
	}
	return strconv.Itoa(int(f))
}

// nfInetIngress is NF_INET_INGRESS (Linux 5.10), which x/sys/unix lacks.
const nfInetIngress = 5

var (
	inetHooks = map[nftables.ChainHook]string{
		unix.NF_INET_PRE_ROUTING: "prerouting", unix.NF_INET_LOCAL_IN: "input", unix.NF_INET_FORWARD: "forward",
		unix.NF_INET_LOCAL_OUT: "output", unix.NF_INET_POST_ROUTING: "postrouting", nfInetIngress: "ingress",
	}
	netdevHooks = map[nftables.ChainHook]string{unix.NF_NETDEV_INGRESS: "ingress", unix.NF_NETDEV_EGRESS: "egress"}
)

// hookName names a base chain's hook; "" for a regular chain. The netdev
// family numbers its hooks on its own.
func hookName(f nftables.TableFamily, h *nftables.ChainHook) string {
	if h == nil {
		return ""
	}
	names := inetHooks
	if f == nftables.TableFamilyNetdev {
		names = netdevHooks
	}
	if n, ok := names[*h]; ok {
		return n
	}
	return "hook" + strconv.Itoa(int(*h))
}
