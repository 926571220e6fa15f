package hostfacts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Legacy iptables (x_tables): the tables the kernel keeps apart from
// nftables, on hosts whose iptables is the legacy backend (older
// distributions, and images that pin iptables-legacy). They are read the
// way iptables-legacy-save reads them, with getsockopt(IPT_SO_GET_INFO,
// IPT_SO_GET_ENTRIES) on a raw socket, and only the tables the kernel lists
// in /proc/net/ip_tables_names: asking for another would load its module.
// IPv6's ip6tables is not read.

// legacyFamily marks x_tables chains among nftables' in the walk.
const legacyFamily nftables.TableFamily = 200

// getsockopt numbers and sizes of <linux/netfilter_ipv4/ip_tables.h>.
const (
	iptSoGetInfo    = 64
	iptSoGetEntries = 65
	iptTableNameLen = 32
	iptEntrySize    = 112 // struct ipt_entry, without its matches and target
	xtHeaderSize    = 32  // struct xt_entry_match / xt_entry_target header: size, name[29], revision
	maxLegacyTable  = 64 << 20
)

// Each built-in table's hooks and priority, as x_tables registers them.
var legacyTables = map[string]struct {
	prio  int32
	hooks []string
}{
	"raw":      {-300, []string{"prerouting", "", "", "output", ""}},
	"mangle":   {-150, []string{"prerouting", "input", "forward", "output", "postrouting"}},
	"nat":      {-100, []string{"prerouting", "input", "", "output", "postrouting"}},
	"filter":   {0, []string{"", "input", "forward", "output", ""}},
	"security": {50, []string{"", "input", "forward", "output", ""}},
}

