package probe

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"sync"
	"time"

	"podpath/internal/apiauth"
)

// Dialer opens a connection; the agent dials from its own namespace, a
// test may dial from another.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Bounds of the TCP probes.
const (
	ConnectTimeout = 2 * time.Second
	// StallTimeout: no progress for this long and a transfer is stalled,
	// the signature of an MTU black hole (small requests pass, big ones hang).
	StallTimeout = 3 * time.Second
	// SinkPath is the agent endpoint that swallows uploads.
	SinkPath     = "/v1/sink"
	SinkProtocol = "podpath-sink"
	sinkChunk    = 128 << 10 // as iperf3's default write
)

// ConnectTimes dials addr count times and summarises the handshake times.
func ConnectTimes(ctx context.Context, dial Dialer, addr string, count int) Stats {
	var rtts []time.Duration
	for range count {
		cctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
		start := time.Now()
		c, err := dial(cctx, "tcp", addr)
		cancel()
		if err == nil {
			rtts = append(rtts, time.Since(start))
			c.Close()
		}
	}
	return Summarize(rtts, count)
}

// HTTPPhases is an HTTP GET's timing by phase, in milliseconds from its start.
type HTTPPhases struct {
	ConnectMs   float64 `json:"connectMs"`
	FirstByteMs float64 `json:"firstByteMs"`
	TotalMs     float64 `json:"totalMs"`
	Status      int     `json:"status"`
	Error       string  `json:"error,omitempty"`
}

// HTTPGet times a GET of url by phase (no DNS or TLS: agents talk by IP).
func HTTPGet(ctx context.Context, dial Dialer, url string) HTTPPhases {
	var p HTTPPhases
	start := time.Now()
	since := func() float64 { return float64(time.Since(start)) / float64(time.Millisecond) }
	trace := &httptrace.ClientTrace{
		ConnectDone:          func(string, string, error) { p.ConnectMs = since() },
		GotFirstResponseByte: func() { p.FirstByteMs = since() },
	}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(ctx, trace), StallTimeout)
	defer cancel()
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.Status = resp.StatusCode
	p.TotalMs = since()
	return p
}

// Transfer is the outcome of an upload to a peer's sink.
type Transfer struct {
	Bytes      int64   `json:"bytes"`   // bytes the receiver got
	Seconds    float64 `json:"seconds"` // receiver's time from first byte to end
	BitsPerSec float64 `json:"bitsPerSec"`
	Stalled    bool    `json:"stalled"`
	Error      string  `json:"error,omitempty"`
}

// Upload sends size bytes (or, with size 0, as much as it can for dur) to
// the sink at addr and reports what the receiver counted. A transfer that
// makes no progress for StallTimeout is reported as stalled.
func Upload(ctx context.Context, dial Dialer, addr string, auth SinkAuth, size int64, dur time.Duration) Transfer {
	t, err := upload(ctx, dial, addr, auth, size, dur)
	if err != nil {
		t.Error = err.Error()
	}
	return t
}

