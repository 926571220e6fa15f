package agent

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// The control channel (controller ↔ agent API) must work across the very
// faults it reports, MTU black holes first: a 1460-byte segment that
// vanishes on the way to a node would stall the call that asks that node
// what it measured. So no control segment is large:
//
//   - the controller dials with TCP_MAXSEG: it announces a small MSS in its
//     SYN, so the agent's answers come in small segments, and it sends small
//     ones itself;
//   - the agent writes every answer in pieces of controlPiece bytes, each
//     sent with MSG_EOR, which keeps the kernel from merging pieces into a
//     larger segment, on the first send or on a retransmission
//     (tcp_skb_can_collapse_to). That holds for clients it does not control,
//     such as the API server's Pod proxy.
//
// The agent's listener itself is not clamped: the sink's uploads arrive on
// it, and they must use the path's full MSS to find what they measure.
const (
	// ControlMSS4 is RFC 1122's default MSS: an IPv4 datagram of 576 bytes,
	// which every host must accept.
	ControlMSS4 = 536
	// ControlMSS6 fits IPv6's minimum link MTU of 1280.
	ControlMSS6 = 1220
	// controlPiece is the most an answer write puts in one segment.
	controlPiece = 512
)

// clampMSS is a net.Dialer Control function: the connection's segments in
// both directions stay at ControlMSS4 (ControlMSS6 over IPv6).
func clampMSS(network, address string, c syscall.RawConn) error {
	mss := ControlMSS4
	if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
		mss = ControlMSS6
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss)
	}); err != nil {
		return err
	}
	return serr
}

// pieceListener hands out connections whose writes go in bounded segments.
type pieceListener struct{ net.Listener }

func (l pieceListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &pieceConn{TCPConn: tc, raw: raw}, nil
}

// pieceConn writes in pieces of at most controlPiece bytes, each its own
// TCP segment. Reads, deadlines and the rest are the TCP connection's.
type pieceConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *pieceConn) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		end := min(len(b), n+controlPiece)
		var werr error
		// RawConn.Write waits for the socket to be writable, honouring the
		// connection's write deadline, whenever the function returns false.
		err := c.raw.Write(func(fd uintptr) bool {
			k, err := unix.SendmsgN(int(fd), b[n:end], nil, nil, unix.MSG_EOR|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if errors.Is(err, unix.EAGAIN) {
				return false
			}
			if errors.Is(err, unix.EINTR) {
				return false
			}
			if err != nil {
				werr = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
				return true
			}
			n += k
			return true
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
