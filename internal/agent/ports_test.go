package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"podpath/internal/probe"
)

// Linux routes all of 127/8 to lo: each agent gets an address of its own,
// so a listener bound to the agent's IP is told apart from one on another.
const (
	ipA     = "127.0.0.2"
	ipB     = "127.0.0.3"
	ipOther = "127.0.0.4" // no agent, no peer
)

// freePort is a port nothing holds on ip right now.
func freePort(t *testing.T, proto, ip string) int {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func listenOn(t *testing.T, agentAddr string, req ListenRequest) []ListenResult {
	t.Helper()
	resp, err := client(agentAddr).Listen(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Ports) != len(req.Ports) {
		t.Fatalf("listen %+v: %d results", req, len(resp.Ports))
	}
	return resp.Ports
}

func tcpState(ip string, port int) string {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), time.Second)
	switch {
	case err == nil:
		c.Close()
		return "open"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	default:
		return err.Error()
	}
}

// exchange sends req from ip (any port) to to and returns the answer's
// length, or -1 when none comes within 500 ms.
func exchange(t *testing.T, from, to string, req []byte) int {
	t.Helper()
	laddr, _ := net.ResolveUDPAddr("udp", from+":0")
	raddr, _ := net.ResolveUDPAddr("udp", to)
	c, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return -1
	}
	return n
}

func probePacket(flags byte, size int) []byte {
	b := make([]byte, size)
	probe.Header{Flags: flags, Run: 7, Seq: 1}.Put(b)
	return b
}

func TestListenOpensAndCloses(t *testing.T) {
	b, _ := runAgent(t, "b", ipB+":0")
	if err := client(b).SetPeers(context.Background(), []Peer{{Name: "a", Address: ipA + ":7946"}}); err != nil {
		t.Fatal(err)
	}
	tcp, udp := freePort(t, "tcp", ipB), freePort(t, "udp", ipB)
	got := listenOn(t, b, ListenRequest{Seconds: 1, Ports: []PortCheck{{"tcp", tcp}, {"udp", udp}}})
	opened := time.Now()
	for _, r := range got {
		if !r.Listening || r.Taken || r.Error != "" {
			t.Errorf("listen %s/%d: %+v; want listening", r.Proto, r.Port, r)
		}
	}
	if s := tcpState(ipB, tcp); s != "open" {
		t.Errorf("tcp %s:%d while listening: %s", ipB, tcp, s)
	}
	// Bound to the agent's own address, not to every address of the node.
	if s := tcpState(ipOther, tcp); s != "refused" {
		t.Errorf("tcp %s:%d (not the agent's address): %s; want refused", ipOther, tcp, s)
	}
	if n := exchange(t, ipA, fmt.Sprintf("%s:%d", ipB, udp), probePacket(0, 64)); n != 64 {
		t.Errorf("udp probe from a peer while listening: answer of %d bytes; want 64", n)
	}
	// Closed after the second: poll, since the timer and this test race.
	for tcpState(ipB, tcp) == "open" && time.Since(opened) < 3*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	if s := tcpState(ipB, tcp); s != "refused" {
		t.Errorf("tcp %s:%d after its second: %s; want refused", ipB, tcp, s)
	}
	if took := time.Since(opened); took < 900*time.Millisecond {
		t.Errorf("listener closed after %s; asked for 1 s", took)
	}
	target := netip.MustParseAddrPort(fmt.Sprintf("%s:%d", ipB, udp))
	if r := probe.CheckUDP(context.Background(), netip.MustParseAddr(ipA), target); r.State != probe.PortClosed {
		t.Errorf("udp %s after its second: %+v; want closed", target, r)
	}
}

func TestListenReplacesAndStopsWithTheAgent(t *testing.T) {
	b, stop := runAgent(t, "b", ipB+":0")
	p1, p2 := freePort(t, "tcp", ipB), freePort(t, "tcp", ipB)
	listenOn(t, b, ListenRequest{Seconds: 60, Ports: []PortCheck{{"tcp", p1}}})
	got := listenOn(t, b, ListenRequest{Seconds: 60, Ports: []PortCheck{{"tcp", p2}}})
	if !got[0].Listening {
		t.Fatalf("second listen: %+v", got)
	}
	if s1, s2 := tcpState(ipB, p1), tcpState(ipB, p2); s1 != "refused" || s2 != "open" {
		t.Errorf("after a second /v1/listen: old port %s, new port %s; want refused, open", s1, s2)
	}
	// Its own earlier listener does not make a port taken.
	if got := listenOn(t, b, ListenRequest{Seconds: 60, Ports: []PortCheck{{"tcp", p2}}}); !got[0].Listening {
		t.Errorf("the same port again: %+v; want listening", got[0])
	}
	stop()
	if s := tcpState(ipB, p2); s != "refused" {
		t.Errorf("tcp %d after the agent stopped: %s; want refused", p2, s)
	}
}

