package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"podpath/internal/apiauth"
	"podpath/internal/probe"
)

// Timeouts and rates of the API.
const (
	ReadHeaderTimeout = 5 * time.Second
	ShutdownTimeout   = 5 * time.Second
	// MaxProbeRun bounds one probe request, whatever it asks for.
	MaxProbeRun = 90 * time.Second
	// APIRate is the authenticated API's request budget: a controller
	// sends a handful of requests per run.
	APIRate  = 20
	APIBurst = 40
	// StrangerRate is the budget of requests to the acting endpoints that
	// carry no valid token: their own, so a flood of them can never use up
	// the controller's (APIRate).
	StrangerRate  = 5
	StrangerBurst = 10
	// ReadTimeout bounds reading a whole request (headers and body, at
	// most MaxBodyBytes); IdleTimeout closes keep-alive connections that
	// send nothing. Neither limits an answer: a probe run takes up to
	// MaxProbeRun to answer.
	ReadTimeout = 10 * time.Second
	IdleTimeout = 30 * time.Second
	// MaxConns and MaxConnsPerIP cap open API connections: a caller that
	// opens many and sends nothing cannot use up the agent's file
	// descriptors or the slots its controller needs.
	// MaxConns holds every peer of a thousand-node cluster checking the
	// agent's TCP port at once (the doctor's cheap round), with room for
	// its controller: each of those handshakes holds a slot until the
	// agent has read its close, which under load lags.
	MaxConns      = 1280
	MaxConnsPerIP = 64 // a throughput test opens up to MaxStreams to one peer
)

// Config is how an agent is started.
type Config struct {
	Name  string
	Role  string // host | pod
	Token string
	// Facts returns the host facts (internal/hostfacts); nil: none served.
	Facts func(ctx context.Context) (any, error)
	// Registry receives the agent's metrics; nil: a fresh one.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Dial opens TCP connections to peers; nil: a plain dialer.
	Dial probe.Dialer
	// Passive agents (monitor mode) take no orders: no token, and none of
	// the endpoints that make an agent act (peers, probe, listen, sink).
	// They answer UDP probes and serve health, metrics and ReadOnly.
	Passive bool
	// ReadOnly are extra GET endpoints by path, served without a token
	// like /metrics (the monitor's /debug/pairs).
	ReadOnly map[string]http.Handler
}

// Agent is a running agent.
type Agent struct {
	cfg       Config
	limiter   *rate.Limiter // authenticated requests
	strangers *rate.Limiter // everything else
	verifier  *apiauth.Verifier
	responder *probe.Responder
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	probes    prometheus.Counter
	ports     portState
	// connsRefused counts API connections closed for the caps.
	connsRefused atomic.Uint64

	mu      sync.RWMutex
	peers   map[string]Peer     // by name
	peerIPs map[netip.Addr]bool // their addresses, for the port listeners
}

// New makes an agent; Serve starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Token == "" && !cfg.Passive {
		return nil, errors.New("agent needs a token (--token-file): every call that makes it act is authenticated")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	plainDial := cfg.Dial == nil
	if plainDial {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	// One answer budget for the agent's port and its temporary listeners.
	udpLimit := rate.NewLimiter(probe.ResponderRate, probe.ResponderBurst)
	a := &Agent{
		cfg:       cfg,
		limiter:   rate.NewLimiter(APIRate, APIBurst),
		strangers: rate.NewLimiter(StrangerRate, StrangerBurst),
		verifier:  apiauth.NewVerifier(cfg.Token, cfg.Name),
		responder: &probe.Responder{Limiter: udpLimit},
		reg:       cfg.Registry,
		peers:     map[string]Peer{},
	}
	a.ports.init(a, udpLimit, plainDial)
	if !cfg.Passive {
		// Peers come from the controller: strangers share a small budget.
		// A passive agent's peers are the monitor's, and all answered alike.
		a.responder.Peer = a.countsAsPeer
	}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podpath_agent_requests_total", Help: "API requests by endpoint and status code.",
	}, []string{"endpoint", "code"})
	a.probes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "podpath_agent_probe_targets_total", Help: "Peers probed on request.",
	})
	answered := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "podpath_agent_udp_answers_total", Help: "UDP probes answered.",
	}, func() float64 { return float64(a.responder.Answered.Load() + a.ports.responder.Answered.Load()) })
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "podpath_agent_udp_dropped_total", Help: "UDP datagrams not answered: not probes, over the rate, or (port listeners) not from a peer.",
	}, func() float64 { return float64(a.responder.Dropped.Load() + a.ports.responder.Dropped.Load()) })
	refused := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "podpath_agent_conns_refused_total", Help: "API connections closed at once: over the total or a source's cap.",
	}, func() float64 { return float64(a.connsRefused.Load()) })
	collectors := []prometheus.Collector{a.requests, a.probes, answered, dropped, refused, a.ports.listened, a.ports.checked}
	if cfg.Passive {
		// A monitor has no API to count, and its series budget (under 50
		// per node, issue 8) goes to what it measures.
		collectors = nil
	}
	for _, c := range collectors {
		if err := a.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register agent metrics: %w", err)
		}
	}
	return a, nil
}

