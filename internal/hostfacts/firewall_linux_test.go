package hostfacts

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The expressions below are what nft (and the lab, through google/nftables)
// compiles each rule to; `nft --debug=netlink` prints the same sequences.

func metaEq(key expr.MetaKey, v ...byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v}}
}

func l4Eq(p byte) []expr.Any { return metaEq(expr.MetaKeyL4PROTO, p) }

// load reads n bytes at off of a header into register 1.
func load(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// portEq is `th sport|dport <p>`: offset 0 is the source port, 2 the destination.
func portEq(off uint32, op expr.CmpOp, p uint16) []expr.Any {
	return []expr.Any{load(expr.PayloadBaseTransportHeader, off, 2), &expr.Cmp{Op: op, Register: 1, Data: port(p)}}
}

func ifnameEq(key expr.MetaKey, dev string) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	return metaEq(key, name...)
}

func rule(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func counter() []expr.Any { return []expr.Any{&expr.Counter{}} }
func drop() []expr.Any    { return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}} }
func accept() []expr.Any  { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }

func TestFirewallRules(t *testing.T) {
	const (
		inet = nftables.TableFamilyINet
		ip   = nftables.TableFamilyIPv4
		ip6  = nftables.TableFamilyIPv6
	)
	udp, tcp, icmp := byte(unix.IPPROTO_UDP), byte(unix.IPPROTO_TCP), byte(unix.IPPROTO_ICMP)
	th := expr.PayloadBaseTransportHeader
	sets := map[string]*nftSet{
		"__set0": {elems: []nftables.SetElement{{Key: port(4789)}, {Key: port(8472)}}},
		// 51000-52000 as nft stores an interval: start, then one past the end flagged IntervalEnd.
		"__set1": {interval: true, elems: []nftables.SetElement{
			{Key: port(0), IntervalEnd: true}, {Key: port(51000)}, {Key: port(52001), IntervalEnd: true}}},
		"blocked": {elems: []nftables.SetElement{{Key: port(179)}}},
	}
	for _, tc := range []struct {
		name            string
		family          nftables.TableFamily
		hook            string
		exprs           []expr.Any
		wantRule        string // "" when the rule must not be reported
		wantNeeds       []string
		wantConditional bool
	}{
		{
			name: "lab_block_vxlan", family: inet, hook: "input",
			exprs:    rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), counter(), drop()),
			wantRule: "udp dport 4789 drop", wantNeeds: []string{NeedVXLAN},
		},
		{
			// `udp dport 4789` in an ip table: same code since nft 0.9.
			name: "udp_dport_in_ip_family", family: ip, hook: "input",
			exprs:    rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), drop()),
			wantRule: "udp dport 4789 drop", wantNeeds: []string{NeedVXLAN},
		},
		{
			// `meta l4proto udp th dport 4789 drop` compiles to the same as above.
			name: "th_dport_without_l4_test", family: inet, hook: "input",
			exprs:    rule(portEq(2, expr.CmpOpEq, 4789), drop()),
			wantRule: "th dport 4789 drop", wantNeeds: []string{NeedVXLAN},
		},
		{
			name: "tcp_dport_179", family: inet, hook: "input",
			exprs:    rule(l4Eq(tcp), portEq(2, expr.CmpOpEq, 179), counter(), drop()),
			wantRule: "tcp dport 179 drop", wantNeeds: []string{NeedBGP},
		},
		{
			name: "tcp_sport_179", family: inet, hook: "input",
			exprs:    rule(l4Eq(tcp), portEq(0, expr.CmpOpEq, 179), counter(), drop()),
			wantRule: "tcp sport 179 drop", wantNeeds: []string{NeedBGP},
		},
		{
			name: "tcp_sport_22_spares_bgp", family: inet, hook: "input",
			exprs: rule(l4Eq(tcp), portEq(0, expr.CmpOpEq, 22), drop()),
		},
		{
			name: "meta_l4proto_icmp", family: inet, hook: "input",
			exprs:    rule(l4Eq(icmp), counter(), drop()),
			wantRule: "meta l4proto icmp drop", wantNeeds: []string{NeedICMPFragNeeded, NeedICMP},
		},
		{
			name: "ip_protocol_icmp_in_ip_family", family: ip, hook: "input",
			exprs: rule([]expr.Any{load(expr.PayloadBaseNetworkHeader, 9, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{icmp}}}, drop()),
			wantRule: "ip protocol icmp drop", wantNeeds: []string{NeedICMPFragNeeded, NeedICMP},
		},
		{
			// In inet, nft tests the family before reading the IPv4 header.
			name: "ip_protocol_icmp_in_inet_family", family: inet, hook: "forward",
			exprs: rule(metaEq(expr.MetaKeyNFPROTO, unix.NFPROTO_IPV4), []expr.Any{load(expr.PayloadBaseNetworkHeader, 9, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{icmp}}}, drop()),
			wantRule: "ip protocol icmp drop", wantNeeds: []string{NeedICMPFragNeeded, NeedICMP},
		},
		{
			name: "icmp_type_destination_unreachable", family: inet, hook: "input",
			exprs: rule(l4Eq(icmp), []expr.Any{load(th, 0, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3}}}, drop()),
			wantRule: "icmp type destination-unreachable drop", wantNeeds: []string{NeedICMPFragNeeded},
		},
		{
			name: "icmp_echo_request_only", family: ip, hook: "input",
			exprs: rule(l4Eq(icmp), []expr.Any{load(th, 0, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}}}, drop()),
			wantRule: "icmp type echo-request drop", wantNeeds: []string{NeedICMP},
		},
		{
			name: "icmpv6_packet_too_big", family: ip6, hook: "input",
			exprs: rule(l4Eq(unix.IPPROTO_ICMPV6), []expr.Any{load(th, 0, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}}}, drop()),
			wantRule: "icmpv6 type packet-too-big drop", wantNeeds: []string{NeedICMPFragNeeded},
		},
		{
			name: "ipip_by_ip_protocol", family: ip, hook: "input",
			exprs: rule([]expr.Any{load(expr.PayloadBaseNetworkHeader, 9, 1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_IPIP}}}, drop()),
			wantRule: "ip protocol ipip drop", wantNeeds: []string{NeedIPIP},
		},
		{
			name: "ipip_in_ip6_table_cannot_apply", family: ip6, hook: "input",
			exprs: rule(l4Eq(unix.IPPROTO_IPIP), drop()),
		},
		{
			name: "wireguard_rejected", family: inet, hook: "input",
			exprs:    rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 51820), []expr.Any{&expr.Reject{}}),
			wantRule: "udp dport 51820 reject", wantNeeds: []string{NeedWireGuard},
		},
		{
			// iptables-nft: -p tcp --dport 179 -j REJECT keeps REJECT as an x_tables target.
			name: "iptables_nft_reject_target", family: ip, hook: "input",
			exprs:    rule(l4Eq(tcp), portEq(2, expr.CmpOpEq, 179), counter(), []expr.Any{&expr.Target{Name: "REJECT"}}),
			wantRule: "tcp dport 179 reject", wantNeeds: []string{NeedBGP},
		},
		{
			// Everything UDP except VXLAN: that is WireGuard's loss.
			name: "udp_dport_not_4789", family: inet, hook: "input",
			exprs:    rule(l4Eq(udp), portEq(2, expr.CmpOpNeq, 4789), drop()),
			wantRule: "udp dport != 4789 drop", wantNeeds: []string{NeedWireGuard},
		},
		{
			name: "port_range", family: inet, hook: "input",
			exprs: rule(l4Eq(udp), []expr.Any{load(th, 2, 2),
				&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: port(4000), ToData: port(5000)}}, drop()),
			wantRule: "udp dport 4000-5000 drop", wantNeeds: []string{NeedVXLAN},
		},
		{
			name: "anonymous_port_set", family: inet, hook: "input",
			exprs:    rule(l4Eq(udp), []expr.Any{load(th, 2, 2), &expr.Lookup{SourceRegister: 1, SetName: "__set0"}}, drop()),
			wantRule: "udp dport { 4789, 8472 } drop", wantNeeds: []string{NeedVXLAN},
		},
		{
			name: "interval_set", family: inet, hook: "input",
			exprs:    rule(l4Eq(udp), []expr.Any{load(th, 2, 2), &expr.Lookup{SourceRegister: 1, SetName: "__set1"}}, drop()),
			wantRule: "udp dport { 51000-52000 } drop", wantNeeds: []string{NeedWireGuard},
		},
		{
			name: "named_set", family: inet, hook: "input",
			exprs:    rule(l4Eq(tcp), []expr.Any{load(th, 2, 2), &expr.Lookup{SourceRegister: 1, SetName: "blocked"}}, drop()),
			wantRule: "tcp dport @blocked drop", wantNeeds: []string{NeedBGP},
		},
		{
			name: "unreadable_set_is_conditional", family: inet, hook: "input",
			exprs:    rule(l4Eq(tcp), []expr.Any{load(th, 2, 2), &expr.Lookup{SourceRegister: 1, SetName: "gone"}}, drop()),
			wantRule: "tcp dport @gone drop", wantNeeds: []string{NeedBGP}, wantConditional: true,
		},
		{
			name: "interface_makes_it_conditional", family: inet, hook: "input",
			exprs:    rule(ifnameEq(expr.MetaKeyIIFNAME, "eth0"), l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), drop()),
			wantRule: `iifname "eth0" udp dport 4789 drop`, wantNeeds: []string{NeedVXLAN}, wantConditional: true,
		},
		{
			name: "source_prefix", family: ip, hook: "input",
			exprs: rule([]expr.Any{load(expr.PayloadBaseNetworkHeader, 12, 4),
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 0, 0}}},
				l4Eq(tcp), portEq(2, expr.CmpOpEq, 179), drop()),
			wantRule: "ip saddr 10.1.0.0/16 tcp dport 179 drop", wantNeeds: []string{NeedBGP}, wantConditional: true,
		},
		{
			// Encapsulation and BGP end at the node: a forward rule cannot touch them.
			name: "forward_hook_spares_bgp", family: inet, hook: "forward",
			exprs: rule(l4Eq(tcp), portEq(2, expr.CmpOpEq, 179), drop()),
		},
		{
			name: "counting_only", family: inet, hook: "input",
			exprs: rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), counter()),
		},
		{
			name: "accepting", family: inet, hook: "input",
			exprs: rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), counter(), accept()),
		},
		{
			name: "jump_is_not_a_drop", family: inet, hook: "input",
			exprs: rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "x"}}),
		},
		{
			name: "other_protocol", family: inet, hook: "input",
			exprs: rule(l4Eq(udp), portEq(2, expr.CmpOpEq, 53), drop()),
		},
		{
			// Catch-alls drop what earlier rules did not accept, which this reader does not follow.
			name: "catch_all_drop", family: inet, hook: "input",
			exprs: rule(counter(), drop()),
		},
		{
			name: "ct_state_invalid", family: inet, hook: "input",
			exprs: rule([]expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{1, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}}, drop()),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := parseRule(tc.exprs)
			needs, conditional := p.judge(tc.family, tc.hook, sets)
			if tc.wantRule == "" {
				if len(needs) > 0 {
					t.Errorf("rule %q reported with needs %v; want it not reported", p.describe(tc.family, sets), needs)
				}
				return
			}
			if got := p.describe(tc.family, sets); got != tc.wantRule {
				t.Errorf("rule = %q; want %q", got, tc.wantRule)
			}
			if !slices.Equal(needs, tc.wantNeeds) {
				t.Errorf("needs = %v; want %v", needs, tc.wantNeeds)
			}
			if conditional != tc.wantConditional {
				t.Errorf("conditional = %v; want %v", conditional, tc.wantConditional)
			}
		})
	}
}

func TestHookName(t *testing.T) {
	for _, tc := range []struct {
		family nftables.TableFamily
		hook   *nftables.ChainHook
		want   string
	}{
		{nftables.TableFamilyINet, nftables.ChainHookInput, "input"},
		{nftables.TableFamilyIPv4, nftables.ChainHookForward, "forward"},
		{nftables.TableFamilyNetdev, nftables.ChainHookIngress, "ingress"},
		{nftables.TableFamilyINet, nil, ""},
	} {
		if got := hookName(tc.family, tc.hook); got != tc.want {
			t.Errorf("hookName(%s, %v) = %q; want %q", familyName(tc.family), tc.hook, got, tc.want)
		}
	}
}
