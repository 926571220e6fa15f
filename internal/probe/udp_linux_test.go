package probe

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"podpath/internal/nstest"
)

// A netfilter rule on the sending host makes send() fail with EPERM. One
// that drops at random (a rate limit, a lossy policy, the lab's loss fault)
// is loss, not a dead path; one that drops everything says so.
func TestPingThroughLocalFirewallDrops(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	var pc net.PacketConn
	nstest.In(t, ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go (&Responder{}).Serve(ctx, pc)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	dial := func() *Conn {
		var c *Conn
		nstest.In(t, ns, func() (err error) {
			c, err = Dial(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
			return err
		})
		t.Cleanup(func() { c.Close() })
		return c
	}

	dropProbes(t, ns, port, 50)
	st, err := dial().Ping(ctx, 40, 0, 0)
	if err != nil || st.Sent != 40 || st.Received == 0 || st.Received == 40 {
		t.Errorf("40 echoes, half dropped by a local rule: sent %d, answered %d, %v; want all 40 sent, some answered, no error", st.Sent, st.Received, err)
	}

	dropProbes(t, ns, port, 100)
	st, err = dial().Ping(ctx, 5, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "local firewall rule refused 5 of 5") || st.Sent != 5 || st.Received != 0 {
		t.Errorf("5 echoes, all dropped by a local rule: sent %d, answered %d, %v; want 5 lost and the rule named", st.Sent, st.Received, err)
	}
}

// dropProbes replaces ns's output rules with one that drops pct% of the UDP
// datagrams to port at random.
func dropProbes(t *testing.T, ns netns.NsHandle, port, pct int) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: "podpath_test", Family: nftables.TableFamilyINet}
	c.FlushRuleset()
	c.AddTable(table)
	policy := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "out", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(pct))},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables in the test namespace: %v", err)
	}
}
