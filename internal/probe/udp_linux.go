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
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Timeouts of the UDP prober. A round waits for its answers a few round
// trips, never less than MinRoundWait (scheduling noise) nor more than
// MaxRoundWait (a path slower than that is an answer in itself).
const (
	MinRoundWait = 50 * time.Millisecond
	MaxRoundWait = time.Second
	// ProbeTimeout is how long a single echo may take before it counts as lost.
	ProbeTimeout = time.Second
	pacingBytes  = 64 << 10
	pacingPause  = 200 * time.Microsecond
	attemptGap   = time.Millisecond
)

// Conn is a UDP socket connected to a podpath responder, with the Don't
// Fragment bit set on every datagram and ICMP errors delivered to it.
type Conn struct {
	c    *net.UDPConn
	raw  syscall.RawConn
	peer netip.AddrPort
	from netip.Addr
	v6   bool
	run  uint32

	mu      sync.Mutex
	seq     uint32
	maxRTT  time.Duration // largest round trip seen: sets how long a round waits
	refused int           // sends a local firewall rule refused (EPERM)
	// portRefused: the peer's host answered ICMP port unreachable.
	portRefused bool
}

// Dial opens a probe socket to a responder at peer.
func Dial(ctx context.Context, peer netip.AddrPort) (*Conn, error) {
	return DialFrom(ctx, netip.Addr{}, peer)
}

// DialFrom opens a probe socket to a responder at peer from the local
// address from (none: the kernel picks the route's source). Responders
// tell peers from strangers by source address: an agent known to its
// peers by one address of a host with several sends from that one.
func DialFrom(ctx context.Context, from netip.Addr, peer netip.AddrPort) (*Conn, error) {
	v6 := peer.Addr().Is6() && !peer.Addr().Is4In6()
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = setDF(int(fd), v6) })
		if err != nil {
			return err
		}
		return serr
	}}
	if from.IsValid() {
		d.LocalAddr = &net.UDPAddr{IP: from.AsSlice()}
	}
	c, err := d.DialContext(ctx, network, peer.String())
	if err != nil {
		return nil, fmt.Errorf("open probe socket to %s: %w", peer, err)
	}
	uc := c.(*net.UDPConn)
	raw, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("probe socket to %s: %w", peer, err)
	}
	var run [4]byte
	_, _ = rand.Read(run[:])
	return &Conn{c: uc, raw: raw, peer: peer, from: from, v6: v6, run: binary.BigEndian.Uint32(run[:])}, nil
}

// From is the local address the socket was opened from (DialFrom); the
// zero address when the kernel picks.
func (c *Conn) From() netip.Addr { return c.from }

// Redial points the socket at another responder of the same family:
// the cheap check meets every peer (a million pairs on a 1,000-node
// cluster), and a socket opened and closed per peer was a fifth of an
// agent's CPU there. The socket is first dissolved from its peer
// (connect to AF_UNSPEC), so the kernel picks the new route's source
// unless one was bound; an answer of the old peer still queued is not
// this run's (a new run number). What it learnt of the old peer (round
// trips, refusals) is forgotten. Not for a socket whose TTL was changed
// (Locate).
func (c *Conn) Redial(peer netip.AddrPort) error {
	v6 := peer.Addr().Is6() && !peer.Addr().Is4In6()
	if v6 != c.v6 {
		return fmt.Errorf("redial %s: not the socket's address family", peer)
	}
	var sa unix.Sockaddr
	if v6 {
		sa = &unix.SockaddrInet6{Port: int(peer.Port()), Addr: peer.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(peer.Port()), Addr: peer.Addr().Unmap().As4()}
	}
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		unspec := unix.RawSockaddr{Family: unix.AF_UNSPEC}
		if _, _, e := unix.Syscall(unix.SYS_CONNECT, fd, uintptr(unsafe.Pointer(&unspec)), unsafe.Sizeof(unspec)); e != 0 {
			serr = e
			return
		}
		serr = unix.Connect(int(fd), sa)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("redial probe socket to %s: %w", peer, err)
	}
	c.drainErrors() // the old peer's ICMP errors
	c.mu.Lock()
	c.peer, c.maxRTT, c.refused, c.portRefused = peer, 0, 0, false
	c.run++
	c.mu.Unlock()
	return nil
}