func TestListenTakenPort(t *testing.T) {
	b, _ := runAgent(t, "b", ipB+":0")
	ln, err := net.Listen("tcp", ipB+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", ipB+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tcp, udp := ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
	for _, r := range listenOn(t, b, ListenRequest{Seconds: 5, Ports: []PortCheck{{"tcp", tcp}, {"udp", udp}}}) {
		if r.Listening || !r.Taken || r.Error != "address already in use" {
			t.Errorf("listen on a port held by another socket: %+v; want taken", r)
		}
	}
	_, body := call(t, "GET", "http://"+b+"/metrics", "", nil)
	if !strings.Contains(body, `podpath_agent_listen_ports_total{proto="udp",result="taken"} 1`) {
		t.Errorf("metrics lack the taken UDP port")
	}
}

func TestListenBadRequests(t *testing.T) {
	addr, _ := runAgent(t, "a", ipA+":0")
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf(`{"proto":"tcp","port":%d}`, 40000+i)
	}
	for _, tc := range []struct {
		name, path, auth, body string
		want                   int
	}{
		{"unauthenticated", "/v1/listen", "", `{"ports":[{"proto":"tcp","port":179}],"seconds":5}`, 401},
		{"wrong_token", "/v1/listen", "nope", `{"ports":[{"proto":"tcp","port":179}],"seconds":5}`, 401},
		{"33_ports", "/v1/listen", "ok", `{"ports":[` + strings.Join(many, ",") + `],"seconds":5}`, 400},
		{"no_ports", "/v1/listen", "ok", `{"ports":[],"seconds":5}`, 400},
		{"sctp", "/v1/listen", "ok", `{"ports":[{"proto":"sctp","port":179}],"seconds":5}`, 400},
		{"upper_case_proto", "/v1/listen", "ok", `{"ports":[{"proto":"TCP","port":179}],"seconds":5}`, 400},
		{"port_0", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":0}],"seconds":5}`, 400},
		{"port_65536", "/v1/listen", "ok", `{"ports":[{"proto":"udp","port":65536}],"seconds":5}`, 400},
		{"twice", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":179},{"proto":"tcp","port":179}],"seconds":5}`, 400},
		{"seconds_0", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":179}],"seconds":0}`, 400},
		{"seconds_61", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":179}],"seconds":61}`, 400},
		{"fractional_seconds", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":179}],"seconds":1.5}`, 400},
		{"unknown_field", "/v1/listen", "ok", `{"ports":[{"proto":"tcp","port":179,"host":"10.0.0.1"}],"seconds":5}`, 400},
		{"probe_33_ports", "/v1/probe", "ok", `{"targets":["b"],"ports":[` + strings.Join(many, ",") + `]}`, 400},
		{"probe_sctp", "/v1/probe", "ok", `{"targets":["b"],"ports":[{"proto":"sctp","port":179}]}`, 400},
		{"probe_port_0", "/v1/probe", "ok", `{"targets":["b"],"ports":[{"proto":"udp","port":0}]}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := tc.auth
			if auth == "ok" {
				auth = token
			}
			if code, body := call(t, "POST", "http://"+addr+tc.path, auth, strings.NewReader(tc.body)); code != tc.want {
				t.Errorf("%s: %d %s; want %d", tc.name, code, body, tc.want)
			}
		})
	}
}

// Two agents as two nodes: b opens listeners, a checks them.
func TestPortChecksBetweenAgents(t *testing.T) {
	ctx := context.Background()
	a, _ := runAgent(t, "a", ipA+":0")
	b, _ := runAgent(t, "b", ipB+":0")
	ca, cb := client(a), client(b)
	if err := ca.SetPeers(ctx, []Peer{{Name: "b", Address: b}}); err != nil {
		t.Fatal(err)
	}
	if err := cb.SetPeers(ctx, []Peer{{Name: "a", Address: a}}); err != nil {
		t.Fatal(err)
	}
	tcp, udp := freePort(t, "tcp", ipB), freePort(t, "udp", ipB)
	listenOn(t, b, ListenRequest{Seconds: 30, Ports: []PortCheck{{"tcp", tcp}, {"udp", udp}}})
	ports := []PortCheck{{"tcp", tcp}, {"udp", udp}, {"tcp", freePort(t, "tcp", ipB)}, {"udp", freePort(t, "udp", ipB)}}
	want := []string{probe.PortOpen, probe.PortOpen, probe.PortRefused, probe.PortClosed}
	check := func(want []string) {
		t.Helper()
		resp, err := ca.Probe(ctx, ProbeRequest{Targets: []string{"b"}, Ports: ports})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Results[0].Ports
		if len(got) != len(ports) {
			t.Fatalf("%d port results for %d ports: %+v", len(got), len(ports), got)
		}
		for i, r := range got {
			if r.Proto != ports[i].Proto || r.Port != ports[i].Port || r.State != want[i] {
				t.Errorf("%s/%d: %+v; want %s", ports[i].Proto, ports[i].Port, r, want[i])
			}
		}
	}
	check(want)
	// b forgets a: its UDP listener stops answering a, TCP does not care.
	if err := cb.SetPeers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check([]string{probe.PortOpen, probe.PortFiltered, probe.PortRefused, probe.PortClosed})

	_, body := call(t, "GET", "http://"+a+"/metrics", "", nil)
	for _, m := range []string{
		`podpath_agent_port_checks_total{proto="tcp",state="open"} 2`,
		`podpath_agent_port_checks_total{proto="udp",state="filtered"} 1`,
	} {
		if !strings.Contains(body, m) {
			t.Errorf("a's metrics lack %s", m)
		}
	}
	_, body = call(t, "GET", "http://"+b+"/metrics", "", nil)
	if !strings.Contains(body, `podpath_agent_listen_ports_total{proto="tcp",result="listening"} 1`) {
		t.Errorf("b's metrics lack the TCP listener")
	}
}

// A temporary UDP listener is no reflector: it answers the agent's peers
// only, with no more than they sent, and nothing that is not a probe.
func TestPortListenerAnswersOnlyPeers(t *testing.T) {
	b, _ := runAgent(t, "b", ipB+":0")
	if err := client(b).SetPeers(context.Background(), []Peer{{Name: "a", Address: ipA + ":7946"}}); err != nil {
		t.Fatal(err)
	}
	udp := freePort(t, "udp", ipB)
	listenOn(t, b, ListenRequest{Seconds: 30, Ports: []PortCheck{{"udp", udp}}})
	to := fmt.Sprintf("%s:%d", ipB, udp)
	if n := exchange(t, ipOther, to, probePacket(0, 64)); n != -1 {
		t.Errorf("probe from %s (no peer): answered with %d bytes; want silence", ipOther, n)
	}
	for _, tc := range []struct {
		name string
		req  []byte
		want int
	}{
		{"echo", probePacket(0, 300), 300},
		{"ack_only", probePacket(probe.FlagAckOnly, 1200), probe.HeaderLen},
		{"header_only", probePacket(0, probe.HeaderLen), probe.HeaderLen},
		{"a_reply", probePacket(probe.FlagReply, 300), -1},
		{"junk", make([]byte, 300), -1},
		{"short", []byte("PPv1"), -1},
	} {
		n := exchange(t, ipA, to, tc.req)
		if n != tc.want || n > len(tc.req) {
			t.Errorf("%s (%d bytes) from a peer: answer of %d bytes; want %d", tc.name, len(tc.req), n, tc.want)
		}
	}
}

// An agent on 0.0.0.0 (the way it runs before a cluster exists) listens on
// every address, both families; its dual-stack socket sees IPv4 peers as
// ::ffff:a.b.c.d, and they are still peers.
func TestListenOnUnspecifiedAddress(t *testing.T) {
	b, _ := runAgent(t, "b", "0.0.0.0:0")
	if err := client(b).SetPeers(context.Background(), []Peer{{Name: "a", Address: ipA + ":7946"}}); err != nil {
		t.Fatal(err)
	}
	udp := freePort(t, "udp", "0.0.0.0")
	tcp := freePort(t, "tcp", "0.0.0.0")
	got := listenOn(t, b, ListenRequest{Seconds: 30, Ports: []PortCheck{{"udp", udp}, {"tcp", tcp}}})
	if !got[0].Listening || !got[1].Listening {
		t.Fatalf("listen: %+v", got)
	}
	for _, ip := range []string{ipB, ipOther} {
		if n := exchange(t, ipA, fmt.Sprintf("%s:%d", ip, udp), probePacket(0, 64)); n != 64 {
			t.Errorf("probe from the peer to %s: answer of %d bytes; want 64", ip, n)
		}
		if s := tcpState(ip, tcp); s != "open" {
			t.Errorf("tcp %s:%d: %s; want open", ip, tcp, s)
		}
	}
	if n := exchange(t, ipOther, fmt.Sprintf("%s:%d", ipB, udp), probePacket(0, 64)); n != -1 {
		t.Errorf("probe from %s (no peer): answered with %d bytes", ipOther, n)
	}
}

// The JSON of the API, as other tools read it.
func TestPortJSON(t *testing.T) {
	var req ListenRequest
	if err := json.Unmarshal([]byte(`{"ports":[{"proto":"tcp","port":179},{"proto":"udp","port":4789}],"seconds":20}`), &req); err != nil || req.Seconds != 20 || req.Ports[1] != (PortCheck{"udp", 4789}) {
		t.Errorf("listen request: %+v, %v", req, err)
	}
	b, _ := json.Marshal(ListenResponse{Ports: []ListenResult{{Proto: "tcp", Port: 179, Listening: true},
		{Proto: "udp", Port: 4789, Taken: true, Error: "address already in use"}}})
	if want := `{"ports":[{"proto":"tcp","port":179,"listening":true},{"proto":"udp","port":4789,"listening":false,"taken":true,"error":"address already in use"}]}`; string(b) != want {
		t.Errorf("listen response:\n%s\nwant\n%s", b, want)
	}
	b, _ = json.Marshal(probe.PortResult{Proto: "tcp", Port: 6443, State: probe.PortRefused, RTTMs: 0.1})
	if want := `{"proto":"tcp","port":6443,"state":"refused","rttMs":0.1}`; string(b) != want {
		t.Errorf("port result: %s; want %s", b, want)
	}
}