// Serve runs the API on ln and the UDP responder on pc (the same address)
// until ctx ends.
func (a *Agent) Serve(ctx context.Context, ln net.Listener, pc net.PacketConn) error {
	a.ports.setListenAddr(ln.Addr())
	defer a.ports.stop() // no temporary listener outlives the agent
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout: ReadTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 2)
	go func() { errc <- a.responder.Serve(ctx, pc) }()
	// Answers go in small segments (control_linux.go); connections past the caps are closed.
	capped := newConnLimiter(pieceListener{ln}, connCap(), MaxConnsPerIP, &a.connsRefused)
	go func() { errc <- srv.Serve(capped) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	pc.Close()
	return srv.Shutdown(sctx)
}

// ListenAndServe listens on addr (TCP for the API, UDP for probes) and serves.
func (a *Agent) ListenAndServe(ctx context.Context, addr string) error {
	ln, pc, err := ListenPair(addr)
	if err != nil {
		return err
	}
	a.cfg.Logger.Info("agent listening", "addr", ln.Addr().String(), "name", a.cfg.Name, "role", a.cfg.Role)
	return a.Serve(ctx, ln, pc)
}

// ListenPair listens on addr over TCP (the API) and UDP (probes), on one
// port. With port 0 the kernel picks TCP's port, and UDP's same number
// may already be taken by something else: then it tries another port,
// a bounded number of times, rather than failing a start that asked for
// any port.
func ListenPair(addr string) (net.Listener, net.PacketConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 50
	}
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w", addr, err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if i+1 >= tries {
			return nil, nil, fmt.Errorf("listen on udp %s: %w", ln.Addr(), err)
		}
	}
}