// setDF sets the Don't Fragment bit while ignoring the kernel's path-MTU
// cache (IP_PMTUDISC_PROBE: the search, not an earlier ICMP, decides what is
// tried), and asks for ICMP errors on the socket's error queue (IP_RECVERR).
func setDF(fd int, v6 bool) error {
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE); err != nil {
			return fmt.Errorf("IPV6_MTU_DISCOVER: %w", err)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE); err != nil {
		return fmt.Errorf("IP_MTU_DISCOVER: %w", err)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

// V6 reports whether the socket speaks IPv6.
func (c *Conn) V6() bool { return c.v6 }

// InterfaceMTU is the MTU of the interface the kernel routes the peer
// through: the largest probe worth sending. With IP_PMTUDISC_PROBE the
// kernel holds sends to the device's MTU, not to a route's metric: the MTU
// `ip route get` reports is, after an ICMP "fragmentation needed", the
// cached path MTU (expiring in 10 minutes), which the search must be free
// to test again.
func (c *Conn) InterfaceMTU() (int, error) {
	routes, err := netlink.RouteGet(c.peer.Addr().AsSlice())
	if err != nil || len(routes) == 0 {
		return 0, fmt.Errorf("route to %s: %w", c.peer.Addr(), err)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("interface towards %s: %w", c.peer.Addr(), err)
	}
	return min(l.Attrs().MTU, MaxPacket(c.v6)), nil
}

// RouteMTU is the largest packet the kernel would send the peer without
// fragmenting (IP_MTU on the connected socket): the device's MTU, or less
// when the route carries an MTU or a router's "fragmentation needed"
// lowered it for a while. What an application sends there, read with one
// call, not two netlink requests: the cheap check meets every peer, a
// million times on a 1,000-node cluster, and InterfaceMTU was a fifth of
// its CPU there.
func (c *Conn) RouteMTU() (int, error) {
	level, opt := unix.IPPROTO_IP, unix.IP_MTU
	if c.v6 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_MTU
	}
	var mtu int
	var serr error
	err := c.raw.Control(func(fd uintptr) { mtu, serr = unix.GetsockoptInt(int(fd), level, opt) })
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("route MTU towards %s: %w", c.peer.Addr(), err)
	}
	return min(mtu, MaxPacket(c.v6)), nil
}

func (c *Conn) nextSeq() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.seq
}

func (c *Conn) noteRTT(d time.Duration) {
	c.mu.Lock()
	c.maxRTT = max(c.maxRTT, d)
	c.mu.Unlock()
}

// roundWait is how long to wait after the last send of a round.
func (c *Conn) roundWait() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxRTT == 0 {
		return MaxRoundWait
	}
	return min(max(3*c.maxRTT+20*time.Millisecond, MinRoundWait), MaxRoundWait)
}

// sendAttempts bounds how often one probe is written. With IP_RECVERR the
// kernel reports an ICMP error that arrived for an earlier probe (port
// unreachable, fragmentation needed) on the next call on the socket, and
// that call sends nothing; the error is read from the queue and the send
// made again. Each failed send clears the pending error, so a second try
// fails only if yet another ICMP arrived in between.
const sendAttempts = 3

// errQueue is what the socket's error queue held.
type errQueue struct {
	localMTU int        // the kernel refused a send larger than this (EMSGSIZE of local origin)
	icmpMTU  int        // smallest MTU a router reported with "fragmentation needed" / "packet too big"
	icmpFrom netip.Addr // the router that reported icmpMTU
	refused  bool       // the peer's host answered "port unreachable": nothing listens there
	// exceeded: the probes (by sequence number) a router answered with
	// "time exceeded", and that router's address.
	exceeded map[uint32]netip.Addr
}

func (q *errQueue) merge(o errQueue) {
	if o.localMTU > 0 && (q.localMTU == 0 || o.localMTU < q.localMTU) {
		q.localMTU = o.localMTU
	}
	if o.icmpMTU > 0 && (q.icmpMTU == 0 || o.icmpMTU < q.icmpMTU) {
		q.icmpMTU, q.icmpFrom = o.icmpMTU, o.icmpFrom
	}
	q.refused = q.refused || o.refused
	for seq, a := range o.exceeded {
		if q.exceeded == nil {
			q.exceeded = map[uint32]netip.Addr{}
		}
		q.exceeded[seq] = a
	}
}

