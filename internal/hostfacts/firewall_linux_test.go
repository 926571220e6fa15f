package hostfacts

import (
	"encoding/binary"
	"net/netip"
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
			// The node's own side is known: VXLAN arrives on eth0 here.
			name: "interface_of_the_underlay", family: inet, hook: "input",
			exprs:    rule(ifnameEq(expr.MetaKeyIIFNAME, "eth0"), l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), drop()),
			wantRule: `iifname "eth0" udp dport 4789 drop`, wantNeeds: []string{NeedVXLAN},
		},
		{
			name: "another_interface_spares_it", family: inet, hook: "input",
			exprs: rule(ifnameEq(expr.MetaKeyIIFNAME, "eth1"), l4Eq(udp), portEq(2, expr.CmpOpEq, 4789), drop()),
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
			// A bare drop in input stops everything that arrives for the node.
			name: "catch_all_drop_in_input", family: inet, hook: "input",
			exprs:    rule(counter(), drop()),
			wantRule: "drop", wantNeeds: []string{NeedVXLAN, NeedBGP, NeedIPIP, NeedICMPFragNeeded, NeedICMP, NeedWireGuard},
		},
		{
			name: "ct_state_invalid", family: inet, hook: "input",
			exprs: rule([]expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{1, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}}, drop()),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := &ruleset{sets: map[string]map[string]*nftSet{}}
			c := baseChain(rs, tc.family, "t", "c", tc.hook, 0, "accept", tc.exprs)
			rs.sets[tableKey(c.ref)] = sets
			drops := rs.drops(testView)
			if tc.wantRule == "" {
				if len(drops) > 0 {
					t.Errorf("drops %+v; want none", drops)
				}
				return
			}
			if len(drops) != 1 {
				t.Fatalf("drops %+v; want one", drops)
			}
			d := drops[0]
			if d.Rule != tc.wantRule {
				t.Errorf("rule = %q; want %q", d.Rule, tc.wantRule)
			}
			if needs := append(slices.Clone(d.Needs), d.Possible...); !slices.Equal(needs, tc.wantNeeds) {
				t.Errorf("needs = %v (and perhaps %v); want %v", d.Needs, d.Possible, tc.wantNeeds)
			}
			if d.Conditional != tc.wantConditional {
				t.Errorf("conditional = %v; want %v", d.Conditional, tc.wantConditional)
			}
		})
	}
}

// testView is a VXLAN node with one Pod.
var testView = hostView{underlay: "eth0", node: netip.MustParseAddr("198.18.0.1"), tunnel: "vxlan.calico", vxlanPort: 4789,
	workload: "cali0123456789a", pod: netip.MustParseAddr("10.233.64.1"), ipv6: true}

// baseChain adds a base chain on hook with one rule per exprs.
func baseChain(rs *ruleset, family nftables.TableFamily, table, name, hook string, prio int32, policy string, rules ...[]expr.Any) *fwChain {
	c := regularChain(rs, family, table, name, rules...)
	c.hook, c.prio, c.policy = hook, prio, policy
	return c
}

func regularChain(rs *ruleset, family nftables.TableFamily, table, name string, rules ...[]expr.Any) *fwChain {
	c := &fwChain{ref: chainRef{family, table, name}}
	for i, r := range rules {
		c.rules = append(c.rules, fwRule{parsedRule: parseRule(r), handle: uint64(i + 1)})
	}
	rs.add(c)
	return c
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

func jumpTo(kind expr.VerdictKind, chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: kind, Chain: chain}}
}

func returns() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}} }

// ctState is `ct state <bits>`, as nft compiles it.
func ctState(bits uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}}
}

func prefixOf(base expr.PayloadBase, off uint32, p string) []expr.Any {
	pf := netip.MustParsePrefix(p)
	mask := make([]byte, 4)
	for i := range pf.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{load(base, off, 4),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pf.Addr().AsSlice()}}
}

