package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/nsenter"
)

// The API server as a container sees it. A real Pod reaches it through
// the "kubernetes" Service (ClusterIP, port 443); the lab has no Services,
// and the API server listens on the host's loopback, which no lab
// namespace reaches. So the kubelet listens on the Service's port on the
// loopback of each namespace it runs a process in, and forwards from there.
// The API server's certificate carries 127.0.0.1 (internal/kubetest), so a
// client verifies it with the ca.crt of kube-root-ca.crt as in a cluster.
const (
	apiServiceHost     = "127.0.0.1"
	apiServicePort     = 443
	apiForwardDialWait = 5 * time.Second // dialling the API server for one forwarded connection
)

// kubernetesServiceEnv is the "kubernetes" Service's environment, which a
// kubelet gives every container (service links or not), pointing at the
// forwarder.
func kubernetesServiceEnv() [][2]string {
	host, port := apiServiceHost, strconv.Itoa(apiServicePort)
	url := "tcp://" + net.JoinHostPort(host, port)
	pfx := "KUBERNETES_PORT_" + port + "_TCP"
	return [][2]string{
		{"KUBERNETES_SERVICE_HOST", host},
		{"KUBERNETES_SERVICE_PORT", port},
		{"KUBERNETES_SERVICE_PORT_HTTPS", port},
		{"KUBERNETES_PORT", url},
		{pfx, url},
		{pfx + "_PROTO", "tcp"},
		{pfx + "_PORT", port},
		{pfx + "_ADDR", host},
	}
}

// apiServerAddr is where the forwarders dial: opts.APIServer, else the
// host of cs's own URL (a client-go Clientset's).
func apiServerAddr(cs kubernetes.Interface, opts Options) (string, error) {
	if opts.APIServer != "" {
		if _, _, err := net.SplitHostPort(opts.APIServer); err != nil {
			return "", fmt.Errorf("APIServer %q: want host:port: %w", opts.APIServer, err)
		}
		return opts.APIServer, nil
	}
	if rc, ok := cs.CoreV1().RESTClient().(*rest.RESTClient); ok && rc != nil {
		if u := rc.Get().URL(); u != nil && u.Host != "" {
			host := u.Host
			if u.Port() == "" { // https://host: the API server's default port
				host = net.JoinHostPort(u.Hostname(), "443")
			}
			return host, nil
		}
	}
	return "", errors.New("no API server address for the Pods: set Options.APIServer (host:port)")
}

// forwarders keeps one forwarder to the API server in each network
// namespace where a Pod's process runs, shared by the Pods there and
// closed when the last of them releases it.
type forwarders struct {
	target string // the API server's host:port, dialled from the kubelet's own namespace
	logf   func(format string, a ...any)

	mu      sync.Mutex
	byNetns map[string]*forwarder
}

func newForwarders(target string, logf func(string, ...any)) *forwarders {
	return &forwarders{target: target, logf: logf, byNetns: map[string]*forwarder{}}
}

// forwarder listens inside one network namespace and carries each
// connection to the API server.
type forwarder struct {
	netns  string
	target string
	ln     net.Listener // its socket lives in netns
	users  int          // Pods holding it; guarded by forwarders.mu

	ctx    context.Context // cancelled on close: dials in flight give up
	cancel context.CancelFunc
	conns  *connSet
}

// acquire makes sure netns has a forwarder and counts one more user of it.
func (fs *forwarders) acquire(netns string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.byNetns[netns]; f != nil {
		f.users++
		return nil
	}
	addr := net.JoinHostPort(apiServiceHost, strconv.Itoa(apiServicePort))
	var ln net.Listener
	// A socket belongs to the namespace of the thread that creates it, and
	// stays there: accept and the upstream dial run on any thread after.
	if err := nsenter.Do(netns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return fmt.Errorf("forward the API server into %s: %w", netns, err)
	}
	f := &forwarder{netns: netns, target: fs.target, ln: ln, users: 1}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.conns = newConnSet(f.ctx)
	fs.byNetns[netns] = f
	f.conns.serve(ln, f.serve)
	fs.logf("%s: forwarding %s to the API server at %s", netns, addr, fs.target)
	return nil
}

// release counts one user less, closing netns's forwarder after the last.
func (fs *forwarders) release(netns string) {
	fs.mu.Lock()
	f := fs.byNetns[netns]
	if f == nil {
		fs.mu.Unlock()
		return
	}
	f.users--
	if f.users > 0 {
		fs.mu.Unlock()
		return
	}
	delete(fs.byNetns, netns)
	// The listener closes under the lock: a Pod that comes next to the same
	// namespace must find the port free.
	f.ln.Close()
	fs.mu.Unlock()
	f.close()
	fs.logf("%s: API server forwarder closed", netns)
}

// closeAll closes every forwarder, whoever holds it: the kubelet stops.
func (fs *forwarders) closeAll() {
	fs.mu.Lock()
	all := fs.byNetns
	fs.byNetns = map[string]*forwarder{}
	for _, f := range all {
		f.ln.Close()
	}
	fs.mu.Unlock()
	for _, f := range all {
		f.close()
	}
}

// open lists the namespaces that have a forwarder.
func (fs *forwarders) open() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	for netns := range fs.byNetns {
		out = append(out, netns)
	}
	return out
}

// close ends every forwarded connection and waits for them; the listener
// is closed already.
func (f *forwarder) close() {
	f.cancel()
	f.conns.closeAll()
	f.conns.wait()
}

// serve carries one connection to the API server and back. A failed dial
// just closes the client's connection, as a Service without a backend does.
func (f *forwarder) serve(c net.Conn) {
	d := net.Dialer{Timeout: apiForwardDialWait}
	up, err := d.DialContext(f.ctx, "tcp", f.target)
	if err != nil {
		return
	}
	if !f.conns.track(up) {
		up.Close()
		return
	}
	defer f.conns.untrack(up)
	// Half-closes pass through, so a client that is done sending still gets
	// its answer.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, c)
		closeWrite(up)
	}()
	_, _ = io.Copy(c, up)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}
