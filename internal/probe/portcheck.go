package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Port check bounds. A node pair on one site answers in well under a
// millisecond; a second without an answer is a firewall, not a slow path.
const (
	// PortConnectTimeout bounds one TCP handshake of a port check.
	PortConnectTimeout = time.Second
	// PortUDPAttempts probes are sent PortUDPInterval apart, and the last
	// one gets PortUDPInterval to come back: one lost datagram is not a
	// blocked port.
	PortUDPAttempts = 3
	PortUDPInterval = 300 * time.Millisecond
)

// Protocols a port check speaks.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// States of a checked port.
const (
	PortOpen     = "open"     // TCP handshake done, or the UDP probe echoed
	PortRefused  = "refused"  // TCP: RST, nothing listens (or a firewall rejects with a reset)
	PortClosed   = "closed"   // UDP: ICMP port unreachable, nothing listens
	PortFiltered = "filtered" // no answer in time, or an ICMP error other than port unreachable
)

// PortResult is one checked port towards one peer.
type PortResult struct {
	Proto string  `json:"proto"`
	Port  int     `json:"port"`
	State string  `json:"state"`
	RTTMs float64 `json:"rttMs"` // until the answer (open, refused, closed); 0 without one
	Error string  `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// CheckTCP connects to target once, within PortConnectTimeout.
func CheckTCP(ctx context.Context, dial Dialer, target netip.AddrPort) PortResult {
	res := PortResult{Proto: ProtoTCP, Port: int(target.Port())}
	cctx, cancel := context.WithTimeout(ctx, PortConnectTimeout)
	defer cancel()
	start := time.Now()
	c, err := dial(cctx, "tcp", target.String())
	switch {
	case err == nil:
		c.Close()
		res.State, res.RTTMs = PortOpen, ms(time.Since(start))
	case errors.Is(err, syscall.ECONNREFUSED):
		res.State, res.RTTMs = PortRefused, ms(time.Since(start))
	case cctx.Err() != nil && ctx.Err() == nil:
		res.State, res.Error = PortFiltered, fmt.Sprintf("no answer within %s", PortConnectTimeout)
	default: // an ICMP error (a reject rule, no route), or the request ended
		res.State, res.Error = PortFiltered, err.Error()
	}
	return res
}

// CheckUDP sends podpath probes to target from local (when it is a
// specific address of target's family; the kernel's choice otherwise) and
// waits for the echo. Only a podpath responder answers: a port another
// program holds reads as filtered.
func CheckUDP(ctx context.Context, local netip.Addr, target netip.AddrPort) PortResult {
	res := PortResult{Proto: ProtoUDP, Port: int(target.Port())}
	var d net.Dialer
	if local.IsValid() && !local.IsUnspecified() && local.Is4() == target.Addr().Is4() {
		// The receiving agent answers only its peers' addresses: send from
		// ours, not from whatever source the route prefers.
		d.LocalAddr = &net.UDPAddr{IP: local.AsSlice()}
	}
	c, err := d.DialContext(ctx, "udp", target.String())
	if err != nil {
		res.State, res.Error = PortFiltered, fmt.Sprintf("open UDP socket: %v", err)
		return res
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	run := binary.BigEndian.Uint32(nonce[:])
	out := make([]byte, HeaderLen)
	for seq := uint32(1); seq <= PortUDPAttempts && ctx.Err() == nil; seq++ {
		sent := time.Now()
		Header{Run: run, Seq: seq, SentUnix: sent.UnixNano()}.Put(out)
		_, err := c.Write(out)
		var echoed int64
		if err == nil {
			echoed, err = awaitEcho(c, run, sent.Add(PortUDPInterval))
		}
		switch {
		case err == nil:
			// The echo may be of an earlier attempt: time it from its own send.
			res.State, res.RTTMs = PortOpen, ms(time.Duration(time.Now().UnixNano()-echoed))
			return res
		case errors.Is(err, syscall.ECONNREFUSED):
			// ICMP port unreachable, reported on the connected socket.
			res.State, res.RTTMs = PortClosed, ms(time.Since(sent))
			return res
		case !os.IsTimeout(err):
			// Host or network unreachable: keep the pace, try again, then
			// call it filtered.
			res.Error = err.Error()
			sleepCtx(ctx, time.Until(sent.Add(PortUDPInterval)))
		}
	}
	res.State = PortFiltered
	if res.Error == "" {
		res.Error = fmt.Sprintf("no answer to %d probes in %s", PortUDPAttempts, PortUDPAttempts*PortUDPInterval)
	}
	if ctx.Err() != nil {
		res.Error = "not finished: " + ctx.Err().Error()
	}
	return res
}

// awaitEcho reads c until the echo of a probe of this run arrives (its
// send time), the deadline passes (a timeout error) or an ICMP error is
// reported.
func awaitEcho(c net.Conn, run uint32, deadline time.Time) (sentUnix int64, err error) {
	in := make([]byte, 512)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(in)
		if err != nil {
			return 0, err
		}
		if h, err := Decode(in[:n]); err == nil && h.Flags&FlagReply != 0 && h.Run == run {
			return h.SentUnix, nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