var builtinChain = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// readLegacy adds the legacy iptables tables of this thread's network
// namespace to rs. No table listed is no error: the host does not use it.
func readLegacy(rs *ruleset) error {
	b, err := os.ReadFile("/proc/thread-self/net/ip_tables_names")
	if err != nil {
		if os.IsNotExist(err) {
			return nil // x_tables not in this kernel
		}
		return fmt.Errorf("read ip_tables_names: %w", err)
	}
	names := strings.Fields(string(b))
	if len(names) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("open raw socket for iptables: %w", err)
	}
	defer unix.Close(fd)
	var errs []error
	for _, name := range names {
		if err := readLegacyTable(fd, name, rs); err != nil {
			errs = append(errs, fmt.Errorf("iptables-legacy table %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func getsockopt(fd, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_IP, uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func readLegacyTable(fd int, name string, rs *ruleset) error {
	// struct ipt_getinfo: name, valid_hooks, hook_entry[5], underflow[5], num_entries, size.
	info := make([]byte, iptTableNameLen+4+20+20+4+4)
	copy(info, name)
	if err := getsockopt(fd, iptSoGetInfo, info); err != nil {
		return fmt.Errorf("IPT_SO_GET_INFO: %w", err)
	}
	u32 := func(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	valid := u32(info, 32)
	var hookEntry, underflow [5]uint32
	for h := range 5 {
		hookEntry[h], underflow[h] = u32(info, 36+4*h), u32(info, 56+4*h)
	}
	size := u32(info, 80)
	if size > maxLegacyTable {
		return fmt.Errorf("%d bytes of rules: more than this reader takes", size)
	}
	// struct ipt_get_entries: name, size, then the entries, 8-aligned.
	const entriesOff = 40
	buf := make([]byte, entriesOff+int(size))
	copy(buf, name)
	binary.NativeEndian.PutUint32(buf[32:], size)
	if err := getsockopt(fd, iptSoGetEntries, buf); err != nil {
		return fmt.Errorf("IPT_SO_GET_ENTRIES: %w", err)
	}
	entries := buf[entriesOff:]
	table := legacyTables[name]
	// Walk the entries once: where each starts, and which chain it is in.
	type entry struct {
		off  uint32
		rule fwRule
		// for the standard target: verdict < 0, or the offset jumped to.
		verdict int32
		std     bool
		isGoto  bool   // -g: a goto, not a jump
		errName string // an ERROR target: a user chain begins (or the table ends)
	}
	var list []entry
	for off := uint32(0); off+iptEntrySize <= size; {
		e := entries[off:]
		targetOff, next := binary.NativeEndian.Uint16(e[88:]), binary.NativeEndian.Uint16(e[90:])
		if next < iptEntrySize || uint32(targetOff)+xtHeaderSize > uint32(next) || off+uint32(next) > size {
			return fmt.Errorf("malformed entry at %d", off)
		}
		en := entry{off: off}
		en.rule.conds = ipConds(e[:84])
		en.isGoto = e[82]&iptFGoto != 0
		for m := uint32(iptEntrySize); m+xtHeaderSize <= uint32(targetOff); {
			msize := uint32(binary.NativeEndian.Uint16(e[m:]))
			if msize < xtHeaderSize || m+msize > uint32(targetOff) {
				return fmt.Errorf("malformed match at %d", off+m)
			}
			mname := cstr(e[m+2 : m+31])
			en.rule.conds = append(en.rule.conds, legacyMatch(mname, uint32(e[m+31]), e[m+xtHeaderSize:m+msize]))
			m += msize
		}
		t := e[targetOff:next]
		tname, tdata := cstr(t[2:31]), t[xtHeaderSize:]
		switch {
		case tname == "" && len(tdata) >= 4:
			en.std, en.verdict = true, int32(binary.NativeEndian.Uint32(tdata))
		case tname == "ERROR":
			en.errName = cstr(tdata)
		default:
			legacyTarget(&en.rule.parsedRule, tname)
		}
		list = append(list, en)
		off += uint32(next)
	}
	// Chains: the built-in ones begin at hook_entry and end at their
	// underflow (the policy); a user chain begins after its ERROR entry and
	// ends with a RETURN.
	chainAt := map[uint32]string{} // first entry's offset → chain name
	for h := range 5 {
		if valid&(1<<h) != 0 {
			chainAt[hookEntry[h]] = builtinChain[h]
		}
	}
	for i, en := range list {
		if en.errName != "" && en.errName != "ERROR" && i+1 < len(list) {
			chainAt[list[i+1].off] = en.errName
		}
	}
	var cur *fwChain
	for _, en := range list {
		if c, ok := chainAt[en.off]; ok {
			cur = &fwChain{ref: chainRef{legacyFamily, name, c}, prio: table.prio, policy: "accept"}
			for h, hc := range builtinChain {
				if hc == c && valid&(1<<h) != 0 {
					cur.hook = table.hooks[h]
				}
			}
			rs.add(cur)
		}
		if cur == nil || en.errName != "" {
			continue
		}
		isPolicy := false
		for h := range 5 {
			if valid&(1<<h) != 0 && underflow[h] == en.off && cur.ref.name == builtinChain[h] {
				isPolicy = true
			}
		}
		if en.std {
			switch v := en.verdict; {
			case isPolicy:
				if v == -nfDrop-1 {
					cur.policy = "drop"
				}
				cur = nil // the chain ends with its policy
				continue
			case v == -nfDrop-1:
				en.rule.verdict, en.rule.action = "drop", "drop"
			case v == -nfAccept-1:
				en.rule.verdict = "accept"
			case v == -nfRepeat-1: // XT_RETURN
				en.rule.verdict = "return"
			case v >= 0 && uint32(v) == en.off+uint32(binary.NativeEndian.Uint16(entries[en.off+90:])):
				// A rule without a target jumps to the next entry: it goes on.
			case v >= 0:
				target, found := chainAt[uint32(v)]
				if !found {
					en.rule.verdict = "accept" // a jump into the middle of a chain: not followed
					break
				}
				en.rule.verdict, en.rule.target = "jump", target
				if en.isGoto {
					en.rule.verdict = "goto"
				}
			}
		}
		en.rule.handle = uint64(en.off)
		cur.rules = append(cur.rules, en.rule)
	}
	return nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Inversion flags of struct ipt_ip.
const (
	iptInvViaIn  = 0x01
	iptInvViaOut = 0x02
	iptInvSrcIP  = 0x08
	iptInvDstIP  = 0x10
	iptInvProto  = 0x40
	iptFFrag     = 0x01
	iptFGoto     = 0x02
)

// Netfilter verdicts; a standard target stores -verdict-1.
const (
	nfDrop   = 0
	nfAccept = 1
	nfRepeat = 4 // XT_RETURN is -NF_REPEAT-1
)

// ipConds turns struct ipt_ip (addresses and masks, interfaces and masks,
// protocol, flags, inversions) into the conditions of the walk.
func ipConds(ip []byte) []cond {
	var out []cond
	op := func(inv bool) expr.CmpOp {
		if inv {
			return expr.CmpOpNeq
		}
		return expr.CmpOpEq
	}
	invflags := ip[83]
	for _, a := range []struct {
		addr, mask []byte
		off        uint32
		inv        bool
	}{{ip[0:4], ip[8:12], 12, invflags&iptInvSrcIP != 0}, {ip[4:8], ip[12:16], 16, invflags&iptInvDstIP != 0}} {
		if bytes.Equal(a.mask, []byte{0, 0, 0, 0}) {
			continue
		}
		src := source{kind: srcPayload, base: expr.PayloadBaseNetworkHeader, off: a.off, n: 4, mask: a.mask, xor: []byte{0, 0, 0, 0}}
		out = append(out, cond{kind: condCmp, src: src, op: op(a.inv), data: a.addr})
	}
	for _, i := range []struct {
		name, mask []byte
		key        expr.MetaKey
		inv        bool
	}{{ip[16:32], ip[48:64], expr.MetaKeyIIFNAME, invflags&iptInvViaIn != 0}, {ip[32:48], ip[64:80], expr.MetaKeyOIFNAME, invflags&iptInvViaOut != 0}} {
		n := bytes.IndexByte(i.mask, 0) // the mask covers the bytes compared: "eth+" masks "eth"
		if n < 0 {
			n = len(i.mask)
		}
		if n == 0 {
			continue
		}
		out = append(out, cond{kind: condCmp, src: source{kind: srcMeta, meta: i.key}, op: op(i.inv), data: append([]byte(nil), i.name[:n]...)})
	}
	if proto := binary.NativeEndian.Uint16(ip[80:]); proto != 0 {
		out = append(out, cond{kind: condCmp, src: source{kind: srcMeta, meta: expr.MetaKeyL4PROTO}, op: op(invflags&iptInvProto != 0), data: []byte{byte(proto)}})
	}
	if ip[82]&iptFFrag != 0 {
		out = append(out, cond{kind: condOpaque, text: "-f"})
	}
	return out
}

// legacyMatch reads one x_tables match of a legacy rule.
func legacyMatch(name string, rev uint32, data []byte) cond {
	opaque := cond{kind: condOpaque, text: "-m " + name}
	u16 := func(off int) uint16 { return binary.NativeEndian.Uint16(data[off:]) }
	switch name {
	case "comment":
		return cond{kind: condTrue, text: fmt.Sprintf("comment %q", cstr(data))}
	case "conntrack": // as xtMatch reads it: match_flags, invert_flags at 146 and 148, state_mask at 150
		if len(data) < 152 || rev < 1 {
			return opaque
		}
		flags, invert := u16(146), u16(148)
		if flags&^0x2001 != 0 { // XT_CONNTRACK_STATE, XT_CONNTRACK_STATE_ALIAS
			return opaque
		}
		mask := uint32(data[150])
		if rev >= 2 {
			mask = uint32(u16(150))
		}
		neg := invert&1 != 0
		text := "ct state " + ctStateText(mask)
		if neg {
			text = "ct state != " + ctStateText(mask)
		}
		return cond{kind: condCtState, mask: mask, neg: neg, text: text}
	case "tcp", "udp":
		// struct xt_tcp { u16 spts[2], dpts[2]; u8 option, flg_mask, flg_cmp, invflags; }
		// struct xt_udp { u16 spts[2], dpts[2]; u8 invflags; }
		if len(data) < 9 {
			return opaque
		}
		inv := data[8]
		if name == "tcp" {
			if len(data) < 12 || data[8] != 0 || data[9] != 0 {
				return cond{kind: condOpaque, text: "--tcp-flags/--syn/--tcp-option"}
			}
			inv = data[11]
		}
		return portsMatch([2]uint16{u16(0), u16(2)}, [2]uint16{u16(4), u16(6)}, inv&1 != 0, inv&2 != 0)
	case "icmp": // struct ipt_icmp { u8 type, code[2], invflags; }
		if len(data) < 4 {
			return opaque
		}
		typ, lo, hi, neg := data[0], data[1], data[2], data[3]&1 != 0
		if typ == 0xff { // any type
			return cond{kind: condTrue, text: "icmp any"}
		}
		src := source{kind: srcPayload, base: expr.PayloadBaseTransportHeader, off: 0, n: 1}
		c := cond{kind: condCmp, src: src, op: expr.CmpOpEq, data: []byte{typ}}
		if neg {
			c.op = expr.CmpOpNeq
		}
		if lo == 0 && hi == 0xff {
			return c
		}
		return cond{kind: condOpaque, text: fmt.Sprintf("icmp type %d code %d-%d", typ, lo, hi)}
	}
	return rawMatch(name, rev, data, opaque)
}

// legacyTarget reads a non-standard target: REJECT ends the rule with a
// drop, the targets that only mark, log or adjust go on to the next rule,
// and the rest end the packet's walk without a drop.
func legacyTarget(p *parsedRule, name string) {
	switch name {
	case "REJECT":
		p.verdict, p.action = "reject", "reject"
	case "MARK", "CONNMARK":
		p.setsMark = true
	case "LOG", "NFLOG", "ULOG", "TCPMSS", "CT", "TRACE", "CLASSIFY", "DSCP", "TOS", "CHECKSUM", "AUDIT",
		"SECMARK", "CONNSECMARK", "TEE", "HMARK", "IDLETIMER", "LED", "RATEEST", "TTL", "NOTRACK":
	default:
		p.verdict = "accept"
	}
}
