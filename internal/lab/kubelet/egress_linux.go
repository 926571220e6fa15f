package kubelet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"podpath/internal/lab"
	"podpath/internal/nsenter"
)

// Bounds of one tunnel through the egress proxy.
const (
	egressRequestTimeout = 10 * time.Second // reading the CONNECT request
	egressDialTimeout    = 5 * time.Second
)

// egress is the API server's way into the lab. A real cluster that runs its
// control plane apart from the nodes (most managed ones) gives the API
// server a Konnectivity agent on each node; the lab's Pod and node
// addresses likewise exist only inside its namespaces, so this proxy takes
// the API server's CONNECT and dials from the namespace that owns the
// address, as that node's agent would.
type egress struct {
	ctx    context.Context
	cancel context.CancelFunc
	ln     net.Listener
	socket string
	owners map[netip.Addr]string // address → the namespace that has it
	conns  *connSet
	once   sync.Once
}

// ServeEgress serves an HTTP CONNECT proxy into the lab on a Unix socket
// (kubetest.Options.EgressSocket) until stop is called or ctx ends. It
// tunnels only to the lab's node and Pod addresses; anything else is 403.
func ServeEgress(ctx context.Context, l *lab.Lab, socket string) (stop func(), err error) {
	owners := map[netip.Addr]string{}
	for _, n := range l.Spec.Nodes {
		owners[n.Address] = n.Netns
		for _, p := range n.Pods {
			owners[p.Address] = p.Netns
		}
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("egress: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	if err := os.Chmod(socket, 0o600); err != nil { // the API server runs as us
		ln.Close()
		return nil, fmt.Errorf("egress: %w", err)
	}
	e := &egress{ln: ln, socket: socket, owners: owners}
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.conns = newConnSet(e.ctx)
	context.AfterFunc(e.ctx, e.shutdown)
	e.conns.serve(ln, e.serve)
	return e.stop, nil
}

func (e *egress) stop() {
	e.cancel()
	e.shutdown()
	e.conns.wait()
}

// shutdown closes the listener and every open tunnel; idempotent.
func (e *egress) shutdown() {
	e.once.Do(func() {
		e.ln.Close()
		e.conns.closeAll()
		_ = os.Remove(e.socket)
	})
}

// serve answers one CONNECT and, when allowed, tunnels until either side closes.
func (e *egress) serve(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(egressRequestTimeout))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		reply(c, http.StatusMethodNotAllowed)
		return
	}
	ap, err := netip.ParseAddrPort(req.Host)
	netns, ok := e.owners[ap.Addr().Unmap()]
	if err != nil || !ok {
		reply(c, http.StatusForbidden) // the lab never routes outside itself
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	dctx, cancel := context.WithTimeout(e.ctx, egressDialTimeout)
	up, err := nsenter.DialContext(dctx, netns, &net.Dialer{Timeout: egressDialTimeout}, "tcp", ap.String())
	cancel()
	if err != nil {
		reply(c, http.StatusBadGateway)
		return
	}
	if !e.conns.track(up) {
		up.Close()
		return
	}
	defer e.conns.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }() // br: bytes already read belong to the tunnel
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

func reply(c net.Conn, code int) {
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code, http.StatusText(code))
}
