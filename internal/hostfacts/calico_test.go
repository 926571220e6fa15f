package hostfacts

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podpath/internal/bird"
)

func TestReadMTUFile(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "mtu"), filepath.Join(dir, "bad")
	_ = os.WriteFile(good, []byte("1450\n"), 0o644)
	_ = os.WriteFile(bad, []byte("auto"), 0o644)
	if m := readMTUFile(good); m.Value != 1450 || m.Error != "" {
		t.Errorf("readMTUFile(1450) = %+v; want value 1450", m)
	}
	if m := readMTUFile(bad); m.Value != 0 || !strings.Contains(m.Error, "not a number") {
		t.Errorf("readMTUFile(auto) = %+v; want an error saying it is not a number", m)
	}
	m := readMTUFile(filepath.Join(dir, "absent"))
	if !strings.Contains(m.Error, "no such file") {
		t.Errorf("readMTUFile(absent) = %+v; want a no-such-file error", m)
	}
	b, _ := json.Marshal(m)
	if !strings.Contains(string(b), `"path":`) || strings.Contains(string(b), `"value"`) {
		t.Errorf("JSON of an absent MTU file = %s; want path and error, no value", b)
	}
}

func TestCheckFelix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readiness":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/readiness", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name      string
		url       string
		wantReady bool
		wantCode  int
		wantErr   string
	}{
		{"ready", srv.URL + "/readiness", true, http.StatusNoContent, ""},
		{"redirect_counts_as_ready", srv.URL + "/moved", true, http.StatusFound, ""},
		{"not_ready", srv.URL + "/sick", false, http.StatusServiceUnavailable, ""},
		{"https_unsupported", "https://127.0.0.1:9099/readiness", false, 0, "only http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := checkFelix(context.Background(), tc.url)
			if f.Ready != tc.wantReady || f.StatusCode != tc.wantCode || !strings.Contains(f.Error, tc.wantErr) ||
				(tc.wantErr == "" && f.Error != "") {
				t.Errorf("checkFelix(%s) = %+v; want ready %v, status %d, error containing %q", tc.url, f, tc.wantReady, tc.wantCode, tc.wantErr)
			}
		})
	}

	// Nobody listening: a fact, quickly.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if f := checkFelix(context.Background(), "http://"+addr+"/readiness"); f.Ready || !strings.Contains(f.Error, "refused") {
		t.Errorf("checkFelix with nothing listening = %+v; want not ready, connection refused", f)
	}
}

// boundSlack is what a bounded call may overrun its timeout by on a busy machine.
const boundSlack = time.Second

// silentListener accepts connections and never says a word, like a hung
// daemon; it returns the address it listens on.
func silentListener(t *testing.T, network, addr string) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() { // once the listener is closed
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

func TestCheckFelixHangingIsBounded(t *testing.T) {
	t.Parallel()
	addr := silentListener(t, "tcp", "127.0.0.1:0")
	start := time.Now()
	f := checkFelix(context.Background(), "http://"+addr+"/readiness")
	if took := time.Since(start); took > FelixTimeout+boundSlack {
		t.Errorf("checkFelix on a silent server took %s; want at most %s", took, FelixTimeout+boundSlack)
	}
	if f.Ready || f.Error == "" {
		t.Errorf("checkFelix on a silent server = %+v; want not ready with a timeout error", f)
	}
}

func TestShowBIRD(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "bird.ctl")
	if b := showBIRD(context.Background(), missing); b.Socket != missing || len(b.Protocols) != 0 ||
		!strings.Contains(b.Error, "no such file") {
		t.Errorf("showBIRD(missing socket) = %+v; want the socket and a no-such-file error", b)
	}

	// A BIRD that accepts and never greets: bounded by bird.Timeout.
	silent := silentListener(t, "unix", filepath.Join(dir, "silent.ctl"))
	start := time.Now()
	b := showBIRD(context.Background(), silent)
	if took := time.Since(start); took > bird.Timeout+boundSlack {
		t.Errorf("showBIRD on a silent socket took %s; want at most %s", took, bird.Timeout+boundSlack)
	}
	if b.Error == "" {
		t.Errorf("showBIRD on a silent socket = %+v; want an error", b)
	}
}
