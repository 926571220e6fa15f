package probe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// datagrams reads probes and writes answers. On a socket bound to the
// unspecified address (an agent on 0.0.0.0) the kernel would send an
// answer from the address its route to the sender prefers; on a host with
// several addresses that is not always the one the probe came to, and the
// prober's connected socket drops it. So there the answer is sent from the
// probe's destination address (IP_PKTINFO / IPV6_PKTINFO).
type datagrams struct {
	pc      net.PacketConn
	uc      *net.UDPConn // with pktinfo on; nil: plain ReadFrom/WriteTo
	oob     []byte
	replyTo []byte // control message naming the last probe's destination
}

func newDatagrams(pc net.PacketConn) *datagrams {
	d := &datagrams{pc: pc}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return d
	}
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return d // bound to one address: answers leave from it anyway
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return d
	}
	on := false
	_ = raw.Control(func(fd uintptr) {
		// A dual-stack socket reports IPv4 probes through either option.
		v4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil
		v6 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil
		on = v4 || v6
	})
	if on {
		d.uc, d.oob = uc, make([]byte, 256)
	}
	return d
}

// read returns the next datagram and its sender, IPv4 unmapped.
func (d *datagrams) read(buf []byte) (int, net.Addr, netip.Addr, error) {
	if d.uc == nil {
		n, from, err := d.pc.ReadFrom(buf)
		return n, from, senderIP(from), err
	}
	n, oobn, _, from, err := d.uc.ReadMsgUDPAddrPort(buf, d.oob)
	if err != nil {
		return n, nil, netip.Addr{}, err
	}
	d.replyTo = replySource(d.oob[:oobn])
	return n, net.UDPAddrFromAddrPort(from), from.Addr().Unmap(), nil
}

// write answers the datagram read last.
func (d *datagrams) write(b []byte, to net.Addr) error {
	if d.uc == nil {
		_, err := d.pc.WriteTo(b, to)
		return err
	}
	_, _, err := d.uc.WriteMsgUDPAddrPort(b, d.replyTo, to.(*net.UDPAddr).AddrPort())
	return err
}

// replySource turns a received packet-info message into the one that
// sends from its destination address; nil if there is none.
func replySource(oob []byte) []byte {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			var in unix.Inet4Pktinfo
			copy(in.Addr[:], m.Data[8:12]) // ipi_addr: the header's destination
			// Spec_dst is the source; the interface is left to the route.
			return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: in.Addr})
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var out unix.Inet6Pktinfo
			copy(out.Addr[:], m.Data[:16])
			if a := netip.AddrFrom16(out.Addr); a.IsLinkLocalUnicast() {
				// A link-local source means nothing without its link.
				out.Ifindex = binary.NativeEndian.Uint32(m.Data[16:20])
			}
			return unix.PktInfo6(&out)
		}
	}
	return nil
}
