package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireRoot skips tests that build namespaces when not root, and fails
// (rather than skips) as root when a tool the lab drives is missing: CI runs
// as root and scripts/deps.sh installs them.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces (CI runs as root; try sudo make test)")
	}
	for _, tool := range []string{"ip", "ping", "bird"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run scripts/deps.sh", tool)
		}
	}
}

// testLab builds a lab with a unique name and removes it when the test ends,
// checking that nothing of it is left behind.
func testLab(t *testing.T, b *Builder) *Lab {
	t.Helper()
	requireRoot(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	b.cfg.Name = "t" + hex.EncodeToString(suffix)
	before := netnsList(t, b.cfg.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := b.Up(ctx)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := Down(context.Background(), l.Spec.Name); err != nil {
			t.Errorf("lab down: %v", err)
		}
		assertGone(t, l, before)
	})
	return l
}

// assertGone checks that down left no namespace, process or file of the lab.
func assertGone(t *testing.T, l *Lab, before []string) {
	t.Helper()
	if after := netnsList(t, l.Spec.Name); !slices.Equal(before, after) {
		t.Errorf("ip netns list after down = %v; want %v as before up", after, before)
	}
	if _, err := os.Stat(Dir(l.Spec.Name)); !os.IsNotExist(err) {
		t.Errorf("state directory %s still there after down", Dir(l.Spec.Name))
	}
	out, _ := exec.Command("pgrep", "-f", Dir(l.Spec.Name)+"/").Output()
	if pids := strings.TrimSpace(string(out)); pids != "" {
		t.Errorf("processes of lab %s still running after down: %s", l.Spec.Name, pids)
	}
}

// netnsList is what `ip netns list` shows of a lab's namespaces (other
// packages' tests build labs at the same time).
func netnsList(t *testing.T, lab string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], NamespacePrefix(lab)) {
			names = append(names, f[0])
		}
	}
	slices.Sort(names)
	return names
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ping(t *testing.T, l *Lab, from string, to netip.Addr, size int, df bool) PingResult {
	t.Helper()
	r, err := l.Ping(ctxT(t, 30*time.Second), from, to, size, df, 2)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantPing asserts that pings of size bytes from → to do (ok) or do not get through.
func wantPing(t *testing.T, l *Lab, from string, to netip.Addr, size int, df, ok bool) {
	t.Helper()
	r := ping(t, l, from, to, size, df)
	if got := r.Received > 0; got != ok {
		t.Errorf("ping %s → %s, %d bytes (DF %v): %d/%d answered; want reachable=%v\n%s", from, to, size, df, r.Received, r.Sent, ok, r.Output)
	}
}

func pod(l *Lab, node string, i int) Pod {
	n, err := l.Spec.Node(node)
	if err != nil {
		panic(err)
	}
	return n.Pods[i]
}

func nodeAddr(l *Lab, node string) netip.Addr {
	n, _ := l.Spec.Node(node)
	return n.Address
}

func addFault(t *testing.T, l *Lab, spec string) {
	t.Helper()
	f, err := ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddFault(ctxT(t, 30*time.Second), f); err != nil {
		t.Fatalf("fault add %s: %v", spec, err)
	}
}

func clearFaults(t *testing.T, l *Lab) {
	t.Helper()
	if err := l.ClearFaults(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("fault clear: %v", err)
	}
	if len(l.Faults) != 0 {
		t.Fatalf("faults after clear = %v; want none", l.Faults)
	}
}

// serveBytes serves size bytes over HTTP from inside a Pod's namespace.
func serveBytes(t *testing.T, l *Lab, p Pod, size int) string {
	t.Helper()
	var ln net.Listener
	err := inNetns(p.Netns, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(p.Address, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", p.Name, err)
	}
	body := make([]byte, size)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// stallTimeout is how long a download may take before we call it stalled:
// 300 KB crosses a healthy lab in milliseconds.
const stallTimeout = 5 * time.Second

// download fetches url from inside a Pod's namespace and returns the bytes
// received before it finished or stalled.
func download(p Pod, url string) (int64, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(p.Netns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: stallTimeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: stallTimeout}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// allPodsReach pings every Pod from every other Pod, in parallel.
func allPodsReach(t *testing.T, l *Lab) {
	t.Helper()
	var pods []Pod
	for _, n := range l.Spec.Nodes {
		pods = append(pods, n.Pods...)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for _, a := range pods {
		for _, b := range pods {
			if a.Name == b.Name {
				continue
			}
			wg.Go(func() {
				r, err := l.Ping(ctxT(t, 30*time.Second), a.Name, b.Address, 84, false, 1)
				if err != nil || r.Received == 0 {
					mu.Lock()
					failed = append(failed, a.Name+"→"+b.Name)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		slices.Sort(failed)
		t.Errorf("Pod pairs without a reply to a small ping: %v", failed)
	}
}
