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

// The cheap check's socket goes from peer to peer: after Redial it
// probes the new peer only (the old one is gone and answers nothing), a
// refusal is the new peer's, and RouteMTU reads what the kernel would
// send there.
func TestRedialProbesTheNewPeer(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	nstest.SetMTU(t, ns, "lo", 1500)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listen := func() (net.PacketConn, netip.AddrPort) {
		var pc net.PacketConn
		nstest.In(t, ns, func() (err error) {
			pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
			return err
		})
		return pc, pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	pcA, a := listen()
	pcB, b := listen()
	actx, stopA := context.WithCancel(ctx)
	go (&Responder{}).Serve(actx, pcA)
	go (&Responder{}).Serve(ctx, pcB)
	from := netip.MustParseAddr("127.0.0.1")
	var c *Conn
	nstest.In(t, ns, func() (err error) {
		c, err = DialFrom(ctx, from, a)
		return err
	})
	defer c.Close()
	small := MinProbeSize(false)
	round := func(who string) RoundResult {
		t.Helper()
		rr, err := c.Round(ctx, []int{small, 1500}, 1)
		if err != nil {
			t.Fatalf("round to %s: %v", who, err)
		}
		return rr
	}
	if m, err := c.RouteMTU(); err != nil || m != 1500 {
		t.Errorf("RouteMTU over a 1500-byte loopback: %d, %v; want 1500", m, err)
	}
	if rr := round("A"); !rr.Acked[small] || !rr.Acked[1500] {
		t.Fatalf("peer A answered %v; want both sizes", rr.Acked)
	}
	stopA()
	pcA.Close()
	if err := c.Redial(b); err != nil {
		t.Fatal(err)
	}
	if c.From() != from {
		t.Errorf("after Redial the socket is from %s; want %s", c.From(), from)
	}
	if rr := round("B"); !rr.Acked[small] || !rr.Acked[1500] {
		t.Errorf("peer B after Redial answered %v; want both sizes", rr.Acked)
	}
	if err := c.Redial(a); err != nil { // nobody listens there now
		t.Fatal(err)
	}
	if rr := round("A, closed"); rr.Acked[small] || rr.Acked[1500] || !c.PeerRefused() {
		t.Errorf("the closed port after Redial: answered %v, refused %v; want nothing answered and the refusal seen", rr.Acked, c.PeerRefused())
	}
	if err := c.Redial(netip.MustParseAddrPort("[::1]:7946")); err == nil {
		t.Error("Redial of an IPv4 socket to an IPv6 peer succeeded; want an error")
	}
	if err := c.Redial(b); err != nil || c.PeerRefused() {
		t.Errorf("Redial back to B: %v, refused %v; want the old refusal forgotten", err, c.PeerRefused())
	}
}
