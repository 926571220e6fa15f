package probe

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for n bytes of receive buffer: beyond rmem_max with
// CAP_NET_ADMIN (SO_RCVBUFFORCE), up to it otherwise.
func setReadBuffer(c *net.UDPConn, n int) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	forced := false
	_ = raw.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil
	})
	if !forced {
		_ = c.SetReadBuffer(n)
	}
}
