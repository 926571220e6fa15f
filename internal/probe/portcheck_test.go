package probe

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Linux routes all of 127/8 to lo: distinct addresses stand for distinct
// nodes, and a socket bound to one sends from it.
var (
	nodeA = netip.MustParseAddr("127.0.0.2")
	nodeB = netip.MustParseAddr("127.0.0.3")
)

// freePort is a port nothing holds on ip right now.
func freePort(t *testing.T, network string, ip netip.Addr) uint16 {
	t.Helper()
	addr := netip.AddrPortFrom(ip, 0).String()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// fullListener listens with a backlog of 0 and never accepts: once one
// connection waits in its queue the kernel drops further SYNs, which is
// what a drop rule looks like to the connecting side.
func fullListener(t *testing.T, ip netip.Addr) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip.As4()}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(ip, uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 2 { // fill the queue; the second may already hang
		c, err := net.DialTimeout("tcp", target.String(), 200*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return target
}

func TestCheckTCP(t *testing.T) {
	ctx := context.Background()
	dial := (&net.Dialer{}).DialContext
	ln, err := net.Listen("tcp", netip.AddrPortFrom(nodeB, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := netip.MustParseAddrPort(ln.Addr().String())
	refused := netip.AddrPortFrom(nodeB, freePort(t, "tcp", nodeB))
	filtered := fullListener(t, nodeB)
	for _, tc := range []struct {
		name   string
		target netip.AddrPort
		want   string
	}{
		{"open", open, PortOpen},
		{"refused", refused, PortRefused},
		{"filtered", filtered, PortFiltered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := CheckTCP(ctx, dial, tc.target)
			if r.State != tc.want || r.Proto != ProtoTCP || r.Port != int(tc.target.Port()) {
				t.Errorf("CheckTCP(%s) = %+v; want %s", tc.target, r, tc.want)
			}
			if took := time.Since(start); took > PortConnectTimeout+500*time.Millisecond {
				t.Errorf("CheckTCP(%s) took %s; bound is %s", tc.target, took, PortConnectTimeout)
			}
			answered := r.State == PortOpen || r.State == PortRefused
			if answered != (r.RTTMs > 0) || answered != (r.Error == "") {
				t.Errorf("CheckTCP(%s) = %+v: rttMs only with an answer, error only without", tc.target, r)
			}
		})
	}
}

// respond runs a responder on ip that answers only allowed senders.
func respond(t *testing.T, ip netip.Addr, allow func(netip.Addr) bool) (netip.AddrPort, *Responder) {
	t.Helper()
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	r := &Responder{Allow: allow}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Serve(ctx, pc); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return netip.MustParseAddrPort(pc.LocalAddr().String()), r
}

func TestCheckUDP(t *testing.T) {
	ctx := context.Background()
	onlyA := func(ip netip.Addr) bool { return ip == nodeA }
	open, _ := respond(t, nodeB, onlyA)
	t.Run("open", func(t *testing.T) {
		if r := CheckUDP(ctx, nodeA, open); r.State != PortOpen || r.RTTMs <= 0 || r.Proto != ProtoUDP {
			t.Errorf("CheckUDP from an allowed sender = %+v; want open with an RTT", r)
		}
	})
	t.Run("closed", func(t *testing.T) {
		// Loopback is exempt from ICMP rate limits: the port unreachable
		// always comes back.
		target := netip.AddrPortFrom(nodeB, freePort(t, "udp", nodeB))
		if r := CheckUDP(ctx, nodeA, target); r.State != PortClosed {
			t.Errorf("CheckUDP to a port nobody holds = %+v; want closed", r)
		}
	})
	t.Run("filtered_when_the_responder_does_not_know_us", func(t *testing.T) {
		// From 127.0.0.1 (the route's source for 127.0.0.3): not allowed.
		start := time.Now()
		r := CheckUDP(ctx, netip.Addr{}, open)
		if r.State != PortFiltered || !strings.Contains(r.Error, "no answer") {
			t.Errorf("CheckUDP from a sender the responder ignores = %+v; want filtered", r)
		}
		if took := time.Since(start); took < PortUDPAttempts*PortUDPInterval-50*time.Millisecond || took > 2*time.Second {
			t.Errorf("filtered after %s; want about %s", took, PortUDPAttempts*PortUDPInterval)
		}
	})
	t.Run("bounded_by_the_context", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if r := CheckUDP(cctx, netip.Addr{}, open); r.State != PortFiltered || !strings.Contains(r.Error, "not finished") {
			t.Errorf("CheckUDP past its context = %+v; want filtered, not finished", r)
		}
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Errorf("CheckUDP ran %s past a 100 ms context", took)
		}
	})
}

// A responder with Allow answers allowed senders only, and never with more
// than it received.
func TestResponderAllow(t *testing.T) {
	target, r := respond(t, nodeB, func(ip netip.Addr) bool { return ip == nodeA })
	exchange := func(from netip.Addr, req []byte) int {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(target))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			return -1
		}
		return n
	}
	echo := make([]byte, 300)
	Header{Seq: 1}.Put(echo)
	ack := make([]byte, 300)
	Header{Flags: FlagAckOnly, Seq: 2}.Put(ack)
	if n := exchange(nodeA, echo); n != len(echo) {
		t.Errorf("echo to an allowed sender: %d bytes; want %d", n, len(echo))
	}
	if n := exchange(nodeA, ack); n != HeaderLen {
		t.Errorf("acknowledgement to an allowed sender: %d bytes; want %d", n, HeaderLen)
	}
	if n := exchange(nodeA, make([]byte, 300)); n != -1 {
		t.Errorf("junk from an allowed sender answered with %d bytes", n)
	}
	other := netip.MustParseAddr("127.0.0.4")
	if n := exchange(other, echo); n != -1 {
		t.Errorf("probe from %s, not allowed, answered with %d bytes", other, n)
	}
	if got := r.Dropped.Load(); got != 2 {
		t.Errorf("dropped = %d; want 2 (junk, a sender not allowed)", got)
	}
}

// A responder on the unspecified address answers from the address the
// probe came to, not the one the route back prefers (127.0.0.1 here): the
// prober's connected socket takes nothing else.
func TestResponderAnswersFromTheProbedAddress(t *testing.T) {
	for _, tc := range []struct{ network, bind, to, from string }{
		{"udp4", "0.0.0.0:0", "127.0.0.3", "127.0.0.2"},
		{"udp", "[::]:0", "127.0.0.3", "127.0.0.2"}, // dual-stack: IPv4 as ::ffff:a.b.c.d
		{"udp6", "[::]:0", "::1", "::1"},
	} {
		t.Run(tc.network+"_"+tc.to, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.bind)
			if err != nil {
				t.Skipf("skipped: %s %s: %v", tc.network, tc.bind, err)
			}
			r := &Responder{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = r.Serve(ctx, pc); close(done) }()
			defer func() { cancel(); <-done }()
			port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
			target := netip.AddrPortFrom(netip.MustParseAddr(tc.to), port)
			if res := CheckUDP(ctx, netip.MustParseAddr(tc.from), target); res.State != PortOpen {
				t.Errorf("probe to %s from %s, responder on %s: %+v; want open", target, tc.from, tc.bind, res)
			}
		})
	}
}