// send writes one probe of IP size bytes. A size the sender's own
// interface cannot carry comes back as q.localMTU (EMSGSIZE of local
// origin); ICMP errors met on the way are in q.
func (c *Conn) send(buf []byte, size int, flags byte, seq uint32) (q errQueue, err error) {
	n := PayloadLen(size, c.v6)
	if n < HeaderLen {
		return q, fmt.Errorf("probe size %d below the minimum %d", size, MinProbeSize(c.v6))
	}
	Header{Flags: flags, Run: c.run, Seq: seq, SentUnix: time.Now().UnixNano()}.Put(buf)
	for range sendAttempts {
		_, err = c.c.Write(buf[:n])
		switch {
		case err == nil:
			return q, nil
		case isICMPError(err):
			got := c.drainErrors()
			q.merge(got)
			if got.localMTU > 0 && size > got.localMTU {
				return q, nil // this very send is above the interface's MTU
			}
			continue // an earlier probe's ICMP error, reported on this send, which did not go out
		case errors.Is(err, unix.ENOBUFS):
			// The link dropped it on the spot (a full queue, or a veth whose peer
			// has a smaller MTU, as in the lab): the probe is lost, as it would be
			// one hop later on a real wire.
			return q, nil
		case errors.Is(err, unix.EPERM):
			// A netfilter rule on this host dropped it on the way out. That too
			// is a lost probe: a rule that drops at random (or by rate) must read
			// as loss, not as a dead path. The count lets Ping say why nothing
			// came back when every probe was refused.
			c.mu.Lock()
			c.refused++
			c.mu.Unlock()
			return q, nil
		case os.IsTimeout(err):
			return q, nil // the socket's send buffer stayed full until the deadline: lost
		default:
			return q, err
		}
	}
	return q, nil // ICMP errors kept arriving: this probe is lost
}

// isICMPError: with IP_RECVERR the kernel reports a queued ICMP error on
// the next call on the socket.
func isICMPError(err error) bool {
	return errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ECONNREFUSED) ||
		errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH)
}

// drainErrors reads the socket's error queue: local "message too long"
// (the interface MTU), ICMP "fragmentation needed" / "packet too big" (a
// router's MTU and address) and "port unreachable". It does not take the
// socket's read lock (RawConn.Control, a non-blocking recvmsg), so it never
// waits behind a reader blocked in Read.
func (c *Conn) drainErrors() errQueue {
	var q errQueue
	buf := make([]byte, 64)
	oob := make([]byte, 512)
	_ = c.raw.Control(func(fd uintptr) {
		for range 64 { // more errors than probes in flight cannot be queued; stay bounded
			n, oobn, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return // queue empty (EAGAIN) or nothing more to read
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				e, ok := parseExtendedErr(m)
				if !ok {
					continue
				}
				// The queued datagram is the probe the error is about: its
				// header says which.
				if e.exceeded != nil {
					if h, err := Decode(buf[:n]); err == nil && h.Run == c.run {
						e.exceeded[h.Seq] = e.exceeded[0]
					}
					delete(e.exceeded, 0)
				}
				q.merge(e)
			}
		}
	})
	return q
}

// parseExtendedErr reads one IP_RECVERR / IPV6_RECVERR control message: a
// sock_extended_err followed by the offender's address (SO_EE_OFFENDER).
func parseExtendedErr(m unix.SocketControlMessage) (errQueue, bool) {
	var q errQueue
	if !(m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) &&
		!(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
		return q, false
	}
	n := int(unsafe.Sizeof(unix.SockExtendedErr{}))
	if len(m.Data) < n {
		return q, false
	}
	ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
	switch {
	case ee.Origin == unix.SO_EE_ORIGIN_LOCAL && ee.Errno == uint32(unix.EMSGSIZE):
		q.localMTU = int(ee.Info)
	case ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 3 && ee.Code == 4,
		ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 2:
		q.icmpMTU, q.icmpFrom = int(ee.Info), offender(m.Data[n:])
	case ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 3 && ee.Code == 3,
		ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 1 && ee.Code == 4:
		q.refused = true
	case ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 11,
		ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 3:
		q.exceeded = map[uint32]netip.Addr{0: offender(m.Data[n:])} // keyed by the probe once its payload is read
	}
	return q, true
}

// offender is the sockaddr after a sock_extended_err: the address of the
// host that sent the ICMP error.
func offender(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrFrom4([4]byte(b[4:8]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		}
	}
	return netip.Addr{}
}

