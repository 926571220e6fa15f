package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"podpath/internal/probe"
)

// acceptBackoff: an Accept error other than the listener's close (a full
// descriptor table) is retried after this, not in a spin.
const acceptBackoff = 10 * time.Millisecond

// listenSet is one /v1/listen's listeners; they close together, when
// their time is up, a new set replaces them, or the agent stops.
type listenSet struct {
	cancel  context.CancelFunc
	closers []io.Closer
	once    sync.Once
}

// close closes every socket before it returns, so that the ports are free
// for the next set at once.
func (l *listenSet) close() {
	l.once.Do(func() {
		l.cancel()
		for _, c := range l.closers {
			_ = c.Close()
		}
	})
}

// openListeners binds each port on ip for d: TCP listeners accept and
// close, UDP ones answer podpath probes through r.
func openListeners(ip netip.Addr, ports []PortCheck, d time.Duration, r *probe.Responder) (*listenSet, []ListenResult) {
	ctx, cancel := context.WithCancel(context.Background())
	set := &listenSet{cancel: cancel}
	results := make([]ListenResult, len(ports))
	for i, p := range ports {
		results[i] = ListenResult{Proto: p.Proto, Port: p.Port}
		addr := netip.AddrPortFrom(ip, uint16(p.Port)).String()
		var c io.Closer
		var err error
		if p.Proto == probe.ProtoTCP {
			var ln net.Listener
			if ln, err = net.Listen("tcp", addr); err == nil {
				go acceptAndClose(ln)
				c = ln
			}
		} else {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				go func() { _ = r.Serve(ctx, pc) }()
				c = pc
			}
		}
		if err != nil {
			results[i].Taken = errors.Is(err, syscall.EADDRINUSE)
			results[i].Error = bindError(err)
			continue
		}
		results[i].Listening = true
		set.closers = append(set.closers, c)
	}
	time.AfterFunc(d, set.close) // after an early close it finds nothing left to do
	return set, results
}

// acceptAndClose: a handshake that completes is the whole check.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(acceptBackoff)
			continue
		}
		c.Close()
	}
}

// bindError is the system's reason ("address already in use", "permission
// denied"), without the Go call chain around it.
func bindError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
