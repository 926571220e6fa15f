// Package probe measures a network path from one end: path MTU by UDP with
// Don't Fragment, round-trip time, loss and jitter, ICMP echo, TCP connect,
// HTTP timing by phase, bulk transfers that stall, and TCP throughput.
package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A probe datagram starts with a fixed header; the rest is padding that
// brings the IP packet to the size under test.
//
//	0      4      5       8       12      16             24
//	| PPv1 | flags | zero | run id | seq  | send time ns |
const HeaderLen = 24

var magic = [4]byte{'P', 'P', 'v', '1'}

// Flags of a probe.
const (
	// FlagAckOnly asks the responder for a header-only acknowledgement, so
	// a large probe measures its own direction and the small ack returns
	// over any path.
	FlagAckOnly byte = 1 << 0
	// FlagReply marks the responder's answer.
	FlagReply  byte = 1 << 1
	knownFlags      = FlagAckOnly | FlagReply
)

// Header is the decoded start of a probe datagram.
type Header struct {
	Flags    byte
	Run      uint32 // identifies one prober's run, so stray replies are ignored
	Seq      uint32
	SentUnix int64 // nanoseconds, the prober's clock
}

// ErrNotProbe means the datagram is not a podpath probe.
var ErrNotProbe = errors.New("not a podpath probe")

// Put writes h into the first HeaderLen bytes of b.
func (h Header) Put(b []byte) {
	copy(b, magic[:])
	b[4] = h.Flags
	b[5], b[6], b[7] = 0, 0, 0
	binary.BigEndian.PutUint32(b[8:], h.Run)
	binary.BigEndian.PutUint32(b[12:], h.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(h.SentUnix))
}

// Decode reads a probe header. Anything else is rejected: the responder
// answers nothing but well-formed probes.
func Decode(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrNotProbe, len(b), HeaderLen)
	}
	if [4]byte(b[:4]) != magic {
		return Header{}, fmt.Errorf("%w: bad magic", ErrNotProbe)
	}
	if b[4]&^knownFlags != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return Header{}, fmt.Errorf("%w: unknown flags", ErrNotProbe)
	}
	return Header{
		Flags:    b[4],
		Run:      binary.BigEndian.Uint32(b[8:]),
		Seq:      binary.BigEndian.Uint32(b[12:]),
		SentUnix: int64(binary.BigEndian.Uint64(b[16:])),
	}, nil
}

// Reply builds the responder's answer to req into out and returns it. The
// answer is never longer than req: the whole datagram echoed, or only the
// header when the probe asks for an acknowledgement.
func Reply(req, out []byte) ([]byte, error) {
	h, err := Decode(req)
	if err != nil {
		return nil, err
	}
	if h.Flags&FlagReply != 0 {
		return nil, fmt.Errorf("%w: a reply, not a request", ErrNotProbe) // never answer answers (no loops)
	}
	n := len(req)
	if h.Flags&FlagAckOnly != 0 {
		n = HeaderLen
	}
	if cap(out) < n {
		out = make([]byte, n)
	}
	out = out[:n]
	copy(out, req[:n])
	out[4] = h.Flags | FlagReply
	return out, nil
}

// IP and UDP header sizes: a probe of IP size S carries S-ipHeader-8 bytes.
const (
	IPv4Header = 20
	IPv6Header = 40
	UDPHeader  = 8
)

// PayloadLen is the UDP payload that makes an IP packet of size bytes.
func PayloadLen(size int, v6 bool) int {
	if v6 {
		return size - IPv6Header - UDPHeader
	}
	return size - IPv4Header - UDPHeader
}

// MinProbeSize is the smallest IP packet that holds a probe header.
func MinProbeSize(v6 bool) int {
	if v6 {
		return IPv6Header + UDPHeader + HeaderLen
	}
	return IPv4Header + UDPHeader + HeaderLen
}

// MaxPacket is the largest IP packet one UDP datagram can make: IPv4's
// total length and IPv6's payload length are 16 bits. Loopback's MTU of
// 65,536 is one more than any probe can be: a path MTU of 65,535 there
// is the whole interface, not a limit on the path.
func MaxPacket(v6 bool) int {
	if v6 {
		return 40 + 65535
	}
	return 65535
}