func upload(ctx context.Context, dial Dialer, addr string, auth SinkAuth, size int64, dur time.Duration) (Transfer, error) {
	var t Transfer
	c, br, nonce, err := openSink(ctx, dial, addr, auth)
	if err != nil {
		return t, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	chunk := make([]byte, sinkChunk)
	end := time.Now().Add(dur)
	var sent int64
	for (size > 0 && sent < size) || (size == 0 && time.Now().Before(end)) {
		n := int64(len(chunk))
		if size > 0 {
			n = min(n, size-sent)
		}
		_ = c.SetWriteDeadline(time.Now().Add(StallTimeout))
		w, err := c.Write(chunk[:n])
		sent += int64(w)
		if err != nil {
			if os.IsTimeout(err) {
				t.Stalled = true
				return t, nil
			}
			return t, fmt.Errorf("upload to %s: %w", addr, err)
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(StallTimeout))
	var res [16 + sha256.Size]byte
	if _, err := io.ReadFull(br, res[:]); err != nil {
		if os.IsTimeout(err) {
			t.Stalled = true
			return t, nil
		}
		return t, fmt.Errorf("read sink result from %s: %w", addr, err)
	}
	if !hmac.Equal(res[16:], apiauth.SinkResultMAC(auth.Token, auth.Peer, nonce, res[:16])) {
		return t, fmt.Errorf("sink result from %s not signed by agent %s with the run's token", addr, auth.Peer)
	}
	t.Bytes = int64(binary.BigEndian.Uint64(res[:8]))
	t.Seconds = float64(binary.BigEndian.Uint64(res[8:])) / 1e9
	if t.Seconds > 0 {
		t.BitsPerSec = 8 * float64(t.Bytes) / t.Seconds
	}
	return t, nil
}

// SinkAuth is what an upload signs its sink request with: the run's token
// and the name of the peer agent it is for.
type SinkAuth struct{ Token, Peer string }

// openSink connects to the agent at addr and upgrades to its sink, with a
// signed request (apiauth); it returns the request's nonce, which the
// sink's result is signed for. A refusal signed by the peer that shows its
// clock is off is tried once more in the peer's time: nodes' clocks drift,
// and that is not a fault of the path being measured.
func openSink(ctx context.Context, dial Dialer, addr string, auth SinkAuth) (net.Conn, *bufio.Reader, string, error) {
	var skew time.Duration
	for retried := false; ; retried = true {
		cctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
		c, err := dial(cctx, "tcp", addr)
		cancel()
		if err != nil {
			return nil, nil, "", fmt.Errorf("connect to %s: %w", addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(StallTimeout))
		at := time.Now().Add(skew)
		cred, nonce := apiauth.Sign(auth.Token, auth.Peer, http.MethodPost, SinkPath, nil, at)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", SinkPath, addr, apiauth.Header, cred, SinkProtocol)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			c.Close()
			return nil, nil, "", fmt.Errorf("sink handshake with %s: %w", addr, err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body.Close()
			return c, br, nonce, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		c.Close()
		if d, ok := apiauth.LearnSkew(auth.Token, auth.Peer, nonce, resp.StatusCode, body, resp.Header.Get(apiauth.AnswerHeader), at); ok && !retried {
			skew += d
			continue
		}
		return nil, nil, "", fmt.Errorf("sink at %s answered %s", addr, resp.Status)
	}
}

// Throughput runs streams uploads in parallel for dur and adds them up.
func Throughput(ctx context.Context, dial Dialer, addr string, auth SinkAuth, dur time.Duration, streams int) Transfer {
	results := make([]Transfer, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() { results[i] = Upload(ctx, dial, addr, auth, 0, dur) })
	}
	wg.Wait()
	var total Transfer
	var errs []error
	for _, r := range results {
		total.Bytes += r.Bytes
		total.Seconds = max(total.Seconds, r.Seconds)
		total.Stalled = total.Stalled || r.Stalled
		if r.Error != "" {
			errs = append(errs, errors.New(r.Error))
		}
	}
	if total.Seconds > 0 {
		total.BitsPerSec = 8 * float64(total.Bytes) / total.Seconds
	}
	if err := errors.Join(errs...); err != nil {
		total.Error = err.Error()
	}
	return total
}

// ServeSink is the receiving end of Upload, run on a hijacked connection
// after the 101 answer: it counts bytes to EOF and answers with the count
// and its own elapsed time (16 bytes) and sign's MAC of them (32): never
// more than it received from a client that sent anything at all.
func ServeSink(c net.Conn, br *bufio.Reader, maxDur time.Duration, sign func(result []byte) []byte) error {
	buf := make([]byte, sinkChunk)
	var n int64
	var first time.Time
	limit := time.Now().Add(maxDur)
	for {
		_ = c.SetReadDeadline(minTime(time.Now().Add(StallTimeout), limit))
		k, err := br.Read(buf)
		if k > 0 && first.IsZero() {
			first = time.Now()
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("sink read: %w", err)
		}
	}
	var res [16]byte
	binary.BigEndian.PutUint64(res[:8], uint64(n))
	if !first.IsZero() {
		binary.BigEndian.PutUint64(res[8:], uint64(time.Since(first)))
	}
	if n == 0 {
		return nil // nothing received: nothing to answer
	}
	_ = c.SetWriteDeadline(time.Now().Add(StallTimeout))
	_, err := c.Write(append(res[:], sign(res[:])...))
	return err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