// bound gives the socket's reads and writes a deadline: ctx's, or until
// when none is earlier, and cuts them short when ctx ends. The returned
// stop releases the context hook.
func (c *Conn) bound(ctx context.Context, until time.Time) (stop func()) {
	if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
		until = dl
	}
	_ = c.c.SetDeadline(until)
	cancel := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Now()) })
	return func() { cancel() }
}

// Round implements Rounder: every size is sent attempts times, then the
// socket is read until each size is answered or the round's wait is over.
func (c *Conn) Round(ctx context.Context, sizes []int, attempts int) (RoundResult, error) {
	rr := RoundResult{Acked: map[int]bool{}}
	seqSize := map[uint32]int{}
	maxSize := 0
	for _, s := range sizes {
		maxSize = max(maxSize, s)
	}
	defer c.bound(ctx, time.Now().Add(MaxRoundWait+ProbeTimeout))()
	var q errQueue
	buf := make([]byte, max(PayloadLen(maxSize, c.v6), HeaderLen))
	burst := 0
	for i := range attempts {
		if i > 0 {
			// Attempts of a size apart a little: a queue that overflowed on
			// the first pass (a shaper, a busy link) has drained some.
			time.Sleep(attemptGap)
		}
		for _, s := range sizes {
			// Jumbo and loopback sizes would overrun the responder's
			// receive buffer in one burst and read as a limit; pause
			// briefly every pacingBytes.
			if burst += s; burst > pacingBytes {
				time.Sleep(pacingPause)
				burst = s
			}
			seq := c.nextSeq()
			got, err := c.send(buf, s, FlagAckOnly, seq)
			if err != nil {
				return rr, fmt.Errorf("send %d-byte probe to %s: %w", s, c.peer, err)
			}
			q.merge(got)
			rr.Sent++
			if got.localMTU > 0 && s > got.localMTU {
				continue
			}
			seqSize[seq] = s
		}
	}
	deadline := time.Now().Add(c.roundWait())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	out := distinct(seqSize) // sizes that went out: the round ends early when all are answered
	done := func() bool {
		for s := range out {
			// A size above what a router reported will not be answered: the
			// router refused it. Waiting for it would only cost the round's wait.
			if !rr.Acked[s] && (q.icmpMTU == 0 || s <= q.icmpMTU) {
				return false
			}
		}
		return true
	}
	err := c.readAnswers(ctx, &deadline, &q, done, func(h Header, at time.Time) {
		if s, ok := seqSize[h.Seq]; ok {
			rr.Acked[s] = true
			c.noteRTT(time.Duration(at.UnixNano() - h.SentUnix))
			deadline = minTime(deadline, at.Add(c.roundWait()))
		}
	})
	if err != nil {
		return rr, fmt.Errorf("read probe answers from %s: %w", c.peer, err)
	}
	q.merge(c.drainErrors())
	rr.LocalMTU, rr.ICMPMTU, rr.ICMPFrom = q.localMTU, q.icmpMTU, q.icmpFrom
	c.noteRefused(q.refused)
	return rr, nil
}

// readAnswers reads the socket until *deadline (which onReply may bring
// forward) or until done says the round has what it waits for. ICMP
// errors go into q; each answer of this run goes to onReply with the time
// it arrived.
func (c *Conn) readAnswers(ctx context.Context, deadline *time.Time, q *errQueue, done func() bool, onReply func(Header, time.Time)) error {
	rbuf := make([]byte, 2048)
	for !done() && ctx.Err() == nil {
		_ = c.c.SetReadDeadline(*deadline)
		n, err := c.c.Read(rbuf)
		if err != nil {
			if os.IsTimeout(err) {
				return nil
			}
			if isICMPError(err) {
				q.merge(c.drainErrors())
				continue
			}
			return err
		}
		at := time.Now()
		if h, err := Decode(rbuf[:n]); err == nil && h.Flags&FlagReply != 0 && h.Run == c.run {
			onReply(h, at)
		}
	}
	return nil
}

func distinct(m map[uint32]int) map[int]bool {
	out := map[int]bool{}
	for _, s := range m {
		out[s] = true
	}
	return out
}

// PathMTU finds the largest IP packet that crosses to the peer, exact to
// the byte, in this direction only (answers are header-sized).
func (c *Conn) PathMTU(ctx context.Context) (PMTUResult, error) {
	hi, err := c.InterfaceMTU()
	if err != nil {
		return PMTUResult{}, err
	}
	return SearchPMTU(ctx, c, MinProbeSize(c.v6), hi)
}

