//go:build !linux

package probe

import (
	"errors"
	"net"
	"net/netip"
)

// setReadBuffer asks for n bytes of receive buffer, as the system allows.
func setReadBuffer(c *net.UDPConn, n int) { _ = c.SetReadBuffer(n) }

// datagrams reads probes and writes answers plainly: choosing the
// answer's source address (IP_PKTINFO) is Linux's part.
type datagrams struct{ pc net.PacketConn }

func newDatagrams(pc net.PacketConn) *datagrams { return &datagrams{pc: pc} }

func (d *datagrams) read(buf []byte) (int, net.Addr, netip.Addr, error) {
	n, from, err := d.pc.ReadFrom(buf)
	return n, from, senderIP(from), err
}

func (d *datagrams) write(b []byte, to net.Addr) error {
	_, err := d.pc.WriteTo(b, to)
	return err
}

// UDPRcvbufErrors is Linux's counter (/proc/net/snmp): unknown elsewhere.
func UDPRcvbufErrors() (uint64, error) {
	return 0, errors.New("UDP receive-buffer drops are counted on Linux only")
}
