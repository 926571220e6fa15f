package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"podpath/internal/nsenter"
	"podpath/internal/nstest"
	"podpath/internal/probe"
)

// The controller talks to an agent across a router that silently drops
// every packet above 1400 bytes, both ways (its links carry 1400, and it
// sends no "fragmentation needed"). Full-size TCP segments vanish there, as
// the sink's upload proves; the controller's calls, with a large request
// and a large answer, still complete, and so does a plain HTTP client's
// call with a large answer (as the API server's Pod proxy makes one).
func TestControlChannelCrossesABlackHole(t *testing.T) {
	nstest.RequireRoot(t)
	prefix := fmt.Sprintf("pp-ctl-%d-", os.Getpid())
	near, router, far := nstest.Named(t, prefix+"near"), nstest.New(t), nstest.New(t)
	nstest.Veth(t, near, "eth0", "10.97.1.1/24", router, "near", "10.97.1.254/24")
	nstest.Veth(t, router, "far", "10.97.2.254/24", far, "eth0", "10.97.2.1/24")
	nstest.DefaultRoute(t, near, "10.97.1.254")
	nstest.DefaultRoute(t, far, "10.97.2.254")
	nstest.SetMTU(t, router, "near", 1400)
	nstest.SetMTU(t, router, "far", 1400)
	nstest.Forwarding(t, router)
	suppressFragNeeded(t, router)

	// The agent on the far side, with host facts far larger than a segment.
	facts := strings.Repeat("x", 64<<10)
	a, err := New(Config{Name: "far", Role: "host", Token: token,
		Facts: func(context.Context) (any, error) { return map[string]string{"blob": facts}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var pc net.PacketConn
	nstest.In(t, far, func() (err error) {
		if ln, err = net.Listen("tcp", "10.97.2.1:7946"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", "10.97.2.1:7946")
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Serve(ctx, ln, pc) }()
	addr := "10.97.2.1:7946"

	// The black hole is real: a full-size upload stalls in it.
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		return nsenter.DialContext(ctx, prefix+"near", &net.Dialer{}, network, a)
	}
	if tr := probe.Upload(ctx, dial, addr, probe.SinkAuth{Token: token, Peer: "far"}, 300_000, 0); !tr.Stalled {
		t.Fatalf("300 KB upload through the router: %+v; want it stalled (the router drops large packets)", tr)
	}

	c := NewClient("far", addr, token, prefix+"near")
	peers := make([]Peer, 500) // a PUT of about 30 KB
	for i := range peers {
		peers[i] = Peer{Name: fmt.Sprintf("node%d", i), Address: fmt.Sprintf("10.97.3.%d:7946", i%250)}
	}
	cctx, ccancel := context.WithTimeout(ctx, ClientTimeout)
	defer ccancel()
	if err := c.SetPeers(cctx, peers); err != nil {
		t.Errorf("PUT /v1/peers (30 KB) through the black hole: %v", err)
	}
	got, err := c.Facts(cctx)
	if err != nil || len(got) < len(facts) {
		t.Errorf("GET /v1/facts (64 KB) through the black hole: %d bytes, %v", len(got), err)
	}

	// A client podpath does not control (full-size segments of its own).
	plain := &net.Dialer{Timeout: ClientTimeout}
	hc := &Client{Name: "far", Addr: addr, base: "http://" + addr, token: token, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return nsenter.DialContext(ctx, prefix+"near", plain, network, a)
		}}}}
	if got, err := hc.Facts(cctx); err != nil || len(got) < len(facts) {
		t.Errorf("GET /v1/facts from a client without the clamp: %d bytes, %v; want the answer in small segments anyway", len(got), err)
	}
}

// suppressFragNeeded makes the router send no ICMP "fragmentation needed".
func suppressFragNeeded(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Name: "router", Family: nftables.TableFamilyIPv4})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "out", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3, 4}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}
