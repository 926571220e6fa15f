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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"podpath/internal/apiauth"
	"podpath/internal/nsenter"
)

// ClientTimeout bounds a control call that is not a probe run.
const ClientTimeout = 10 * time.Second

// MaxAnswerBytes bounds an agent's answer: a probe of MaxTargets peers
// with every measurement is a few MiB; an agent (or something posing as
// one) that sends more is cut off, not read into memory.
const MaxAnswerBytes = 16 << 20

// Client is a controller's handle on one agent.
type Client struct {
	Name  string // the agent's --name: what its credentials are made for
	Addr  string // IP:port, as peers reach it
	base  string // URL the controller reaches it at
	token string
	http  *http.Client
	// skew is the agent's clock minus ours, learnt from an answer's Date
	// when a request was refused as stale: credentials are made in the
	// agent's time, so a node whose clock is off still answers.
	skew atomic.Int64
}

// NewClient talks to the agent at addr. With netns set it dials from inside
// that network namespace (lab and test set-ups, where the agent is only
// reachable there). Its connections use small segments both ways
// (ControlMSS4), so a path that loses large packets does not cut the
// controller off from what the agent measured on it.
func NewClient(name, addr, token, netns string) *Client {
	d := &net.Dialer{Timeout: ClientTimeout, Control: clampMSS}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return nsenter.DialContext(ctx, netns, d, network, a)
		},
		MaxIdleConnsPerHost: 2,
	}
	return &Client{Name: name, Addr: addr, base: "http://" + addr, token: token, http: &http.Client{Transport: tr, CheckRedirect: noRedirects}}
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// noRedirects: an agent never redirects, and a redirect would carry a
// signed request (and, through a proxy, the caller's credentials) to
// wherever it points.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewProxyClient talks to the agent at addr through a proxy URL, such as the
// API server's Pod proxy (…/pods/NAME:PORT/proxy), with hc carrying the
// caller's own credentials for the proxy.
func NewProxyClient(name, addr, base, token string, hc *http.Client) *Client {
	own := *hc
	own.CheckRedirect = noRedirects
	return &Client{Name: name, Addr: addr, base: strings.TrimSuffix(base, "/"), token: token, http: &own}
}

// do sends a signed request and checks the answer's signature before
// decoding it into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	for retried := false; ; retried = true {
		status, answer, err := c.send(ctx, method, path, body)
		if errors.Is(err, errStale) && !retried {
			continue // the clock is learnt: once more in the agent's time
		}
		if (closedUnanswered(err) || err == nil && status == http.StatusRequestTimeout) && !retried && ctx.Err() == nil {
			// The agent closed the connection before answering (past its
			// connection cap for a moment, under a burst of peers'
			// handshakes), or read the body too slowly (an overloaded
			// host). Nothing was run (a handler always answers); once
			// more, shortly.
			select {
			case <-ctx.Done():
			case <-time.After(closedRetryPause):
			}
			continue
		}
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			// The agent says {"error": …}; a proxy in between (the API
			// server) says {"message": …}.
			var e struct{ Error, Message string }
			msg := strings.TrimSpace(string(answer[:min(len(answer), 4096)]))
			if json.Unmarshal(answer, &e) == nil {
				msg = e.Error + e.Message
			}
			return fmt.Errorf("agent %s: %s %s: %d %s: %s", c.Addr, method, path, status, http.StatusText(status), msg)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("agent %s: decode %s answer: %w", c.Addr, path, err)
		}
		return nil
	}
}

var errStale = errors.New("request refused as stale")

// closedRetryPause is how long the client waits before sending again a
// request whose connection the agent closed unanswered.
const closedRetryPause = 250 * time.Millisecond

// unanswered marks an error of sending a request: no answer began.
type unanswered struct{ error }

func (u unanswered) Unwrap() error { return u.error }

// closedUnanswered: the connection ended before any answer began. EPIPE,
// or the transport's own "use of closed network connection" when its
// reader saw the close first: the agent closed it while the body was
// still being written (an agent busy enough to miss its read deadline; at
// 5,000 agents on one machine, 3 of 5,000 peer lists). The agent signs
// over the whole body, so nothing of such a request ran.
func closedUnanswered(err error) bool {
	var u unanswered
	// "server closed idle connection" is the transport's own error,
	// not exported: the kept-alive connection was closed as it was taken.
	return errors.As(err, &u) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "server closed idle connection"))
}

// send makes one request and reads its answer, at most MaxAnswerBytes. A
// 200 answer must carry the agent's signature.
func (c *Client) send(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	sent := time.Now().Add(time.Duration(c.skew.Load()))
	cred, nonce := apiauth.Sign(c.token, c.Name, method, path, body, sent)
	req.Header.Set(apiauth.Header, cred)
	// A kept-alive connection the agent closed as the request went out
	// fails with EOF; the transport sends such a request again only when
	// it is marked idempotent. It is, here: the agent refuses a second
	// copy of a nonce it has seen, so a request it did receive is never
	// run twice.
	req.Header.Set("Idempotency-Key", nonce)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("agent %s: %w", c.Addr, unanswered{err})
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("agent %s: read %s answer: %w", c.Addr, path, err)
	}
	if len(answer) > MaxAnswerBytes {
		return 0, nil, fmt.Errorf("agent %s: %s answer over %d MiB: not an agent's answer", c.Addr, path, MaxAnswerBytes>>20)
	}
	if d, ok := apiauth.LearnSkew(c.token, c.Name, nonce, resp.StatusCode, answer, resp.Header.Get(apiauth.AnswerHeader), sent); ok {
		c.skew.Add(int64(d))
		return 0, nil, fmt.Errorf("agent %s: clock %s off: %w", c.Addr, d.Round(time.Second), errStale)
	}
	if resp.StatusCode == http.StatusOK {
		if err := apiauth.VerifyAnswer(c.token, c.Name, nonce, resp.StatusCode, answer, resp.Header.Get(apiauth.AnswerHeader)); err != nil {
			return 0, nil, fmt.Errorf("agent %s: %s: %w", c.Addr, path, err)
		}
	}
	return resp.StatusCode, answer, nil
}

// SetPeers replaces the agent's peer set.
func (c *Client) SetPeers(ctx context.Context, peers []Peer) error {
	_, err := c.PutPeers(ctx, peers)
	return err
}

// PutPeers replaces the agent's peer set and returns its answer: how many
// peers it holds and its load counters at that moment.
func (c *Client) PutPeers(ctx context.Context, peers []Peer) (PeersAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var out PeersAnswer
	err := c.do(ctx, http.MethodPut, "/v1/peers", PeersRequest{Peers: peers}, &out)
	return out, err
}

// Probe runs a probe request; ctx bounds it.
func (c *Client) Probe(ctx context.Context, req ProbeRequest) (*ProbeResponse, error) {
	var out ProbeResponse
	if err := c.do(ctx, http.MethodPost, "/v1/probe", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Facts fetches the agent's host facts as raw JSON.
func (c *Client) Facts(ctx context.Context) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/facts", nil, &out)
	return out, err
}
