package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

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
	Addr  string // IP:port, as peers reach it
	base  string // URL the controller reaches it at
	token string
	http  *http.Client
	// proxied: the Authorization header belongs to the proxy.
	proxied bool
}

// NewClient talks to the agent at addr. With netns set it dials from inside
// that network namespace (lab and test set-ups, where the agent is only
// reachable there). Its connections use small segments both ways
// (ControlMSS4), so a path that loses large packets does not cut the
// controller off from what the agent measured on it.
func NewClient(addr, token, netns string) *Client {
	d := &net.Dialer{Timeout: ClientTimeout, Control: clampMSS}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return nsenter.DialContext(ctx, netns, d, network, a)
		},
		MaxIdleConnsPerHost: 2,
	}
	return &Client{Addr: addr, base: "http://" + addr, token: token, http: &http.Client{Transport: tr}}
}

// NewProxyClient talks to the agent at addr through a proxy URL, such as the
// API server's Pod proxy (…/pods/NAME:PORT/proxy), with hc carrying the
// caller's own credentials for the proxy. The token goes in TokenHeader.
func NewProxyClient(addr, base, token string, hc *http.Client) *Client {
	return &Client{Addr: addr, base: strings.TrimSuffix(base, "/"), token: token, http: hc, proxied: true}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.proxied {
		req.Header.Set(TokenHeader, c.token)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The agent says {"error": …}; a proxy in between (the API server)
		// says {"message": …}.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error, Message string }
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil {
			msg = e.Error + e.Message
		}
		return fmt.Errorf("agent %s: %s %s: %s: %s", c.Addr, method, path, resp.Status, msg)
	}
	if out == nil {
		return nil
	}
	capped := &io.LimitedReader{R: resp.Body, N: MaxAnswerBytes + 1}
	if err := json.NewDecoder(capped).Decode(out); err != nil {
		if capped.N <= 0 {
			return fmt.Errorf("agent %s: %s answer over %d MiB: not an agent's answer", c.Addr, path, MaxAnswerBytes>>20)
		}
		return fmt.Errorf("agent %s: decode %s answer: %w", c.Addr, path, err)
	}
	return nil
}

// SetPeers replaces the agent's peer set.
func (c *Client) SetPeers(ctx context.Context, peers []Peer) error {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	return c.do(ctx, http.MethodPut, "/v1/peers", PeersRequest{Peers: peers}, nil)
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
