package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Responder limits: enough for a path-MTU search to a hundred peers at
// once, far below what would make the agent a useful flood source.
const (
	ResponderRate  = 20000 // answers per second
	ResponderBurst = 4000
	// ResponderBuffer holds a round of jumbo probes while the responder
	// catches up; the kernel caps it at net.core.rmem_max unless root.
	ResponderBuffer = 4 << 20
)

// Responder answers probes on a UDP socket: the whole datagram echoed, or
// only its header when the probe asks for an acknowledgement. It never
// answers with more bytes than it received, answers nothing that is not a
// probe, and answers at most ResponderRate probes a second.
type Responder struct {
	Limiter *rate.Limiter // nil: ResponderRate/ResponderBurst
	// Allow, when set, names the senders that get answers: a temporary
	// port listener answers only the agent's peers, so that opening a port
	// does not open a reflector to the world. nil: every sender.
	Allow    func(from netip.Addr) bool
	Answered atomic.Uint64
	Dropped  atomic.Uint64 // not a probe, over the rate, or a sender not allowed
}

// Serve answers probes arriving on pc until ctx ends or pc is closed.
func (r *Responder) Serve(ctx context.Context, pc net.PacketConn) error {
	lim := r.Limiter
	if lim == nil {
		lim = rate.NewLimiter(ResponderRate, ResponderBurst)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		setReadBuffer(uc, ResponderBuffer)
	}
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	dg := newDatagrams(pc)
	buf := make([]byte, 65536)
	out := make([]byte, 65536)
	for {
		n, from, ip, err := dg.read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue // an ICMP error about an earlier answer
		}
		if r.Allow != nil && !r.Allow(ip) {
			r.Dropped.Add(1)
			continue
		}
		reply, err := Reply(buf[:n], out)
		if err != nil || !lim.Allow() {
			r.Dropped.Add(1)
			continue
		}
		if err := dg.write(reply, from); err == nil {
			r.Answered.Add(1)
		}
	}
}

// senderIP is the IP a datagram came from, IPv4 unmapped (a dual-stack
// socket sees IPv4 senders as ::ffff:a.b.c.d); invalid if unknown.
func senderIP(from net.Addr) netip.Addr {
	var raw net.IP
	switch a := from.(type) {
	case *net.UDPAddr:
		raw = a.IP
	case *net.IPAddr: // a raw ICMP socket's sender
		raw = a.IP
	default:
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(raw)
	return ip.Unmap()
}
