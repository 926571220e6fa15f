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
)

// Conn is a UDP socket connected to a podpath responder, with the Don't
// Fragment bit set on every datagram and ICMP errors delivered to it.
type Conn struct {
	c    *net.UDPConn
	raw  syscall.RawConn
	peer netip.AddrPort
	v6   bool
	run  uint32

	mu      sync.Mutex
	seq     uint32
	maxRTT  time.Duration // largest round trip seen: sets how long a round waits
	refused int           // sends a local firewall rule refused (EPERM)
}

// Dial opens a probe socket to a responder at peer.
func Dial(ctx context.Context, peer netip.AddrPort) (*Conn, error) {
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
	return &Conn{c: uc, raw: raw, peer: peer, v6: v6, run: binary.BigEndian.Uint32(run[:])}, nil
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
// kernel holds sends to this, not to a cached path MTU.
func (c *Conn) InterfaceMTU() (int, error) {
	routes, err := netlink.RouteGet(c.peer.Addr().AsSlice())
	if err != nil || len(routes) == 0 {
		return 0, fmt.Errorf("route to %s: %w", c.peer.Addr(), err)
	}
	if mtu := routes[0].MTU; mtu > 0 {
		return mtu, nil // a route MTU (ip route … mtu N) wins over the device's
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("interface towards %s: %w", c.peer.Addr(), err)
	}
	return l.Attrs().MTU, nil
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

// send writes one probe of IP size bytes; it reports a local limit when the
// kernel refuses the size (EMSGSIZE).
func (c *Conn) send(buf []byte, size int, flags byte, seq uint32) (localMTU int, err error) {
	n := PayloadLen(size, c.v6)
	if n < HeaderLen {
		return 0, fmt.Errorf("probe size %d below the minimum %d", size, MinProbeSize(c.v6))
	}
	Header{Flags: flags, Run: c.run, Seq: seq, SentUnix: time.Now().UnixNano()}.Put(buf)
	_, err = c.c.Write(buf[:n])
	if errors.Is(err, unix.EMSGSIZE) {
		local, _ := c.drainErrors()
		if local == 0 {
			local = size - 1
		}
		return local, nil
	}
	if err != nil && isICMPError(err) {
		_, _ = c.drainErrors() // an ICMP error reported on this send; the probe itself went out
		return 0, nil
	}
	if errors.Is(err, unix.ENOBUFS) {
		// The link dropped it on the spot (a full queue, or a veth whose peer
		// has a smaller MTU, as in the lab): the probe is lost, as it would be
		// one hop later on a real wire.
		return 0, nil
	}
	if errors.Is(err, unix.EPERM) {
		// A netfilter rule on this host dropped it on the way out. That too
		// is a lost probe: a rule that drops at random (or by rate) must read
		// as loss, not as a dead path. The count lets Ping say why nothing
		// came back when every probe was refused.
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		return 0, nil
	}
	return 0, err
}

// isICMPError: with IP_RECVERR the kernel reports a queued ICMP error on
// the next call on the socket.
func isICMPError(err error) bool {
	return errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ECONNREFUSED) ||
		errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH)
}

// drainErrors reads the socket's error queue: local "message too long"
// (the interface MTU) and ICMP "fragmentation needed" / "packet too big"
// (a router's MTU).
func (c *Conn) drainErrors() (localMTU, icmpMTU int) {
	buf := make([]byte, 64)
	oob := make([]byte, 512)
	_ = c.raw.Read(func(fd uintptr) bool {
		for {
			_, oobn, _, _, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return true // queue empty (EAGAIN) or nothing more to read
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if !(m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) &&
					!(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
					continue
				}
				if len(m.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
					continue
				}
				ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
				switch {
				case ee.Origin == unix.SO_EE_ORIGIN_LOCAL && ee.Errno == uint32(unix.EMSGSIZE):
					localMTU = int(ee.Info)
				case ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 3 && ee.Code == 4,
					ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 2:
					if icmpMTU == 0 || int(ee.Info) < icmpMTU {
						icmpMTU = int(ee.Info)
					}
				}
			}
		}
	})
	return localMTU, icmpMTU
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
	buf := make([]byte, max(PayloadLen(maxSize, c.v6), HeaderLen))
	burst := 0
	for range attempts {
		for _, s := range sizes {
			// Jumbo and loopback sizes would overrun the responder's
			// receive buffer in one burst and read as a limit; pause
			// briefly every pacingBytes.
			if burst += s; burst > pacingBytes {
				time.Sleep(pacingPause)
				burst = s
			}
			seq := c.nextSeq()
			local, err := c.send(buf, s, FlagAckOnly, seq)
			if err != nil {
				return rr, fmt.Errorf("send %d-byte probe to %s: %w", s, c.peer, err)
			}
			rr.Sent++
			if local > 0 {
				rr.LocalMTU = local
				continue
			}
			seqSize[seq] = s
		}
	}
	deadline := time.Now().Add(c.roundWait())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	rbuf := make([]byte, 2048)
	want := len(distinct(seqSize)) // sizes that went out: the round ends early when all are answered
	for len(rr.Acked) < want {
		_ = c.c.SetReadDeadline(deadline)
		n, err := c.c.Read(rbuf)
		if err != nil {
			if os.IsTimeout(err) {
				break
			}
			if isICMPError(err) {
				if _, icmp := c.drainErrors(); icmp > 0 {
					rr.ICMPMTU = icmp
				}
				continue
			}
			return rr, fmt.Errorf("read probe answers from %s: %w", c.peer, err)
		}
		h, err := Decode(rbuf[:n])
		if err != nil || h.Flags&FlagReply == 0 || h.Run != c.run {
			continue
		}
		if s, ok := seqSize[h.Seq]; ok {
			rr.Acked[s] = true
			c.noteRTT(time.Duration(time.Now().UnixNano() - h.SentUnix))
			deadline = minTime(deadline, time.Now().Add(c.roundWait()))
		}
	}
	if _, icmp := c.drainErrors(); icmp > 0 {
		rr.ICMPMTU = icmp
	}
	return rr, nil
}

func distinct(m map[uint32]int) map[int]bool {
	out := map[int]bool{}
	for _, s := range m {
		out[s] = true
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
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
// last send is lost.
func (c *Conn) Ping(ctx context.Context, count int, interval time.Duration, size int) (Stats, error) {
	size = max(size, MinProbeSize(c.v6))
	buf := make([]byte, PayloadLen(size, c.v6))
	type reply struct {
		seq uint32
		rtt time.Duration
	}
	replies := make(chan reply, 2*count)
	done := make(chan struct{})
	_ = c.c.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		rbuf := make([]byte, 2048)
		for {
			n, err := c.c.Read(rbuf)
			if err != nil {
				if os.IsTimeout(err) || errors.Is(err, net.ErrClosed) {
					return
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
		if _, err := c.send(buf, size, 0, seq); err != nil {
			sendErr = err
			break
		}
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
	return Summarize(series, len(sent)), sendErr
}

func (c *Conn) refusedSends() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}
