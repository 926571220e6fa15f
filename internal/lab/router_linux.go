package lab

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The router between the subnets is the fabric namespace: each subnet's
// bridge carries the router's address on that subnet, so routed traffic
// leaves the router through the destination subnet's bridge device, and
// that device's MTU is what the router checks before forwarding
// (ip_forward: "fragmentation needed" for a larger packet with DF, IP
// fragments for one without). Traffic between nodes of one subnet is only
// bridged and meets no router.

// setRouterMTU gives every router interface mtu (on) or the lab's bridge
// MTU back (!on).
func setRouterMTU(s *Spec, fab *nsHandle, mtu int, on bool) error {
	for _, sn := range s.Subnets {
		if err := setMTU(fab, sn.Bridge, pick(on, mtu, MaxMTU)); err != nil {
			return err
		}
	}
	return nil
}

// icmpErrors matches the ICMP errors a router sends: destination
// unreachable (fragmentation needed among them), time exceeded, parameter
// problem. Only frag-needed when fragNeededOnly.
func icmpErrors(fragNeededOnly bool) []nftRule {
	out := nftables.ChainHookOutput
	if fragNeededOnly {
		return []nftRule{{out, append(l4proto(unix.IPPROTO_ICMP),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3, 4}},
		)}}
	}
	var rules []nftRule
	for _, typ := range []byte{3, 11, 12} {
		rules = append(rules, nftRule{out, append(l4proto(unix.IPPROTO_ICMP),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
		)})
	}
	return rules
}

// fragments matches IPv4 fragments in the bridge family: `ether type ip`
// and `ip frag-off & 0x3fff != 0` (more-fragments set, or an offset).
func fragments() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x08, 0x00}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x3f, 0xff}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0}},
	}
}

// dropFragments drops IPv4 fragments crossing the fabric's bridges: those
// bridged between nodes (forward) and those the router sends out after
// fragmenting (output).
func dropFragments(fab *nsHandle, on bool) error {
	table := faultTable(FaultDropFragments)
	if !on {
		return delTableFamily(fab, nftables.TableFamilyBridge, table)
	}
	return addTable(fab, nftables.TableFamilyBridge, table, []nftRule{
		{nftables.ChainHookForward, fragments()},
		{nftables.ChainHookOutput, fragments()},
	})
}