// Handler is the agent's HTTP API.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	// Read-only, but each answer can be megabytes (/debug/pairs at 5,000
	// peers): the API's rate limit and one at a time, so nobody can run
	// the agent out of memory with parallel requests.
	busy := make(chan struct{}, 1)
	for path, h := range a.cfg.ReadOnly {
		mux.Handle("GET "+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case busy <- struct{}{}:
				defer func() { <-busy }()
			default:
				httpError(w, http.StatusTooManyRequests, "busy with another request: try again shortly")
				return
			}
			// The API's budget: ReadOnly is a passive agent's, which has no
			// authenticated calls to starve.
			if !a.limiter.Allow() {
				httpError(w, http.StatusTooManyRequests, "rate limit: try again shortly")
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	if a.cfg.Passive {
		return mux
	}
	mux.Handle("GET /v1/peers", a.guard("peers", a.getPeers))
	mux.Handle("PUT /v1/peers", a.guard("peers", a.putPeers))
	mux.Handle("POST /v1/probe", a.guard("probe", a.probe))
	mux.Handle("GET /v1/facts", a.guard("facts", a.facts))
	mux.Handle("POST /v1/listen", a.guard("listen", a.listen))
	mux.Handle("DELETE /v1/listen", a.guard("listen", a.unlisten))
	mux.Handle("POST "+probe.SinkPath, a.guard("sink", a.sink))
	return mux
}

// answerWriter holds an answer until its handler is done, so the answer
// can be signed (apiauth) before it is sent, and remembers the status code
// for the metrics. The sink's hijacked connection passes through unsigned:
// it carries only the upload's bytes.
type answerWriter struct {
	http.ResponseWriter
	code     int
	body     bytes.Buffer
	hijacked bool
}

func (w *answerWriter) WriteHeader(code int)        { w.code = code }
func (w *answerWriter) Write(b []byte) (int, error) { return w.body.Write(b) }

// Hijack lets the sink take over the connection through the wrapper.
func (w *answerWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	w.code, w.hijacked = http.StatusSwitchingProtocols, true
	return h.Hijack()
}

// send signs the answer of agent to the request with nonce and writes it.
func (w *answerWriter) send(token, agent, nonce string) {
	if w.hijacked {
		return
	}
	w.ResponseWriter.Header().Set(apiauth.AnswerHeader, apiauth.SignAnswer(token, agent, nonce, w.code, w.body.Bytes()))
	w.ResponseWriter.WriteHeader(w.code)
	_, _ = w.ResponseWriter.Write(w.body.Bytes())
}

type credKey struct{}

// guard authenticates, rate-limits and bounds a request before fn sees it.
// The credential is checked first, before the body is read: a request
// without a valid one is charged to the strangers' budget, never to the
// controller's, and costs the agent no body.
func (a *Agent) guard(endpoint string, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		defer func() { a.requests.WithLabelValues(endpoint, fmt.Sprint(code)).Inc() }()
		body, cred, err := a.authenticate(r)
		if err != nil {
			code = http.StatusUnauthorized
			switch {
			case errors.Is(err, errBodyTooLarge):
				code = http.StatusRequestEntityTooLarge
			case errors.Is(err, os.ErrDeadlineExceeded):
				// A signed header and a body slower than ReadTimeout: an
				// overloaded caller or agent, not a bad credential.
				code = http.StatusRequestTimeout
			}
			if !a.strangers.Allow() {
				code = http.StatusTooManyRequests
				httpError(w, code, "rate limit: try again shortly")
				return
			}
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `PodpathHMAC realm="podpath-agent"`)
			}
			if errors.Is(err, apiauth.ErrStale) {
				a.refuseStale(w, cred, err)
				return
			}
			httpError(w, code, err.Error())
			return
		}
		if !a.limiter.Allow() {
			code = http.StatusTooManyRequests
			httpError(w, code, "rate limit: try again shortly")
			return
		}
		// The request is read: ReadTimeout has done its work. Left in
		// place, it would end a probe run longer than it (a thousand
		// targets, a loaded machine) by cancelling the request's context
		// and closing the connection unanswered.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), credKey{}, cred))
		aw := &answerWriter{ResponseWriter: w, code: http.StatusOK}
		fn(aw, r)
		aw.send(a.cfg.Token, a.cfg.Name, cred.Nonce)
		code = aw.code
	})
}

// refuseStale answers a request made for this agent but too far from its
// clock with the clock, signed: a caller whose clock is off learns the
// agent's from it (apiauth.LearnSkew) and signs again; nobody else can
// make it adopt a time.
func (a *Agent) refuseStale(w http.ResponseWriter, cred apiauth.Credential, err error) {
	body, _ := json.Marshal(apiauth.StaleAnswer{Error: err.Error(), AgentTime: a.verifier.Time().Unix()})
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(apiauth.AnswerHeader, apiauth.SignAnswer(a.cfg.Token, a.cfg.Name, cred.Nonce, http.StatusUnauthorized, body))
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}

var errBodyTooLarge = fmt.Errorf("request body over %d bytes", MaxBodyBytes)

// authenticate checks a request's credential, then reads its body (at
// most MaxBodyBytes) and checks it against the signed hash.
func (a *Agent) authenticate(r *http.Request) ([]byte, apiauth.Credential, error) {
	cred, err := apiauth.Parse(r.Header.Get(apiauth.Header))
	if err != nil {
		return nil, cred, err
	}
	if err := a.verifier.Check(cred, r.Method, r.URL.Path); err != nil {
		return nil, cred, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, cred, fmt.Errorf("read request body: %w", err)
	}
	if len(body) > MaxBodyBytes {
		return nil, cred, errBodyTooLarge
	}
	if !cred.BodyMatches(body) {
		return nil, cred, apiauth.ErrBody
	}
	return body, cred, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors (guard has bounded the body).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func (a *Agent) getPeers(w http.ResponseWriter, _ *http.Request) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := PeersRequest{Peers: []Peer{}}
	for _, p := range a.peers {
		out.Peers = append(out.Peers, p)
	}
	writeJSON(w, out)
}