// Ping sends count echo probes of IP size bytes, interval apart, and
// summarises the round trips. A probe unanswered ProbeTimeout after the
// last send is lost. Every read and write has a deadline: the series'
// length plus ProbeTimeout, or ctx's when that is earlier.
func (c *Conn) Ping(ctx context.Context, count int, interval time.Duration, size int) (Stats, error) {
	size = max(size, MinProbeSize(c.v6))
	buf := make([]byte, PayloadLen(size, c.v6))
	type reply struct {
		seq uint32
		rtt time.Duration
	}
	replies := make(chan reply, 2*count)
	done := make(chan struct{})
	stop := c.bound(ctx, time.Now().Add(time.Duration(count)*interval+ProbeTimeout+time.Second))
	defer stop()
	go func() {
		defer close(done)
		rbuf := make([]byte, 2048)
		for {
			n, err := c.c.Read(rbuf)
			if err != nil {
				if os.IsTimeout(err) || errors.Is(err, net.ErrClosed) {
					return
				}
				if isICMPError(err) {
					c.noteRefused(c.drainErrors().refused)
				}
				continue // an ICMP error for one probe: that probe is lost
			}
			now := time.Now().UnixNano()
			h, err := Decode(rbuf[:n])
			if err != nil || h.Flags&FlagReply == 0 || h.Run != c.run {
				continue
			}
			select {
			case replies <- reply{h.Seq, time.Duration(now - h.SentUnix)}:
			default: // duplicates beyond any sane count
			}
		}
	}()
	order := map[uint32]int{} // seq → position in the series
	var sent []uint32
	rtts := make([]time.Duration, count)
	got := map[uint32]bool{}
	collect := func(r reply) {
		if _, ok := order[r.seq]; ok && !got[r.seq] {
			got[r.seq] = true
			rtts[order[r.seq]] = r.rtt
			c.noteRTT(r.rtt) // later rounds on this socket wait a few of these
		}
	}
	var sendErr error
	refusedBefore := c.refusedSends()
	for i := range count {
		if i > 0 {
			t := time.NewTimer(interval)
		wait:
			for {
				select {
				case <-ctx.Done():
					sendErr = ctx.Err()
					break wait
				case r := <-replies:
					collect(r)
				case <-t.C:
					break wait
				}
			}
			t.Stop()
		}
		if sendErr != nil {
			break
		}
		seq := c.nextSeq()
		q, err := c.send(buf, size, 0, seq)
		if err != nil {
			sendErr = err
			break
		}
		c.noteRefused(q.refused)
		order[seq] = i
		sent = append(sent, seq)
	}
	deadline := time.NewTimer(ProbeTimeout)
	for len(got) < len(order) {
		select {
		case r := <-replies:
			collect(r)
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	deadline.Stop()
	_ = c.c.SetReadDeadline(time.Now()) // stop the reader
	<-done
	var series []time.Duration
	for _, seq := range sent {
		if got[seq] {
			series = append(series, rtts[order[seq]])
		}
	}
	if refused := c.refusedSends() - refusedBefore; len(series) == 0 && refused > 0 && sendErr == nil {
		sendErr = fmt.Errorf("send to %s: a local firewall rule refused %d of %d probes (operation not permitted)", c.peer, refused, len(sent))
	}
	if len(series) == 0 && sendErr == nil && c.PeerRefused() {
		sendErr = fmt.Errorf("%s answered ICMP port unreachable: the host is there, nothing listens on UDP port %d", c.peer.Addr(), c.peer.Port())
	}
	return Summarize(series, len(sent)), sendErr
}

// noteRefused remembers that the peer's host said "port unreachable".
func (c *Conn) noteRefused(refused bool) {
	if refused {
		c.mu.Lock()
		c.portRefused = true
		c.mu.Unlock()
	}
}

// PeerRefused reports whether the peer's host answered a probe with ICMP
// port unreachable: the host is up, nothing listens on the probed port.
func (c *Conn) PeerRefused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.portRefused
}

func (c *Conn) refusedSends() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// MaxHops bounds how far Locate looks: a cluster's nodes are a few
// routers apart at most.
const MaxHops = 8

// hopWait is how long Locate waits before asking a hop again that said
// nothing: routers send "time exceeded" from a token bucket per
// destination (Linux: a burst of 6, then one a second), which a few pairs
// located at once through the same router empty.
const hopWait = 1100 * time.Millisecond

// hopAnswer is what one TTL step saw.
type hopAnswer struct {
	small, large       netip.Addr // the hop that said "time exceeded" to each probe
	reached, largeSeen bool       // the peer answered the small probe, the large one
}

func (h hopAnswer) heard() bool { return h.small.IsValid() || h.large.IsValid() || h.reached }

// Locate sends, for TTL 1, 2, … up to the peer, one small probe and one of
// size bytes (Don't Fragment set on both), and reads which hops answer
// them. Large probes that reach hop h and not h+1 vanish between the two.
// A hop before the peer that said nothing is asked once more, after
// hopWait.
func (c *Conn) Locate(ctx context.Context, size int) (Location, error) {
	loc := Location{Size: size}
	defer c.setTTL(0)
	defer c.bound(ctx, time.Now().Add(MaxHops*(MaxRoundWait+ProbeTimeout)+hopWait))()
	hops := map[int]hopAnswer{}
	for ttl := 1; ttl <= MaxHops && ctx.Err() == nil; ttl++ {
		a, err := c.hop(ctx, ttl, size)
		if err != nil {
			return loc, err
		}
		hops[ttl] = a
		if a.reached {
			loc.Hops = ttl
			break
		}
	}
	var quiet []int
	for ttl := 1; ttl < loc.Hops; ttl++ {
		if !hops[ttl].heard() {
			quiet = append(quiet, ttl)
		}
	}
	if len(quiet) > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(hopWait):
		}
		for _, ttl := range quiet {
			if a, err := c.hop(ctx, ttl, size); err == nil && a.heard() {
				hops[ttl] = a
			}
		}
	}
	answered := false
	for ttl := 1; ttl <= max(loc.Hops, 1); ttl++ {
		a := hops[ttl]
		answered = answered || a.small.IsValid() || a.large.IsValid()
		switch {
		case a.largeSeen:
			loc.After, loc.At = ttl, c.peer.Addr().String() // it crossed after all: no limit on this path now
		case a.large.IsValid():
			loc.After, loc.At = ttl, a.large.String()
		}
	}
	if next := loc.After + 1; loc.Hops > 0 && next <= loc.Hops && !hops[next].heard() {
		loc.Gap = true
	}
	loc.Silent = loc.Hops != 1 && !answered
	return loc, nil
}

