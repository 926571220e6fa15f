package kubelet

import (
	"context"
	"net"
	"sync"
)

// connSet serves a listener's connections and tracks every connection
// open on their behalf (accepted and dialled), so that shutting down can
// end them all and wait for their goroutines: the egress proxy and the API
// server forwarders both need this.
type connSet struct {
	ctx   context.Context // ended: no new connection is tracked
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newConnSet(ctx context.Context) *connSet {
	return &connSet{ctx: ctx, conns: map[net.Conn]struct{}{}}
}

// serve accepts on ln until it is closed, handling each connection on its
// own goroutine; the connection is closed when handle returns.
func (s *connSet) serve(ln net.Listener, handle func(net.Conn)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			if !s.track(c) {
				c.Close()
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.untrack(c)
				handle(c)
			}()
		}
	}()
}

// track registers an open connection, unless the set is shutting down.
func (s *connSet) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (s *connSet) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	c.Close()
}

// closeAll closes every open connection (their handlers then return).
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// wait waits for the accept loop and every handler.
func (s *connSet) wait() { s.wg.Wait() }
