package agent

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"podpath/internal/probe"
)

// tap is a TCP relay in front of an agent that records what the caller
// sends, as someone on the node network sees it, and can change what the
// agent answers.
type tap struct {
	addr   string
	mu     sync.Mutex
	sent   bytes.Buffer
	answer func([]byte) []byte // nil: passed unchanged
	drop   bool                // record what the caller sends, deliver nothing
}

func startTap(t *testing.T, agentAddr string, answer func([]byte) []byte) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tp := &tap{addr: ln.Addr().String(), answer: answer}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tp.relay(c, agentAddr)
		}
	}()
	return tp
}

func (tp *tap) relay(c net.Conn, to string) {
	defer c.Close()
	if tp.drop {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b, _ := io.ReadAll(c)
		tp.mu.Lock()
		tp.sent.Write(b)
		tp.mu.Unlock()
		return
	}
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			tp.mu.Lock()
			tp.sent.Write(buf[:n])
			tp.mu.Unlock()
			if _, werr := up.Write(buf[:n]); err != nil || werr != nil {
				return
			}
		}
	}()
	// Answers are small here: read what comes within a moment, change it, pass it on.
	for {
		_ = up.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		b, err := io.ReadAll(io.LimitReader(up, 1<<20))
		if len(b) > 0 && tp.answer != nil {
			b = tp.answer(b)
		}
		if _, werr := c.Write(b); werr != nil || (err != nil && !isTimeout(err)) {
			return
		}
	}
}

func (tp *tap) recorded() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.sent.Bytes())
}

// sendRaw writes a recorded request to addr and returns the answer's status line and body.
func sendRaw(t *testing.T, addr string, req []byte) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Issue 15, point 6: whoever sees a controller's request on the wire gets
// no token from it, cannot replay it, and cannot change it.
func TestASniffedRequestIsNoCredential(t *testing.T) {
	addr := startAgent(t, "a")
	tp := startTap(t, addr, nil)
	c := NewProxyClient("a", addr, "http://"+tp.addr, token, &http.Client{Timeout: ClientTimeout})
	if err := c.SetPeers(context.Background(), []Peer{{Name: "b", Address: "127.0.0.2:7946"}}); err != nil {
		t.Fatalf("set peers through the tap: %v", err)
	}
	seen := tp.recorded()
	if bytes.Contains(seen, []byte(token)) {
		t.Fatalf("the token crosses the wire:\n%s", seen)
	}
	if code, body := sendRaw(t, addr, seen); code != http.StatusUnauthorized || !strings.Contains(body, "replayed") {
		t.Errorf("the recorded request sent again: %d %s; want 401, replayed", code, body)
	}
	changed := bytes.Replace(seen, []byte("127.0.0.2:7946"), []byte("127.0.0.3:7946"), 1)
	if code, body := sendRaw(t, addr, changed); code != http.StatusUnauthorized {
		t.Errorf("the recorded request with another peer address: %d %s; want 401", code, body)
	}
	// Held back on the way and changed before it arrives: the body does not match.
	held := startTap(t, addr, nil)
	held.drop = true
	hc := NewProxyClient("a", addr, "http://"+held.addr, token, &http.Client{Timeout: ClientTimeout})
	_ = hc.SetPeers(context.Background(), []Peer{{Name: "b", Address: "127.0.0.2:7946"}})
	changed = bytes.Replace(held.recorded(), []byte("127.0.0.2:7946"), []byte("127.0.0.3:7946"), 1)
	if code, body := sendRaw(t, addr, changed); code != http.StatusUnauthorized || !strings.Contains(body, "body does not match") {
		t.Errorf("a held-back request with another peer address: %d %s; want 401, body does not match", code, body)
	}
	// Sent to another agent of the run: made for a, refused by b.
	b := startAgent(t, "b")
	if code, body := sendRaw(t, b, tp.recorded()); code != http.StatusUnauthorized || !strings.Contains(body, "made for agent") {
		t.Errorf("a's request sent to agent b: %d %s; want 401, made for agent a", code, body)
	}
	if code, body := call(t, "GET", "http://"+addr+"/v1/peers", token, nil); code != 200 || strings.Count(body, `"address"`) != 1 || !strings.Contains(body, "127.0.0.2:7946") {
		t.Errorf("peers after the replays: %d %s; want only the controller's", code, body)
	}
}

// An answer changed on the way is refused, not read as a measurement.
func TestAChangedAnswerIsRefused(t *testing.T) {
	addr := startAgent(t, "a")
	tp := startTap(t, addr, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"hostname":"a"`), []byte(`"hostname":"z"`), 1)
	})
	c := NewProxyClient("a", addr, "http://"+tp.addr, token, &http.Client{Timeout: ClientTimeout})
	if facts, err := c.Facts(context.Background()); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("facts changed on the way: %s, %v; want refused as not signed", facts, err)
	}
	if facts, err := client(addr).Facts(context.Background()); err != nil || !strings.Contains(string(facts), `"a"`) {
		t.Errorf("facts straight from the agent: %s, %v", facts, err)
	}
}

// A node whose clock is an hour off still answers the controller and its
// peers' uploads: the caller learns the agent's clock from the refusal.
func TestAnAgentWithItsClockOff(t *testing.T) {
	a := newAgent(t, "a")
	a.verifier.Now = func() time.Time { return time.Now().Add(time.Hour) }
	addr, _ := serveAgent(t, a, "127.0.0.1:0")
	c := client(addr)
	if _, err := c.Facts(context.Background()); err != nil {
		t.Errorf("facts from an agent an hour ahead: %v", err)
	}
	dial := (&net.Dialer{}).DialContext
	if tr := probe.Upload(context.Background(), dial, addr, probe.SinkAuth{Token: token, Peer: "a"}, 1<<20, 0); tr.Error != "" || tr.Bytes != 1<<20 {
		t.Errorf("upload to an agent an hour ahead: %+v", tr)
	}
	if _, err := NewClient("a", addr, "nope", "").Facts(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token, clock learnt or not: %v; want 401", err)
	}
}