// hop is one TTL step of Locate: a small probe and one of size bytes, and
// who answered each.
func (c *Conn) hop(ctx context.Context, ttl, size int) (hopAnswer, error) {
	var a hopAnswer
	if err := c.setTTL(ttl); err != nil {
		return a, err
	}
	buf := make([]byte, max(PayloadLen(size, c.v6), HeaderLen))
	seqSmall, seqLarge := c.nextSeq(), c.nextSeq()
	var q errQueue
	// The large probe first: a router with one "time exceeded" left in its
	// bucket spends it on the large one if it gets that far, so one answer
	// alone is never read as large probes vanishing before it.
	for _, p := range []struct {
		seq  uint32
		size int
	}{{seqLarge, size}, {seqSmall, MinProbeSize(c.v6)}} {
		got, err := c.send(buf, p.size, FlagAckOnly, p.seq)
		if err != nil {
			return a, fmt.Errorf("send TTL-%d probe to %s: %w", ttl, c.peer, err)
		}
		q.merge(got)
	}
	deadline := time.Now().Add(c.roundWait())
	done := func() bool { // both accounted for: no need to wait out the round
		_, smallDone := q.exceeded[seqSmall]
		_, largeDone := q.exceeded[seqLarge]
		return (a.reached || smallDone) && (a.largeSeen || largeDone)
	}
	err := c.readAnswers(ctx, &deadline, &q, done, func(h Header, _ time.Time) {
		a.reached = a.reached || h.Seq == seqSmall
		a.largeSeen = a.largeSeen || h.Seq == seqLarge
	})
	if err != nil {
		return a, fmt.Errorf("read TTL-%d answers from %s: %w", ttl, c.peer, err)
	}
	q.merge(c.drainErrors())
	a.small, a.large = q.exceeded[seqSmall], q.exceeded[seqLarge]
	return a, nil
}

// setTTL sets the TTL (hop limit) of the socket's datagrams; 0 restores
// the system default.
func (c *Conn) setTTL(ttl int) error {
	if ttl == 0 {
		ttl = -1 // the route's or the system's default
	}
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		if c.v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set TTL %d on the probe socket to %s: %w", ttl, c.peer, err)
	}
	return nil
}
