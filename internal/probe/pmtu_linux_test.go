package probe

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"podpath/internal/nstest"
)

// routed is a prober namespace and a responder namespace with a router
// namespace between them, each side on its own /24:
//
//	prober 10.99.1.1 ── 10.99.1.254 router 10.99.2.254 ── 10.99.2.1 responder
type routed struct {
	prober, router, responder netns.NsHandle
	peer                      netip.AddrPort
}

var (
	routerNear = netip.MustParseAddr("10.99.1.254")
	responder  = netip.MustParseAddr("10.99.2.1")
)

func newRouted(t *testing.T) *routed {
	t.Helper()
	r := &routed{prober: nstest.New(t), router: nstest.New(t), responder: nstest.New(t)}
	nstest.Veth(t, r.prober, "eth0", "10.99.1.1/24", r.router, "near", "10.99.1.254/24")
	nstest.Veth(t, r.router, "far", "10.99.2.254/24", r.responder, "eth0", "10.99.2.1/24")
	nstest.DefaultRoute(t, r.prober, "10.99.1.254")
	nstest.DefaultRoute(t, r.responder, "10.99.2.254")
	nstest.Forwarding(t, r.router)
	var pc net.PacketConn
	nstest.In(t, r.responder, func() (err error) {
		pc, err = net.ListenPacket("udp4", responder.String()+":0")
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go (&Responder{}).Serve(ctx, pc)
	r.peer = netip.AddrPortFrom(responder, uint16(pc.LocalAddr().(*net.UDPAddr).Port))
	return r
}

// setMTU sets the MTU of the router's link towards the responder and of
// the responder's own: the router forwards no more than mtu bytes.
func (r *routed) setMTU(t *testing.T, mtu int) {
	t.Helper()
	nstest.SetMTU(t, r.router, "far", mtu)
	nstest.SetMTU(t, r.responder, "eth0", mtu)
}

// routerRules replaces the router's nftables rules with these.
func (r *routed) routerRules(t *testing.T, rules ...[]expr.Any) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(r.router)))
	if err != nil {
		t.Fatal(err)
	}
	c.FlushRuleset()
	table := c.AddTable(&nftables.Table{Name: "router", Family: nftables.TableFamilyIPv4})
	accept := nftables.ChainPolicyAccept
	for _, hook := range []nftables.ChainHook{*nftables.ChainHookForward, *nftables.ChainHookOutput} {
		chain := c.AddChain(&nftables.Chain{Name: "h" + string(rune('0'+hook)), Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: &hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		for _, exprs := range rules {
			if (hook == *nftables.ChainHookOutput) == (exprs[0] == nil) {
				c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs[1:]})
			}
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("router nftables: %v", err)
	}
}

// On the router's output: it sends no "fragmentation needed" (rule[0] nil marks an output rule).
var noFragNeeded = []expr.Any{nil,
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3, 4}},
	&expr.Verdict{Kind: expr.VerdictDrop},
}

// forwardLongerThan drops forwarded packets above n bytes, silently.
func forwardLongerThan(n int) []expr.Any {
	return []expr.Any{&expr.Counter{},
		&expr.Meta{Key: expr.MetaKeyLEN, Register: 1},
		// meta length is host order; compare big-endian bytes, as nft does.
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(n))},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

func (r *routed) search(t *testing.T) PMTUResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *Conn
	nstest.In(t, r.prober, func() (err error) {
		c, err = Dial(ctx, r.peer)
		return err
	})
	defer c.Close()
	var res PMTUResult
	nstest.In(t, r.prober, func() (err error) {
		res, err = c.PathMTU(ctx) // InterfaceMTU asks netlink in the caller's namespace
		return err
	})
	return res
}

