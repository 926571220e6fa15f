package agent

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// connLimiter closes, at once, connections past a total or a per-source-IP
// cap. Refusing rather than queueing (x/net/netutil.LimitListener blocks
// Accept) keeps the slots of well-behaved callers free: one caller that
// holds many idle connections loses only its own extra ones.
type connLimiter struct {
	net.Listener
	total, perIP int

	mu    sync.Mutex
	open  int
	bySrc map[netip.Addr]int
	// refused counts connections closed at once for a cap.
	refused *atomic.Uint64
}

func newConnLimiter(ln net.Listener, total, perIP int, refused *atomic.Uint64) net.Listener {
	return &connLimiter{Listener: ln, total: total, perIP: perIP, bySrc: map[netip.Addr]int{}, refused: refused}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteIP(c)
		l.mu.Lock()
		ok := l.open < l.total && l.bySrc[src] < l.perIP
		if ok {
			l.open++
			l.bySrc[src]++
		}
		l.mu.Unlock()
		if !ok {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	src  netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// connCap is MaxConns, or half the file descriptors this process may open
// if that is less: the agent's sockets and files need the rest.
func connCap() int {
	if n, ok := openFileLimit(); ok && n/2 < MaxConns {
		return max(int(n/2), 1)
	}
	return MaxConns
}