// Whole rulesets, walked as the kernel walks them: policies, jumps,
// returns, gotos, several base chains on one hook, and tests the walk
// cannot evaluate.
func TestFirewallWalk(t *testing.T) {
	const (
		inet = nftables.TableFamilyINet
		ip   = nftables.TableFamilyIPv4
	)
	type want struct {
		chain, rule     string
		needs, possible []string
		conditional     bool
	}
	bridged := testView
	bridged.underlay, bridged.bridged, bridged.port = "br0", true, "eth0"
	for _, tc := range []struct {
		name  string
		view  *hostView // default testView
		build func(*ruleset)
		want  []want
	}{
		{
			// A netdev ingress chain: it sees the frames first. Its device is
			// not read, so it stops them only perhaps.
			name: "netdev_ingress_drop",
			build: func(rs *ruleset) {
				baseChain(rs, nftables.TableFamilyNetdev, "t", "in", "ingress", -500, "accept", rule(l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 4789), drop()))
			},
			want: []want{{"in", "udp dport 4789 drop", nil, []string{NeedVXLAN}, true}},
		},
		{
			// The node's address is on a bridge (br0, its NIC eth0 enslaved):
			// a bridge-family input chain sees what arrives for the node.
			name: "bridge_input_drop_on_a_bridged_underlay",
			view: &bridged,
			build: func(rs *ruleset) {
				baseChain(rs, nftables.TableFamilyBridge, "t", "in", "input", 0, "accept",
					rule(ifnameEq(expr.MetaKeyIIFNAME, "eth0"), l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 4789), drop()))
			},
			want: []want{{"in", `iifname "eth0" udp dport 4789 drop`, []string{NeedVXLAN}, nil, false}},
		},
		{
			// The same table on a node whose underlay is not a bridge: the
			// bridge layer never sees its traffic.
			name: "bridge_table_on_a_routed_underlay",
			build: func(rs *ruleset) {
				baseChain(rs, nftables.TableFamilyBridge, "t", "in", "input", 0, "accept",
					rule(l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 4789), drop()))
			},
		},
		{
			// Docker's filter table (the lab's forward-policy-drop fault):
			// only docker0's traffic is accepted, Pod traffic meets the policy.
			name: "docker_forward_policy_drop",
			build: func(rs *ruleset) {
				baseChain(rs, ip, "filter", "FORWARD", "forward", 0, "drop",
					rule(counter(), jumpTo(expr.VerdictJump, "DOCKER-USER")), rule(counter(), jumpTo(expr.VerdictJump, "DOCKER-FORWARD")))
				regularChain(rs, ip, "filter", "DOCKER-USER", rule(counter(), returns()))
				regularChain(rs, ip, "filter", "DOCKER-FORWARD",
					rule(ifnameEq(expr.MetaKeyOIFNAME, "docker0"), ctState(ctRelated|ctEstablished), accept()),
					rule(ifnameEq(expr.MetaKeyIIFNAME, "docker0"), accept()))
			},
			want: []want{{"FORWARD", "policy drop", []string{NeedICMPFragNeeded, NeedICMP, NeedPodTraffic, NeedDNS}, nil, false}},
		},
		{
			// DNS dropped on its way into the node's Pods (a CoreDNS Pod
			// there): that service's traffic, not the Pod network's.
			name: "dns_to_pods_dropped",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "t", "fwd", "forward", 0, "accept",
					rule(l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 53), counter(), drop()))
			},
			want: []want{{"fwd", "udp dport 53 drop", []string{NeedDNS}, nil, false}},
		},
		{
			// A rule that drops at random (the lab's loss fault): it may drop
			// anything leaving by eth0, and reads as nft prints it.
			name: "random_drop",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "t", "post", "postrouting", 0, "accept", rule(ifnameEq(expr.MetaKeyOIFNAME, "eth0"), []expr.Any{
					&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
					&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
					&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{0, 0, 0, 20}}}, drop()))
			},
			want: []want{{"post", `oifname "eth0" numgen random mod 100 < 20 drop`, nil,
				[]string{NeedVXLAN, NeedBGP, NeedIPIP, NeedICMPFragNeeded, NeedICMP}, true}},
		},
		{
			// Calico's own rules run first and accept its workloads' traffic.
			name: "calico_accepts_before_the_policy",
			build: func(rs *ruleset) {
				baseChain(rs, ip, "filter", "FORWARD", "forward", 0, "drop", rule(jumpTo(expr.VerdictJump, "cali-FORWARD")))
				cali := make([]byte, 4)
				copy(cali, "cali")
				regularChain(rs, ip, "filter", "cali-FORWARD",
					rule(metaEq(expr.MetaKeyIIFNAME, cali...), accept()),
					rule(metaEq(expr.MetaKeyOIFNAME, cali...), accept()))
			},
		},
		{
			name: "established_first_then_everything_dropped",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "filter", "input", "input", 0, "drop", rule(ctState(ctRelated|ctEstablished), accept()))
			},
			want: []want{{"input", "policy drop", []string{NeedVXLAN, NeedBGP, NeedIPIP, NeedICMP, NeedWireGuard}, nil, false}},
		},
		{
			// The far end's address is unknown: an accept on it may or may
			// not apply, so what the policy drops after it is conditional.
			// The Pod's own address is known: its traffic is accepted.
			name: "accept_on_an_unknown_address",
			build: func(rs *ruleset) {
				baseChain(rs, ip, "filter", "FORWARD", "forward", 0, "drop",
					rule(prefixOf(expr.PayloadBaseNetworkHeader, 12, "10.0.0.0/8"), accept()),
					rule(prefixOf(expr.PayloadBaseNetworkHeader, 16, "10.0.0.0/8"), accept()))
			},
		},
		{
			name: "accept_on_an_unknown_address_for_one_way",
			build: func(rs *ruleset) {
				baseChain(rs, ip, "filter", "FORWARD", "forward", 0, "drop",
					rule(prefixOf(expr.PayloadBaseNetworkHeader, 12, "10.0.0.0/8"), accept()))
			},
			want: []want{{"FORWARD", "policy drop", nil, []string{NeedICMPFragNeeded, NeedICMP, NeedPodTraffic, NeedDNS}, true}},
		},
		{
			// VXLAN accepted from the node network (the far end's address
			// is unknown): the policy drops it only perhaps. BGP, which
			// nothing accepts, for certain.
			name: "vxlan_allowed_from_the_node_network",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "filter", "input", "input", 0, "drop",
					rule(ctState(ctRelated|ctEstablished), accept()),
					rule(prefixOf(expr.PayloadBaseNetworkHeader, 12, "198.18.0.0/16"), l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 4789), accept()))
			},
			want: []want{{"input", "policy drop", []string{NeedBGP, NeedIPIP, NeedICMP, NeedWireGuard}, []string{NeedVXLAN}, false}},
		},
		{
			// An accept in one base chain ends only that chain.
			name: "a_later_base_chain_still_drops",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "a", "in", "input", 0, "accept", rule(accept()))
				baseChain(rs, inet, "b", "in", "input", 10, "accept", rule(l4Eq(unix.IPPROTO_UDP), portEq(2, expr.CmpOpEq, 4789), drop()))
			},
			want: []want{{"in", "udp dport 4789 drop", []string{NeedVXLAN}, nil, false}},
		},
		{
			// goto does not come back: the chain it leaves ends with it.
			name: "goto_then_return_reaches_the_policy",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "t", "in", "input", 0, "drop",
					rule(l4Eq(unix.IPPROTO_UDP), jumpTo(expr.VerdictGoto, "udp")),
					rule(accept()))
				regularChain(rs, inet, "t", "udp", rule(portEq(2, expr.CmpOpEq, 53), accept()))
			},
			want: []want{{"in", "policy drop", []string{NeedVXLAN, NeedWireGuard}, nil, false}},
		},
		{
			// The mark is 0 until a rule sets it; after that it is unknown.
			name: "mark_tests",
			build: func(rs *ruleset) {
				baseChain(rs, inet, "t", "in", "input", 0, "drop",
					rule(metaEq(expr.MetaKeyMARK, 0, 0, 1, 0), accept()), // mark 0x10000: not a fresh packet's
					rule(l4Eq(unix.IPPROTO_TCP), []expr.Any{&expr.Immediate{Register: 1, Data: []byte{0, 0, 1, 0}},
						&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}}),
					rule(metaEq(expr.MetaKeyMARK, 0, 0, 1, 0), accept()))
			},
			// TCP's mark was set: the accept on it may apply, so BGP only perhaps.
			want: []want{{"in", "policy drop", []string{NeedVXLAN, NeedIPIP, NeedICMPFragNeeded, NeedICMP, NeedWireGuard}, []string{NeedBGP}, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := &ruleset{sets: map[string]map[string]*nftSet{}}
			tc.build(rs)
			v := testView
			if tc.view != nil {
				v = *tc.view
			}
			drops := rs.drops(v)
			var got []want
			for _, d := range drops {
				got = append(got, want{d.Chain, d.Rule, d.Needs, d.Possible, d.Conditional})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("drops %+v; want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].chain != tc.want[i].chain || got[i].rule != tc.want[i].rule || !slices.Equal(got[i].needs, tc.want[i].needs) ||
					!slices.Equal(got[i].possible, tc.want[i].possible) || got[i].conditional != tc.want[i].conditional {
					t.Errorf("drop %+v; want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

// An IPv6-only node: no vxlan.calico, no IPv4 route. Its underlay, where
// peers' IPv6 VXLAN arrives and the IPv6 flows are walked from, is the
// link vxlan-v6.calico sends by, or the one holding its local address,
// or the one IPv6's default route leaves by.
func TestViewOfIPv6Only(t *testing.T) {
	links := []Link{
		{Name: "lo", Addresses: []string{"::1/128"}},
		{Name: "ens3", Addresses: []string{"fd00:198:18::2/64"}},
		{Name: "vxlan-v6.calico", VXLAN: &VXLAN{VNI: 4096, Port: 4789, Local: "fd00:198:18::2"}},
	}
	v := viewOf(links, nil)
	if v.underlay != "ens3" || !v.ipv6 || v.node.IsValid() {
		t.Errorf("view %+v; want underlay ens3 (holding vxlan-v6.calico's local address), IPv6, no IPv4 node address", v)
	}
	links[2].VXLAN = nil
	v = viewOf(links, []Route{{Family: "ipv6", Dst: "default", Dev: "ens3", Type: "unicast"}})
	if v.underlay != "ens3" {
		t.Errorf("underlay %q; want ens3, where IPv6's default route leaves", v.underlay)
	}
}