// The size search is exact whatever the router says: "fragmentation
// needed" that arrives (and is then cached by the kernel), that is too
// large, or that never comes.
func TestPathMTUThroughARouter(t *testing.T) {
	nstest.RequireRoot(t)
	r := newRouted(t)
	r.setMTU(t, 1400)

	// ICMP arrives: the kernel now holds a path MTU of 1400 for the peer,
	// and every later send on the socket first reports that error.
	got := r.search(t)
	if got.PathMTU != 1400 || got.Limit != "icmp" || got.ICMPMTU != 1400 || got.ICMPFrom != routerNear.String() || got.IfaceMTU != 1500 {
		t.Errorf("router link 1400, ICMP on: %+v; want 1400 exactly, limit icmp from %s, interface 1500", got, routerNear)
	}
	// Again, with the path MTU cached (ip route get says mtu 1400 for ten minutes).
	if got := r.search(t); got.PathMTU != 1400 || got.IfaceMTU != 1500 {
		t.Errorf("router link 1400, path MTU cached: %+v; want 1400 with the interface's 1500 as the bound", got)
	}
	// The link carries 1500 again while the kernel still caches 1400: the
	// search must see past the cache.
	r.setMTU(t, 1500)
	if got := r.search(t); got.PathMTU != 1500 || got.Limit != "none" {
		t.Errorf("router link back to 1500, stale cache of 1400: %+v; want 1500 (limit none)", got)
	}

	// A router whose ICMP says 1450 while only 1400 cross beyond it.
	r.setMTU(t, 1450)
	r.routerRules(t, forwardLongerThan(1400))
	if got := r.search(t); got.PathMTU != 1400 || got.Limit != "silent" || got.ICMPMTU != 1450 {
		t.Errorf("ICMP says 1450, 1400 cross: %+v; want 1400 exactly, limit silent, ICMP MTU 1450 reported", got)
	}

	// No ICMP at all.
	r.setMTU(t, 1400)
	r.routerRules(t, noFragNeeded)
	if got := r.search(t); got.PathMTU != 1400 || got.Limit != "silent" || got.ICMPMTU != 0 {
		t.Errorf("router link 1400, frag-needed suppressed: %+v; want 1400 exactly, limit silent, no ICMP", got)
	}
	// Where they vanish: the router still says "time exceeded", so large
	// probes are seen to reach it (hop 1) and not the peer (hop 2).
	if got := r.locate(t, 1401); got.Hops != 2 || got.After != 1 || got.At != routerNear.String() || got.Silent {
		t.Errorf("locate 1401 bytes behind the router: %+v; want the peer 2 hops away, large probes reaching hop 1 (%s)", got, routerNear)
	}
	if got := r.locate(t, 1400); got.After != 2 {
		t.Errorf("locate 1400 bytes (they cross): %+v; want them to reach the peer, hop 2", got)
	}
	// The router's "time exceeded" bucket (a burst of 6, then one a
	// second) emptied by locating three times in a row: the fourth asks
	// the quiet hop again a second later, and reads its one answer right.
	for range 3 {
		r.locate(t, 1401)
	}
	if got := r.locate(t, 1401); got.After != 1 || got.At != routerNear.String() || got.Gap {
		t.Errorf("locate with the router's ICMP bucket empty: %+v; want large probes reaching hop 1 (%s), asked again", got, routerNear)
	}
	// A router that answers nothing at all: where is not known.
	r.routerRules(t, noFragNeeded, noTimeExceeded)
	if got := r.locate(t, 1401); got.Hops != 2 || got.After != 0 || !got.Silent {
		t.Errorf("locate behind a silent router: %+v; want the peer 2 hops away, silent", got)
	}
}

// noTimeExceeded: the router sends no "time exceeded" either.
var noTimeExceeded = []expr.Any{nil,
	&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
	&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{11}},
	&expr.Verdict{Kind: expr.VerdictDrop},
}

func (r *routed) locate(t *testing.T, size int) Location {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *Conn
	var loc Location
	nstest.In(t, r.prober, func() (err error) {
		if c, err = Dial(ctx, r.peer); err != nil {
			return err
		}
		if _, err = c.Ping(ctx, 3, 0, 0); err != nil { // as the agent does first: the round trip sets the waits
			return err
		}
		loc, err = c.Locate(ctx, size)
		return err
	})
	c.Close()
	return loc
}

// Two ICMP series at once from one process, over raw sockets (the test
// namespace allows no unprivileged ping sockets): each counts only its own
// peer's replies, so a silent peer stays silent.
func TestConcurrentICMPSeries(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	nstest.In(t, ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("1 0"), 0o644)
	})
	// 10.96.0.2's frames go to a MAC nobody has: no answer, no error.
	h := nstest.Handle(t, ns)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"v0", "v1"} {
		l, _ := h.LinkByName(n)
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	v0, _ := h.LinkByName("v0")
	a, _ := netlink.ParseAddr("10.96.0.1/24")
	if err := h.AddrAdd(v0, a); err != nil {
		t.Fatal(err)
	}
	nobody, _ := net.ParseMAC("02:00:00:00:00:01")
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: v0.Attrs().Index, IP: net.ParseIP("10.96.0.2"), HardwareAddr: nobody, State: netlink.NUD_PERMANENT}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var live, silent Stats
	for _, target := range []struct {
		addr string
		into *Stats
	}{{"127.0.0.1", &live}, {"10.96.0.2", &silent}} {
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			if err := netns.Set(ns); err != nil {
				t.Error(err)
				return
			}
			st, err := ICMPPing(ctx, netip.MustParseAddr(target.addr), 20, 5*time.Millisecond, 0)
			if err != nil {
				t.Error(err)
			}
			*target.into = st
		})
	}
	wg.Wait()
	if live.LossPct != 0 {
		t.Errorf("ICMP to loopback: %.0f%% lost; want none", live.LossPct)
	}
	if silent.LossPct != 100 {
		t.Errorf("ICMP to a silent address beside another series: %.0f%% lost (%d replies); want 100%%: the other series' replies are not its own", silent.LossPct, silent.Received)
	}
}