func (a *Agent) putPeers(w http.ResponseWriter, r *http.Request) {
	var req PeersRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Peers) > MaxPeers {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("%d peers: at most %d", len(req.Peers), MaxPeers))
		return
	}
	peers, ips := map[string]Peer{}, map[netip.Addr]bool{}
	for _, p := range req.Peers {
		ap, err := checkPeer(p)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if q, dup := peers[p.Name]; dup && q.Address != p.Address {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("peer name %s twice, at %s and %s: names must be unique", p.Name, q.Address, p.Address))
			return
		}
		peers[p.Name] = p                          // the same peer twice is one peer
		ips[ap.Addr().Unmap().WithZone("")] = true // as a datagram's sender reads
	}
	a.mu.Lock()
	a.peers, a.peerIPs = peers, ips
	a.mu.Unlock()
	writeJSON(w, PeersAnswer{Peers: len(peers), Load: a.load()})
}

// checkPeer parses a peer's address and refuses a peer no agent can be: a nameless one, an address
// that is not IP:port, port 0, or an address that reaches many hosts or
// none (unspecified, broadcast, multicast), which would turn the agent's
// probes into a flood of the whole segment.
func checkPeer(p Peer) (netip.AddrPort, error) {
	if p.Name == "" {
		return netip.AddrPort{}, errors.New("a peer without a name")
	}
	ap, err := netip.ParseAddrPort(p.Address)
	if err != nil {
		return ap, fmt.Errorf("peer %s: address %q is not IP:port", p.Name, p.Address)
	}
	ip := ap.Addr().Unmap()
	switch {
	case ap.Port() == 0:
		return ap, fmt.Errorf("peer %s: port 0", p.Name)
	case ip.IsUnspecified():
		return ap, fmt.Errorf("peer %s: %s is the unspecified address, not a host", p.Name, ip)
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ap, fmt.Errorf("peer %s: %s is a multicast or broadcast address, not a host", p.Name, ip)
	}
	return ap, nil
}

// countsAsPeer: ip is a peer's, or no peers are set yet (a controller's
// first reachability round may come before PUT /v1/peers lands on every
// agent; until then everyone is served from the one budget).
func (a *Agent) countsAsPeer(ip netip.Addr) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.peerIPs) == 0 || a.peerIPs[ip]
}

