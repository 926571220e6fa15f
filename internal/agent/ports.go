package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"podpath/internal/probe"
)

// PortCheck names one port: a listener to open (POST /v1/listen) or a port
// to check on every target (ProbeRequest.Ports).
type PortCheck struct {
	Proto string `json:"proto"` // tcp | udp
	Port  int    `json:"port"`
}

// ListenRequest asks for temporary listeners (POST /v1/listen), so that a
// node without its cluster services yet can be checked for the ports they
// will need.
type ListenRequest struct {
	Ports   []PortCheck `json:"ports"`
	Seconds int         `json:"seconds"`
}

// ListenResult is one requested listener. A port something else already
// holds is Taken: whatever holds it answers a TCP check in its place.
type ListenResult struct {
	Proto     string `json:"proto"`
	Port      int    `json:"port"`
	Listening bool   `json:"listening"`
	Taken     bool   `json:"taken,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ListenResponse is the answer to a ListenRequest, in its order.
type ListenResponse struct {
	Ports []ListenResult `json:"ports"`
}

// Port limits: Calico and Kubernetes need a handful of ports; a listener
// lives no longer than a preflight run needs it.
const (
	MaxPorts         = 32
	MaxListenSeconds = 60
	// portChecksPerTarget bounds the sockets one target's checks open at once.
	portChecksPerTarget = 8
)

func checkPorts(ports []PortCheck) error {
	if len(ports) > MaxPorts {
		return fmt.Errorf("%d ports: at most %d", len(ports), MaxPorts)
	}
	seen := map[PortCheck]bool{}
	for _, p := range ports {
		if p.Proto != probe.ProtoTCP && p.Proto != probe.ProtoUDP {
			return fmt.Errorf("port %d: proto %q, want tcp or udp", p.Port, p.Proto)
		}
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("%s port %d: must be 1-65535", p.Proto, p.Port)
		}
		if seen[p] {
			return fmt.Errorf("%s port %d twice", p.Proto, p.Port)
		}
		seen[p] = true
	}
	return nil
}

// listenPrivileged are the ports below 1024 a temporary listener may take:
// those the preflight checks (BGP). Any other port under 1024 belongs to a
// service only root may run, which the agent's privileges must not stand
// in for; ports from 1024 any user can bind anyway.
var listenPrivileged = map[PortCheck]bool{{probe.ProtoTCP, 179}: true}

// ListenAllowed says whether /v1/listen may open p.
func ListenAllowed(p PortCheck) bool { return p.Port >= 1024 || listenPrivileged[p] }

func (req *ListenRequest) check() error {
	if len(req.Ports) == 0 {
		return fmt.Errorf("no ports: want 1-%d", MaxPorts)
	}
	if req.Seconds < 1 || req.Seconds > MaxListenSeconds {
		return fmt.Errorf("seconds %d: must be 1-%d", req.Seconds, MaxListenSeconds)
	}
	if err := checkPorts(req.Ports); err != nil {
		return err
	}
	for _, p := range req.Ports {
		if !ListenAllowed(p) {
			return fmt.Errorf("%s port %d: below 1024 only tcp 179 (BGP) may be opened", p.Proto, p.Port)
		}
	}
	return nil
}

// portState is the agent's part for ports: the temporary listeners and
// what checks them.
type portState struct {
	responder *probe.Responder       // answers the agent's peers only
	listened  *prometheus.CounterVec // listeners asked for, by proto and result
	checked   *prometheus.CounterVec // ports checked, by proto and state
	plainDial bool                   // Config.Dial not set: port checks may bind the source

	mu       sync.Mutex
	listenIP netip.Addr // the agent's own; invalid or unspecified: any
	open     *listenSet
	stopped  bool
}

func (s *portState) init(a *Agent, lim *rate.Limiter, plainDial bool) {
	s.responder = &probe.Responder{Limiter: lim, Allow: a.isPeerIP}
	s.plainDial = plainDial
	s.listened = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podpath_agent_listen_ports_total", Help: "Temporary listeners asked for, by proto and result (listening, taken, failed).",
	}, []string{"proto", "result"})
	s.checked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podpath_agent_port_checks_total", Help: "Ports checked on peers, by proto and state.",
	}, []string{"proto", "state"})
}

func (s *portState) setListenAddr(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.listenIP = ap.Addr().Unmap()
	}
}

// localIP is the agent's listen address when it is a specific one.
func (s *portState) localIP() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listenIP.IsUnspecified() {
		return netip.Addr{}
	}
	return s.listenIP
}

// replace closes the listeners open now and opens these for d.
func (s *portState) replace(ports []PortCheck, d time.Duration) ([]ListenResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, fmt.Errorf("agent is stopping")
	}
	if s.open != nil {
		s.open.close() // first: the new set may ask for the same ports
	}
	ip := s.listenIP
	if !ip.IsValid() {
		ip = netip.IPv6Unspecified() // Handler without Serve: any address, both families
	}
	set, results := openListeners(ip, ports, d, s.responder)
	s.open = set
	for _, r := range results {
		result := "failed"
		switch {
		case r.Listening:
			result = "listening"
		case r.Taken:
			result = "taken"
		}
		s.listened.WithLabelValues(r.Proto, result).Inc()
	}
	return results, nil
}

// closeAll closes the temporary listeners now; later requests may open more.
func (s *portState) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open != nil {
		s.open.close()
		s.open = nil
	}
}

// stop closes the listeners for good: the agent is stopping.
func (s *portState) stop() {
	s.mu.Lock()
	s.stopped = true // no replace opens any after this
	s.mu.Unlock()
	s.closeAll()
}

func (a *Agent) isPeerIP(ip netip.Addr) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.peerIPs[ip]
}

// unlisten closes the temporary listeners at once (DELETE /v1/listen): a
// preflight that ends early, or is interrupted, leaves no port held.
func (a *Agent) unlisten(w http.ResponseWriter, _ *http.Request) {
	a.ports.closeAll()
	writeJSON(w, ListenResponse{Ports: []ListenResult{}})
}

func (a *Agent) listen(w http.ResponseWriter, r *http.Request) {
	var req ListenRequest
	if !decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	results, err := a.ports.replace(req.Ports, time.Duration(req.Seconds)*time.Second)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, ListenResponse{Ports: results})
}

// checkPeerPorts checks ports on p's IP, portChecksPerTarget at a time.
func (a *Agent) checkPeerPorts(ctx context.Context, p Peer, ports []PortCheck) []probe.PortResult {
	ap, err := netip.ParseAddrPort(p.Address)
	if err != nil {
		return nil // refused when the peers were set
	}
	ip := ap.Addr().Unmap()
	dial := a.dialer(ip)
	results := make([]probe.PortResult, len(ports))
	sem := make(chan struct{}, portChecksPerTarget)
	var wg sync.WaitGroup
	for i, pc := range ports {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			target := netip.AddrPortFrom(ip, uint16(pc.Port))
			if pc.Proto == probe.ProtoTCP {
				results[i] = probe.CheckTCP(ctx, dial, target)
			} else {
				results[i] = probe.CheckUDP(ctx, a.source(ip), target)
			}
			a.ports.checked.WithLabelValues(pc.Proto, results[i].State).Inc()
		})
	}
	wg.Wait()
	return results
}

// Unlisten closes the agent's temporary listeners.
func (c *Client) Unlisten(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	return c.do(ctx, http.MethodDelete, "/v1/listen", nil, nil)
}

// Listen opens temporary listeners on the agent.
func (c *Client) Listen(ctx context.Context, req ListenRequest) (*ListenResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var out ListenResponse
	if err := c.do(ctx, http.MethodPost, "/v1/listen", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
