package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"podpath/internal/apiauth"
	"podpath/internal/probe"
)

const token = "s3cret-token"

// startAgent runs an agent on an IPv4 loopback port and returns its address.
func startAgent(t *testing.T, name string) string {
	t.Helper()
	return startAgentOn(t, name, "127.0.0.1:0")
}

func startAgentOn(t *testing.T, name, listen string) string {
	t.Helper()
	addr, _ := runAgent(t, name, listen)
	return addr
}

// runAgent starts an agent on listen; stop ends it (also at cleanup).
func runAgent(t *testing.T, name, listen string) (addr string, stop func()) {
	t.Helper()
	return serveAgent(t, newAgent(t, name), listen)
}

func newAgent(t *testing.T, name string) *Agent {
	t.Helper()
	a, err := New(Config{Name: name, Role: "host", Token: token,
		Facts: func(context.Context) (any, error) { return map[string]string{"hostname": name}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// serveAgent serves a on listen; stop ends it (also at cleanup).
func serveAgent(t *testing.T, a *Agent, listen string) (addr string, stop func()) {
	t.Helper()
	ln, pc, err := ListenPair(listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Serve(ctx, ln, pc); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	names.Store(ln.Addr().String(), a.cfg.Name)
	return ln.Addr().String(), stop
}

// names are the test agents' names by address: what credentials for them
// are made for.
var names sync.Map

func nameOf(addr string) string {
	n, _ := names.Load(addr)
	s, _ := n.(string)
	return s
}

// client is a controller's client of the test agent at addr.
func client(addr string) *Client { return NewClient(nameOf(addr), addr, token, "") }

// call sends a request signed with the token auth ("": no credential;
// "raw:…": that Authorization header instead).
func call(t *testing.T, method, url, auth string, body io.Reader) (int, string) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = io.ReadAll(body)
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	if raw, ok := strings.CutPrefix(auth, "raw:"); ok {
		req.Header.Set("Authorization", raw)
	} else if auth != "" {
		cred, _ := apiauth.Sign(auth, nameOf(req.URL.Host), method, req.URL.Path, b, time.Now())
		req.Header.Set(apiauth.Header, cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

func TestAuthentication(t *testing.T) {
	addr := startAgent(t, "a")
	base := "http://" + addr
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"healthz_is_open", "GET", "/healthz", "", 200},
		{"metrics_is_open", "GET", "/metrics", "", 200},
		{"facts_without_token", "GET", "/v1/facts", "", 401},
		{"facts_wrong_token", "GET", "/v1/facts", "nope", 401},
		{"facts_basic_auth", "GET", "/v1/facts", "raw:Basic " + token, 401},
		{"facts_bearer_token", "GET", "/v1/facts", "raw:Bearer " + token, 401}, // the token itself is no credential
		{"facts_signed", "GET", "/v1/facts", token, 200},
		{"probe_without_token", "POST", "/v1/probe", "", 401},
		{"peers_without_token", "PUT", "/v1/peers", "", 401},
		{"sink_without_token", "POST", probe.SinkPath, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := call(t, tc.method, base+tc.path, tc.auth, strings.NewReader("{}")); code != tc.want {
				t.Errorf("%s %s: %d %s; want %d", tc.method, tc.path, code, body, tc.want)
			}
		})
	}
}

// Through the API server's Pod proxy the credential travels in its own
// header (the proxy keeps Authorization for the caller's credentials).
func TestProxyClientSigns(t *testing.T) {
	addr := startAgent(t, "a")
	ctx := context.Background()
	proxy := func(tok string) *Client {
		return NewProxyClient("a", addr, "http://"+addr+"/", tok, &http.Client{Timeout: ClientTimeout})
	}
	if _, err := proxy(token).Facts(ctx); err != nil {
		t.Errorf("facts signed with the token: %v", err)
	}
	if _, err := proxy("nope").Facts(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("facts signed with a wrong token: %v; want 401", err)
	}
	if _, err := proxy("").Facts(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("facts signed with an empty token: %v; want 401", err)
	}
}

func TestProbeOnlyKnownPeers(t *testing.T) {
	a := startAgent(t, "a")
	b := startAgent(t, "b")
	c := client(a)
	ctx := context.Background()
	if _, err := c.Probe(ctx, ProbeRequest{Targets: []string{b}}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("probe of an address that is no peer: %v; want 403", err)
	}
	if err := c.SetPeers(ctx, []Peer{{Name: "b", Address: b}}); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"127.0.0.9:7946", "c", "10.0.0.1:1"} {
		if _, err := c.Probe(ctx, ProbeRequest{Targets: []string{target}}); err == nil || !strings.Contains(err.Error(), "not a known peer") {
			t.Errorf("probe of %s: %v; want refused as not a known peer", target, err)
		}
	}
	resp, err := c.Probe(ctx, ProbeRequest{Targets: []string{"b"}, PathMTU: true,
		RTT: &Series{Count: 20, IntervalMs: 1}, TCPConnect: 3, HTTP: true, TransferBytes: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if !r.Reachable || r.RTT == nil || r.RTT.Received != 20 || r.TCPConnect.Received != 3 || r.HTTP.Status != 200 {
		t.Errorf("probe of b over loopback: %+v", r)
	}
	// Loopback carries up to the largest IPv4 packet, but how much of a
	// burst of 60 KB datagrams survives depends on socket buffers and load.
	// Byte-exact checks run on the lab; here: far beyond any Ethernet MTU.
	if r.PathMTU == nil || r.PathMTU.PathMTU < 16000 || r.PathMTU.PathMTU > 65535 {
		t.Errorf("loopback path MTU = %+v (%s); want 16000-65535", r.PathMTU, r.PathMTUError)
	}
	if r.Transfer == nil || r.Transfer.Bytes != 300_000 || r.Transfer.Stalled {
		t.Errorf("300 KB transfer over loopback: %+v", r.Transfer)
	}
	// The same target by address is the same peer.
	if _, err := c.Probe(ctx, ProbeRequest{Targets: []string{b}}); err != nil {
		t.Errorf("probe of a known peer by address: %v", err)
	}
}

// The agent asks a DNS server peer each question, in order, and says how
// each failed when nobody answers (probe's tests ask a server that does).
func TestDNSQuestionsToAPeer(t *testing.T) {
	a := startAgent(t, "a")
	c := client(a)
	ctx := context.Background()
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.LocalAddr().String()
	l.Close()
	if err := c.SetPeers(ctx, []Peer{{Name: "kube-system/coredns", Address: closed}}); err != nil {
		t.Fatal(err)
	}
	qs := []probe.DNSQuery{{Name: "kubernetes.default.svc.cluster.local", Type: "A"}, {Name: "kubernetes.default.svc.cluster.local", Type: "A", TCP: true}}
	resp, err := c.Probe(ctx, ProbeRequest{Targets: []string{"kube-system/coredns"}, DNS: qs})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if len(r.DNS) != 2 || r.DNS[0].TCP || !r.DNS[1].TCP || r.DNS[0].Error != "refused" || r.DNS[1].Error != "refused" || r.Reachable || r.RTT != nil {
		t.Errorf("questions to a closed port: %+v", r)
	}
}

// A peer whose first burst of echoes is all lost (heavy random loss) is
// asked again before it is called unreachable.
func TestReachabilityAsksAgainAfterALostBurst(t *testing.T) {
	a := startAgent(t, "a")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // drops the first reachEchoes probes, answers the rest
		buf, out := make([]byte, 2048), make([]byte, 2048)
		for seen := 0; ; seen++ {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply, err := probe.Reply(buf[:n], out); err == nil && seen >= reachEchoes {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	}()
	c := client(a)
	if err := c.SetPeers(context.Background(), []Peer{{Name: "lossy", Address: pc.LocalAddr().String()}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Probe(context.Background(), ProbeRequest{Targets: []string{"lossy"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; !r.Reachable || len(r.Errors) > 0 {
		t.Errorf("peer that lost the first %d echoes: reachable %v, errors %v; want reachable", reachEchoes, r.Reachable, r.Errors)
	}
}

// IPv6: the DF option and the error queue are the IPV6_ ones.
func TestProbeOverIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("skipped: no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	a := startAgentOn(t, "a", "[::1]:0")
	b := startAgentOn(t, "b", "[::1]:0")
	c := client(a)
	if err := c.SetPeers(context.Background(), []Peer{{Name: "b", Address: b}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Probe(context.Background(), ProbeRequest{Targets: []string{"b"}, PathMTU: true, RTT: &Series{Count: 5, IntervalMs: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if !r.Reachable || r.RTT.Received != 5 || r.PathMTU == nil || r.PathMTU.PathMTU < 16000 {
		t.Errorf("IPv6 loopback probe: %+v (path MTU %+v, %s)", r, r.PathMTU, r.PathMTUError)
	}
}

func TestBadRequestsAndTheAgentKeepsServing(t *testing.T) {
	addr := startAgent(t, "a")
	base := "http://" + addr
	auth := token
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed_json", "POST", "/v1/probe", `{"targets": [`, 400},
		{"unknown_field", "POST", "/v1/probe", `{"targets": ["b"], "bogus": 1}`, 400},
		{"trailing_data", "PUT", "/v1/peers", `{"peers": []} {}`, 400},
		{"no_targets", "POST", "/v1/probe", `{"targets": []}`, 400},
		{"huge_series", "POST", "/v1/probe", `{"targets": ["b"], "rtt": {"count": 1000000, "intervalMs": 1}}`, 400},
		{"oversized_body", "PUT", "/v1/peers", `{"peers": [` + strings.Repeat(`{"name":"x","address":"1.2.3.4:5"},`, MaxBodyBytes/35+1) + `{}]}`, 413},
		{"bad_peer_address", "PUT", "/v1/peers", `{"peers": [{"name": "b", "address": "b:1"}]}`, 400},
		{"sink_without_upgrade", "POST", probe.SinkPath, ``, 400},
		// A DNS server is asked questions and sent nothing else.
		{"dns_beside_echoes", "POST", "/v1/probe", `{"targets": ["b"], "tcpConnect": 2, "dns": [{"name": "a.example", "type": "A"}]}`, 400},
		{"dns_type_mx", "POST", "/v1/probe", `{"targets": ["b"], "dns": [{"name": "a.example", "type": "MX"}]}`, 400},
		{"dns_too_many", "POST", "/v1/probe", `{"targets": ["b"], "dns": [` + strings.Repeat(`{"name": "a.example"},`, MaxDNSQueries) + `{"name": "a.example"}]}`, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := call(t, tc.method, base+tc.path, auth, strings.NewReader(tc.body)); code != tc.want {
				t.Errorf("%s: %d %s; want %d", tc.name, code, body, tc.want)
			}
			if code, _ := call(t, "GET", base+"/healthz", "", nil); code != 200 {
				t.Errorf("agent stopped serving after %s", tc.name)
			}
		})
	}
}

func TestAPIRateLimit(t *testing.T) {
	addr := startAgent(t, "a")
	limited := 0
	for range APIBurst + 20 {
		if code, _ := call(t, "GET", "http://"+addr+"/v1/peers", token, nil); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("%d requests in a burst: none refused with 429", APIBurst+20)
	}
}

// A flood of UDP probes gets no answer larger than itself, no answer at
// all to what is not a probe, and at most the responder's rate.
func TestUDPFlood(t *testing.T) {
	addr := startAgent(t, "a")
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const flood = 30000
	replies, larger := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			replies++
			if n > 200 {
				larger++
			}
		}
	}()
	start := time.Now()
	req := make([]byte, 200)
	probe.Header{Seq: 1}.Put(req)
	junk := bytes.Repeat([]byte{0xff}, 200)
	for i := range flood {
		if i%2 == 0 {
			_, _ = c.Write(req)
		} else {
			_, _ = c.Write(junk) // not a probe: never answered
		}
	}
	elapsed := time.Since(start)
	<-done
	maxAllowed := probe.ResponderBurst + int(probe.ResponderRate*(elapsed.Seconds()+0.6))
	if larger > 0 {
		t.Errorf("%d answers larger than the 200-byte probe", larger)
	}
	if replies > flood/2 || replies > maxAllowed {
		t.Errorf("%d answers to %d probes and %d junk datagrams in %s; want at most %d (rate limit) and none to junk", replies, flood/2, flood/2, elapsed, maxAllowed)
	}
	if replies == 0 {
		t.Errorf("no answers at all")
	}
	t.Logf("%d probes + %d junk in %s: %d answers", flood/2, flood/2, elapsed, replies)
}

func TestMetricsCountRequests(t *testing.T) {
	addr := startAgent(t, "a")
	call(t, "GET", "http://"+addr+"/v1/facts", "", nil)
	_, body := call(t, "GET", "http://"+addr+"/metrics", "", nil)
	if !strings.Contains(body, `podpath_agent_requests_total{code="401",endpoint="facts"} 1`) {
		t.Errorf("metrics lack the refused facts request:\n%s", body)
	}
	var f map[string]string
	_, body = call(t, "GET", "http://"+addr+"/v1/facts", token, nil)
	if err := json.Unmarshal([]byte(body), &f); err != nil || f["hostname"] != "a" {
		t.Errorf("facts = %s, %v", body, err)
	}
}

// A passive agent (monitor mode) has no token and takes no orders: the
// endpoints that make an agent act do not exist, the read-only ones do.
func TestPassiveAgent(t *testing.T) {
	if _, err := New(Config{Name: "a", Role: "pod"}); err == nil {
		t.Fatal("an agent that takes orders started without a token")
	}
	pairs := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"pairs":[]}`) })
	a, err := New(Config{Name: "a", Role: "pod", Passive: true, ReadOnly: map[string]http.Handler{"/debug/pairs": pairs}})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/healthz", 200}, {"GET", "/metrics", 200}, {"GET", "/debug/pairs", 200},
		{"PUT", "/v1/peers", 404}, {"POST", "/v1/probe", 404}, {"POST", "/v1/listen", 404}, {"GET", "/v1/facts", 404},
		{"POST", probe.SinkPath, 404}, {"POST", "/debug/pairs", 405},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, strings.NewReader("{}")))
		if rec.Code != c.code {
			t.Errorf("%s %s: %d; want %d", c.method, c.path, rec.Code, c.code)
		}
	}
}

// A passive agent's read-only endpoints answer one request at a time, and
// it exports none of the API's metrics.
func TestPassiveAgentOneReadAtATime(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
	})
	a, err := New(Config{Name: "a", Role: "pod", Passive: true, ReadOnly: map[string]http.Handler{"/debug/pairs": slow}})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pairs", nil))
		done <- rec.Code
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pairs", nil))
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("a second /debug/pairs while the first runs: %d; want 429", rec.Code)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("the first /debug/pairs: %d", code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), "podpath_agent_") {
		t.Errorf("a passive agent exports API metrics:\n%s", rec.Body)
	}
}

// Requests without the token are charged to their own small budget: a
// flood of them from another address leaves the controller's calls alone
// (issue 15: 7 of 10 of the controller's calls got 429).
func TestStrangersDoNotUseTheControllersBudget(t *testing.T) {
	addr := startAgent(t, "a")
	stranger := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	codes := map[int]int{}
	for range 200 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/probe", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := stranger.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[http.StatusOK] > 0 || codes[http.StatusUnauthorized] == 0 || codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("200 requests with a wrong token: %v; want 401s, then 429s, never 200", codes)
	}
	for i := range 10 {
		if code, body := call(t, "GET", "http://"+addr+"/v1/peers", token, nil); code != http.StatusOK {
			t.Errorf("controller's call %d after the flood: %d %s; want 200", i, code, body)
		}
	}
}

// A caller that opens many connections and sends nothing keeps only
// MaxConnsPerIP of them; the controller, from another address, is served.
func TestIdleConnectionsDoNotStarveTheController(t *testing.T) {
	addr := startAgent(t, "a")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var conns []net.Conn
	for range 3 * MaxConnsPerIP {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Past the cap, the agent closes at once: a read sees EOF, not a timeout.
	closed := 0
	for _, c := range conns[MaxConnsPerIP:] {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF || (err != nil && !isTimeout(err)) {
			closed++
		}
	}
	if want := len(conns) - MaxConnsPerIP; closed != want {
		t.Errorf("%d idle connections from one address: %d closed by the agent; want the %d past MaxConnsPerIP", len(conns), closed, want)
	}
	if code, body := call(t, "GET", "http://"+addr+"/v1/peers", token, nil); code != http.StatusOK {
		t.Errorf("controller's call while another address holds idle connections: %d %s", code, body)
	}
	// A body sent a byte at a time ends at ReadTimeout, not when the caller likes.
	if testing.Short() {
		return
	}
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	cred, _ := apiauth.Sign(token, "a", "PUT", "/v1/peers", nil, time.Now()) // valid: the body is read
	_, _ = io.WriteString(slow, "PUT /v1/peers HTTP/1.1\r\nHost: a\r\n"+apiauth.Header+": "+cred+"\r\nContent-Length: 100000\r\n\r\n")
	var answer []byte
	for time.Since(start) < ReadTimeout+5*time.Second {
		if _, err := slow.Write([]byte("{")); err != nil {
			break
		}
		_ = slow.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 512)
		n, err := slow.Read(buf)
		answer = append(answer, buf[:n]...)
		if err != nil && !isTimeout(err) {
			break
		}
	}
	if held := time.Since(start); held > ReadTimeout+3*time.Second {
		t.Errorf("a byte-at-a-time body held the connection %s; want it cut at ReadTimeout (%s)", held.Round(time.Second), ReadTimeout)
	}
	// Signed, but slow: a timeout (the client tries once more), not "unauthorized".
	if !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) {
		t.Errorf("a signed request whose body came too slowly got %.60q; want 408 Request Timeout", answer)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Something posing as an agent that answers without end costs the
// controller MaxAnswerBytes, not all its memory (issue 15: 1 GiB streamed
// took the controller to 3.2 GB).
func TestClientCapsAnAnswerWithoutEnd(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"from":"`)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range (1 << 30) / len(chunk) { // 1 GiB at most, then the test ends
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := NewClient("fake", strings.TrimPrefix(srv.URL, "http://"), token, "")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := c.Probe(context.Background(), ProbeRequest{Targets: []string{"b"}})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "not an agent's answer") {
		t.Errorf("an answer without end: %v; want it cut off", err)
	}
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 100<<20 {
		t.Errorf("reading the answer grew the heap by %d MiB; want under 100", grew>>20)
	}
}

// Peers that are no single host are refused; the same peer or target
// twice is one (issue 15: a 1.27 KB request made ~72 MB of UDP).
func TestPeersAndTargetsAreHostsOnce(t *testing.T) {
	a := startAgent(t, "a")
	b := startAgent(t, "b")
	c := client(a)
	ctx := context.Background()
	for _, bad := range []struct{ addr, says string }{
		{"0.0.0.0:7946", "unspecified"}, {"[::]:7946", "unspecified"},
		{"255.255.255.255:7946", "broadcast"}, {"224.0.0.1:7946", "multicast"}, {"[ff02::1]:7946", "multicast"},
		{"127.0.0.1:0", "port 0"},
	} {
		if err := c.SetPeers(ctx, []Peer{{Name: "x", Address: bad.addr}}); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("peer at %s: %v; want refused (%s)", bad.addr, err, bad.says)
		}
	}
	if err := c.SetPeers(ctx, []Peer{{Name: "b", Address: b}, {Name: "b", Address: "127.0.0.9:7946"}}); err == nil || !strings.Contains(err.Error(), "names must be unique") {
		t.Errorf("one name at two addresses: %v; want refused", err)
	}
	if err := c.SetPeers(ctx, []Peer{{Name: "b", Address: b}, {Name: "b", Address: b}}); err != nil {
		t.Fatalf("the same peer twice: %v", err)
	}
	resp, err := c.Probe(ctx, ProbeRequest{Targets: []string{"b", b, "b", "b"}, RTT: &Series{Count: 1, IntervalMs: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 {
		t.Errorf("one peer named four times: %d results; want it probed once", len(resp.Results))
	}
	if _, err := c.Listen(ctx, ListenRequest{Seconds: 1, Ports: []PortCheck{{probe.ProtoTCP, 22}}}); err == nil || !strings.Contains(err.Error(), "below 1024") {
		t.Errorf("listen on tcp 22: %v; want refused", err)
	}
}

// The cheap check: one round of a small and a full-sized probe per peer
// on one socket going from peer to peer; no handshake where a probe was
// answered, one where none was (to tell UDP blocked from nothing
// getting through); a lost round is no verdict before the echo bursts.
func TestCheapCheck(t *testing.T) {
	a := startAgent(t, "a")
	b := startAgent(t, "b")
	b2 := startAgent(t, "b2")
	tcpOnly, err := net.Listen("tcp4", "127.0.0.1:0") // no UDP responder on its port
	if err != nil {
		t.Fatal(err)
	}
	defer tcpOnly.Close()
	go func() {
		for {
			c, err := tcpOnly.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	lossy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lossy.Close()
	go func() { // loses the cheap round's two probes, answers the echoes after
		buf, out := make([]byte, 1<<16), make([]byte, 2048)
		for seen := 0; ; seen++ {
			n, from, err := lossy.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply, err := probe.Reply(buf[:n], out); err == nil && seen >= 2 {
				_, _ = lossy.WriteTo(reply, from)
			}
		}
	}()
	c := client(a)
	ctx := context.Background()
	peers := []Peer{{Name: "b", Address: b}, {Name: "b2", Address: b2}, {Name: "tcp-only", Address: tcpOnly.Addr().String()}, {Name: "lossy", Address: lossy.LocalAddr().String()}}
	if err := c.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Probe(ctx, ProbeRequest{Targets: []string{"b", "lossy", "b2", "tcp-only"}, Cheap: true, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TargetResult{}
	for _, r := range resp.Results {
		got[r.Peer] = r
	}
	for _, n := range []string{"b", "b2"} {
		if r := got[n]; !r.Reachable || r.FullSize == nil || !r.FullSize.Crossed || r.FullSize.Size != probe.MaxPacket(false) || r.TCPConnect != nil || len(r.Errors) > 0 {
			t.Errorf("cheap check of agent %s over loopback: %+v; want reachable, a %d-byte probe crossing, no handshake", n, r, probe.MaxPacket(false))
		}
	}
	if r := got["tcp-only"]; r.Reachable || r.TCPConnect == nil || r.TCPConnect.Received != 1 {
		t.Errorf("cheap check of a port with TCP only: %+v; want unreachable and one handshake made", r)
	}
	if r := got["lossy"]; !r.Reachable || r.FullSize == nil || r.FullSize.Crossed {
		t.Errorf("cheap check of a peer that lost the round: %+v; want reachable by the echoes, the full-sized probe lost", r)
	}
}

// A peer that does not answer the cheap round gives its slot back while
// its echo bursts wait out their timeouts: with one peer at a time, the
// second silent peer's round goes out while the first is still being
// sent echoes. (Held, a node cut off from 59 peers waited them out
// eight at a time, most of the doctor's minute.) The order of what the
// two silent peers receive says it, no clock bound.
func TestCheapCheckGivesSlotsOfSilentPeersBack(t *testing.T) {
	a := startAgent(t, "a")
	type silent struct {
		pc          net.PacketConn
		first, last time.Time
	}
	var mu sync.Mutex
	peers := map[string]*silent{}
	var list []Peer
	for _, name := range []string{"silent1", "silent2"} {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		sp := &silent{pc: pc}
		peers[name] = sp
		list = append(list, Peer{Name: name, Address: pc.LocalAddr().String()})
		go func() {
			buf := make([]byte, 1<<16)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				mu.Lock()
				if sp.first.IsZero() {
					sp.first = time.Now()
				}
				sp.last = time.Now()
				mu.Unlock()
			}
		}()
	}
	c := client(a)
	ctx := context.Background()
	if err := c.SetPeers(ctx, list); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Probe(ctx, ProbeRequest{Targets: []string{"silent1", "silent2"}, Cheap: true, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Reachable {
			t.Errorf("%s answered nothing: %+v; want unreachable", r.Peer, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	s1, s2 := peers["silent1"], peers["silent2"]
	if s1.first.IsZero() || s2.first.IsZero() {
		t.Fatal("a silent peer received nothing")
	}
	if early, late := s1, s2; s2.first.Before(s1.first) {
		s1, s2 = late, early
	}
	if !s2.first.Before(s1.last) {
		t.Errorf("the second silent peer's round went out %s after the first peer's last echo: its slot was held while it waited",
			s2.first.Sub(s1.last))
	}
}

// A large cluster's peer list fits a request: 5,000 peers with names as
// long as a cloud's node names.
func TestFiveThousandPeers(t *testing.T) {
	c := client(startAgent(t, "a"))
	peers := make([]Peer, 5000)
	for i := range peers {
		peers[i] = Peer{Name: fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", i>>16, (i>>8)&255, i&255), Address: fmt.Sprintf("10.%d.%d.%d:7946", i>>16, (i>>8)&255, i&255)}
	}
	ans, err := c.PutPeers(context.Background(), peers)
	if err != nil || ans.Peers != len(peers) {
		t.Fatalf("5,000 peers: %+v, %v; want all taken", ans, err)
	}
}

// An agent that closes the connection while a large request is still
// being written (the client's write fails: broken pipe) ran nothing: the
// client sends it once more, and the peers are taken.
func TestClientSendsAgainAfterABrokenPipe(t *testing.T) {
	addr := startAgent(t, "a")
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := front.Accept()
			if err != nil {
				return
			}
			if conns.Add(1) == 1 {
				// Read the headers, close: the rest of the body meets a
				// closed socket, which answers with a reset.
				_, _ = c.Read(make([]byte, 512))
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c) }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
	peers := make([]Peer, 5000) // a 5,000-node cluster's list: 300 KB
	for i := range peers {
		peers[i] = Peer{Name: fmt.Sprintf("node%d", i), Address: fmt.Sprintf("10.%d.%d.%d:7946", i>>16, (i>>8)&255, i&255)}
	}
	c := NewClient("a", front.Addr().String(), token, "")
	ans, err := c.PutPeers(t.Context(), peers)
	if err != nil || ans.Peers != len(peers) {
		t.Fatalf("peers through a connection closed mid-body: %+v, %v; want all taken on the second try", ans, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections; want the closed one and one more", n)
	}
}