// resolve maps request targets to known peers; anything else is refused.
func (a *Agent) resolve(targets []string) ([]Peer, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Peer
	seen := map[string]bool{}
	for _, t := range targets {
		p, ok := a.peers[t]
		if !ok {
			for _, q := range a.peers {
				if q.Address == t {
					p, ok = q, true
					break
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("target %q is not a known peer: set peers with PUT /v1/peers first", t)
		}
		if seen[p.Name] { // a target named twice is probed once
			continue
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

func checkSeries(what string, s *Series) error {
	if s == nil {
		return nil
	}
	if s.Count < 1 || s.Count > MaxSeriesCount {
		return fmt.Errorf("%s count %d: must be 1-%d", what, s.Count, MaxSeriesCount)
	}
	if s.IntervalMs < MinIntervalMs || s.IntervalMs > MaxIntervalMs {
		return fmt.Errorf("%s interval %d ms: must be %d-%d", what, s.IntervalMs, MinIntervalMs, MaxIntervalMs)
	}
	if s.Size < 0 || s.Size > 65535 {
		return fmt.Errorf("%s size %d: must be 0-65535", what, s.Size)
	}
	return nil
}

func (req *ProbeRequest) check() error {
	if len(req.Targets) == 0 || len(req.Targets) > MaxTargets {
		return fmt.Errorf("%d targets: must be 1-%d", len(req.Targets), MaxTargets)
	}
	if err := errors.Join(checkSeries("rtt", req.RTT), checkSeries("icmp", req.ICMP)); err != nil {
		return err
	}
	if req.Parallel < 0 || req.Parallel > MaxParallel {
		return fmt.Errorf("parallel %d: must be 0-%d", req.Parallel, MaxParallel)
	}
	if req.TCPConnect < 0 || req.TCPConnect > MaxSeriesCount {
		return fmt.Errorf("tcpConnect %d: must be 0-%d", req.TCPConnect, MaxSeriesCount)
	}
	if req.TransferBytes < 0 || req.TransferBytes > MaxTransferBytes {
		return fmt.Errorf("transferBytes %d: must be 0-%d", req.TransferBytes, MaxTransferBytes)
	}
	if t := req.Throughput; t != nil && (t.Seconds <= 0 || t.Seconds > MaxThroughputSecs || t.Streams < 1 || t.Streams > MaxStreams) {
		return fmt.Errorf("throughput %+v: seconds must be in (0, %d], streams 1-%d", *t, MaxThroughputSecs, MaxStreams)
	}
	if err := checkDNS(req); err != nil {
		return err
	}
	return checkPorts(req.Ports)
}

// checkDNS refuses DNS questions beside other probes (a DNS server is
// asked questions, never sent echoes or uploads) and questions no Pod's
// resolver asks.
func checkDNS(req *ProbeRequest) error {
	if len(req.DNS) == 0 {
		return nil
	}
	if len(req.DNS) > MaxDNSQueries {
		return fmt.Errorf("%d DNS questions: at most %d", len(req.DNS), MaxDNSQueries)
	}
	if req.PathMTU || req.RTT != nil || req.ICMP != nil || req.TCPConnect > 0 || req.HTTP || req.TransferBytes > 0 ||
		req.Throughput != nil || len(req.Ports) > 0 || req.FullSize || req.Cheap {
		return errors.New("dns: a DNS server is only asked questions: send no other probe in the same request")
	}
	for _, q := range req.DNS {
		if q.Type != "" && q.Type != "A" && q.Type != "AAAA" {
			return fmt.Errorf("dns: question type %q: A or AAAA", q.Type)
		}
		if q.Name == "" || len(q.Name) > 254 {
			return fmt.Errorf("dns: name %q: 1-254 characters", q.Name)
		}
	}
	return nil
}

func (a *Agent) probe(w http.ResponseWriter, r *http.Request) {
	var req ProbeRequest
	if !decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	peers, err := a.resolve(req.Targets)
	if err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return
	}
	if errProbing != nil {
		// Refused whole: the controller reports the pairs unknown, never
		// unreachable.
		httpError(w, http.StatusNotImplemented, errProbing.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), MaxProbeRun)
	defer cancel()
	start := time.Now()
	resp := ProbeResponse{From: a.cfg.Name, Results: a.run(ctx, peers, &req)}
	resp.DurationMs = float64(time.Since(start)) / float64(time.Millisecond)
	resp.Load = a.load()
	writeJSON(w, resp)
}

// load reads the agent's own drop counters (Load).
func (a *Agent) load() Load {
	l := Load{OverRate: a.responder.OverRate.Load() + a.ports.responder.OverRate.Load()}
	n, err := probe.UDPRcvbufErrors()
	l.RcvbufErrors, l.RcvbufUnknown = n, err != nil
	return l
}

func (a *Agent) facts(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Facts == nil {
		httpError(w, http.StatusNotFound, "this agent serves no host facts")
		return
	}
	f, err := a.cfg.Facts(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, "collect host facts: "+err.Error())
		return
	}
	writeJSON(w, f)
}

// sink swallows an upload (probe.Upload) on the hijacked connection.
func (a *Agent) sink(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), probe.SinkProtocol) {
		httpError(w, http.StatusBadRequest, "sink needs Upgrade: "+probe.SinkProtocol)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", probe.SinkProtocol)
	if err := brw.Flush(); err != nil {
		return
	}
	cred, _ := r.Context().Value(credKey{}).(apiauth.Credential)
	sign := func(res []byte) []byte { return apiauth.SinkResultMAC(a.cfg.Token, a.cfg.Name, cred.Nonce, res) }
	if err := probe.ServeSink(conn, brw.Reader, MaxThroughputSecs*time.Second+probe.StallTimeout, sign); err != nil {
		a.cfg.Logger.Debug("sink", "err", err)
	}
}
