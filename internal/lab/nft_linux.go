package lab

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Each firewall fault owns one inet table in the node's namespace, so
// clearing a fault is deleting its table and never touches another's rules.
func faultTable(k FaultKind) string { return "podpath_" + strings.ReplaceAll(string(k), "-", "_") }

// nftRule is one rule: the chain it goes into and its match; the verdict is drop.
type nftRule struct {
	hook  *nftables.ChainHook
	match []expr.Any
}

func addDropTable(h *nsHandle, table string, rules []nftRule) error {
	return addTable(h, nftables.TableFamilyINet, table, rules)
}

func addTable(h *nsHandle, family nftables.TableFamily, table string, rules []nftRule) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.fd)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.name, err)
	}
	t := c.AddTable(&nftables.Table{Family: family, Name: table})
	accept := nftables.ChainPolicyAccept
	chains := map[*nftables.ChainHook]*nftables.Chain{}
	for _, r := range rules {
		ch, ok := chains[r.hook]
		if !ok {
			ch = c.AddChain(&nftables.Chain{Name: hookName(r.hook), Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: r.hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
			chains[r.hook] = ch
		}
		exprs := append(append([]expr.Any{}, r.match...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add nftables table %s in %s: %w", table, h.name, err)
	}
	return nil
}

func delTable(h *nsHandle, table string) error {
	return delTableFamily(h, nftables.TableFamilyINet, table)
}

func delTableFamily(h *nsHandle, family nftables.TableFamily, table string) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.fd)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.name, err)
	}
	c.DelTable(&nftables.Table{Family: family, Name: table})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete nftables table %s in %s: %w", table, h.name, err)
	}
	return nil
}

func hookName(h *nftables.ChainHook) string {
	switch *h {
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return "prerouting"
}

// l4proto matches `meta l4proto <p>`.
func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// portMatch matches `<proto> dport|sport <port>`; offset 0 is the source port, 2 the destination.
func portMatch(p byte, offset uint32, port uint16) []expr.Any {
	return append(l4proto(p),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	)
}

// ifname matches `iifname|oifname <dev>`.
func ifname(key expr.MetaKey, dev string) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

// ifnamePrefix matches `iifname|oifname "<prefix>*"`: nft compares only
// the prefix's bytes.
func ifnamePrefix(key expr.MetaKey, prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
	}
}

// longerThan matches `meta length > n`: in the bridge family that is the
// length of the IP packet, Ethernet header excluded.
func longerThan(n int) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyLEN, Register: 1},
		// meta length is host order; compare big-endian bytes, as nft does.
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(n))},
	}
}

// randomBelow matches `oifname <dev> numgen random mod 100 < pct`.
func randomBelow(dev string, pct int) []expr.Any {
	return append(ifname(expr.MetaKeyOIFNAME, dev),
		&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
		// numgen writes host order; nft compares big-endian bytes, as nft itself does.
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(pct))},
	)
}

// dockerFilter is what Docker leaves on a host (in nftables form, as
// iptables-nft stores it): table ip filter, chain FORWARD with policy drop,
// accepting only what goes to or comes from docker0. Kubernetes nodes that
// also run Docker meet it: Pod traffic forwarded between nodes falls
// through to the policy. The table has Docker's name, so the fault removes
// a table called filter in the node: lab nodes have none of their own.
func dockerFilter(h *nsHandle, on bool) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.fd)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.name, err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"}
	if !on {
		return delTableFamily(h, t.Family, t.Name)
	}
	c.AddTable(t)
	drop := nftables.ChainPolicyDrop
	fwd := c.AddChain(&nftables.Chain{Name: "FORWARD", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	user := c.AddChain(&nftables.Chain{Name: "DOCKER-USER", Table: t})
	dfwd := c.AddChain(&nftables.Chain{Name: "DOCKER-FORWARD", Table: t})
	jump := func(to string) []expr.Any {
		return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: to}}
	}
	verdict := func(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: jump(user.Name)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: jump(dfwd.Name)})
	c.AddRule(&nftables.Rule{Table: t, Chain: user, Exprs: []expr.Any{&expr.Counter{}, verdict(expr.VerdictReturn)}})
	// oifname "docker0" ct state related,established accept
	c.AddRule(&nftables.Rule{Table: t, Chain: dfwd, Exprs: append(ifname(expr.MetaKeyOIFNAME, "docker0"),
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitRELATED | expr.CtStateBitESTABLISHED), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Counter{}, verdict(expr.VerdictAccept))})
	// iifname "docker0" accept
	c.AddRule(&nftables.Rule{Table: t, Chain: dfwd, Exprs: append(ifname(expr.MetaKeyIIFNAME, "docker0"), &expr.Counter{}, verdict(expr.VerdictAccept))})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add Docker's filter table in %s: %w", h.name, err)
	}
	return nil
}
