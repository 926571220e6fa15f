package hostfacts

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"podpath/internal/bird"
)

// readMTUFile reads the Pod MTU Felix wrote.
func readMTUFile(path string) MTUFile {
	m := MTUFile{Path: path}
	b, err := os.ReadFile(path)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	if m.Value, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		m.Error = fmt.Sprintf("%s holds %q, not a number", path, strings.TrimSpace(string(b)))
	}
	return m
}

// checkFelix asks Felix's readiness endpoint, as calico-node's probe does.
func checkFelix(ctx context.Context, url string) Felix {
	f := Felix{URL: url}
	ctx, cancel := context.WithTimeout(ctx, FelixTimeout)
	defer cancel()
	code, err := httpGetStatus(ctx, url)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.StatusCode, f.Ready = code, code >= 200 && code < 400
	return f
}

// httpGetStatus GETs url on a connection dialled from the calling goroutine,
// so that "localhost" is the loopback of the caller's network namespace:
// net/http would dial from a goroutine of its own, on any thread. Only
// plain http, which is what Felix and kube-proxy serve their health on.
func httpGetStatus(ctx context.Context, url string) (int, error) {
	code, _, err := httpGet(ctx, url)
	return code, err
}

// maxHealthBody bounds what is kept of a health endpoint's answer.
const maxHealthBody = 512

// httpGet is httpGetStatus with the start of the body.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if req.URL.Scheme != "http" {
		return 0, "", fmt.Errorf("GET %s: only http is supported", url)
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	// A negative FallbackDelay dials IPv4 and IPv6 addresses one after the
	// other on this goroutine instead of racing them on two.
	conn, err := (&net.Dialer{FallbackDelay: -1}).DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: read response: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// showBIRD reads BIRD's protocols and clock; bird.ShowBIRD bounds the
// exchange.
func showBIRD(ctx context.Context, socket string) BIRDState {
	b := BIRDState{Socket: socket}
	protos, st, err := bird.ShowBIRD(ctx, socket)
	if err != nil {
		b.Error = err.Error()
		return b
	}
	b.Protocols, b.ServerTime, b.Started = protos, st.ServerTime, st.LastReboot
	return b
}

// CollectCalico reads only what calico-node leaves on the node (BIRD's
// sessions, Felix's readiness, the MTU file): the monitor's periodic check,
// which needs no capability beyond reading BIRD's root-owned socket.
func CollectCalico(ctx context.Context, opts Options) Calico {
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	return calicoState(ctx, opts)
}

func calicoState(ctx context.Context, opts Options) Calico {
	return Calico{
		MTUFile: readMTUFile(opts.CalicoMTUFile),
		Felix:   checkFelix(ctx, opts.FelixHealthURL),
		BIRD:    showBIRD(ctx, opts.BIRDSocket),
	}
}
