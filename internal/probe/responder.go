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
	// PerSourceRate is one sender's share: no single address, flooding,
	// can take the answers meant for the others.
	PerSourceRate  = 5000
	PerSourceBurst = 1000
	// StrangerRate is what all senders that are not peers get together,
	// when the Responder knows its peers (Peer set).
	StrangerRate  = 5000
	StrangerBurst = 2000
	// maxSources bounds the per-source table; past it the table starts
	// afresh (a spoofed-source flood then still meets the total budgets).
	maxSources = 4096
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
	Allow func(from netip.Addr) bool
	// Peer, when set, names the senders charged to Limiter; everyone
	// else shares StrangerRate, so a flood from addresses that are not
	// peers cannot take the peers' answers. nil: everyone to Limiter.
	Peer     func(from netip.Addr) bool
	Answered atomic.Uint64
	Dropped  atomic.Uint64 // not a probe, over the rate, or a sender not allowed
	// OverRate counts peers' probes not answered for the rate alone: load
	// the sender reads as loss. Strangers over their own budget are not
	// counted: they cannot take the peers' answers.
	OverRate atomic.Uint64
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
	strangers := rate.NewLimiter(StrangerRate, StrangerBurst)
	sources := map[netip.Addr]*rate.Limiter{}
	// allow charges one answer to ip's own budget, then to its group's.
	allow := func(ip netip.Addr) bool {
		src := sources[ip]
		if src == nil {
			if len(sources) >= maxSources {
				clear(sources)
			}
			src = rate.NewLimiter(PerSourceRate, PerSourceBurst)
			sources[ip] = src
		}
		peer := r.Peer == nil || r.Peer(ip)
		if !src.Allow() {
			if peer {
				r.OverRate.Add(1)
			}
			return false
		}
		if !peer {
			return strangers.Allow()
		}
		if !lim.Allow() {
			r.OverRate.Add(1)
			return false
		}
		return true
	}
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
		if err != nil {
			r.Dropped.Add(1)
			continue
		}
		if !allow(ip) {
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
