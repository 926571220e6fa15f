package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"podpath/internal/probe"
)

// The environment that turns this test binary into something else: a bare
// agent (for a process the test can stop), or the named test run again
// inside a network namespace of its own.
const (
	envAgent = "PODPATH_TEST_AGENT" // listen address
	envNetns = "PODPATH_TEST_NETNS" // test name
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envAgent); addr != "" {
		serveUntilKilled(addr)
		return
	}
	os.Exit(m.Run())
}

// serveUntilKilled runs an agent on addr until the process is killed.
func serveUntilKilled(addr string) {
	a, err := New(Config{Name: "child", Role: "host", Token: token})
	if err == nil {
		err = a.ListenAndServe(context.Background(), addr)
	}
	fmt.Fprintln(os.Stderr, "agent child:", err)
	os.Exit(1)
}

// inFreshNetns runs the calling test again in a child process that has a
// network namespace of its own (lo up), and reports whether this is that
// child: the caller then does its work, which may change the namespace's
// links at will. The parent only relays the child's verdict.
func inFreshNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envNetns) == t.Name() {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatalf("bring lo up: %v", err)
		}
		return true
	}
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (a network namespace of its own) and not -short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envNetns+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in its own network namespace: %v\n%s", err, out)
	}
	t.Logf("in its own network namespace:\n%s", out)
	return false
}

// Peers that answer badly cost their timeout and nothing more: a port
// nothing listens on (the host answers ICMP port unreachable), an address
// whose packets vanish, and a SIGSTOPped agent (its kernel still queues
// datagrams and completes TCP handshakes). The healthy peer beside them keeps
// its full results. Fifty requests, ten at a time.
func TestBadPeersCostTheirTimeout(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	healthy := startAgent(t, "healthy")
	prober := startAgent(t, "prober")

	// A port with nothing behind it, on either protocol.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	// An address whose frames go to a MAC nobody has: veth1 receives them
	// as another host's and drops them, without a word back.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"veth0", "veth1"} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	a, _ := netlink.ParseAddr("10.98.0.1/24")
	if err := netlink.AddrAdd(veth, a); err != nil {
		t.Fatal(err)
	}
	nobody, _ := net.ParseMAC("02:00:00:00:00:01")
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: veth.Attrs().Index, IP: net.ParseIP("10.98.0.2"),
		HardwareAddr: nobody, State: netlink.NUD_PERMANENT}); err != nil {
		t.Fatal(err)
	}
	silent := "10.98.0.2:7946"

	// An agent process, stopped once it listens.
	stoppedAddr := "127.0.0.2:7946"
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envAgent+"="+stoppedAddr)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = child.Process.Signal(syscall.SIGCONT)
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	waitListening(t, stoppedAddr)
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, child.Process.Pid)

	c := client(prober)
	peers := []Peer{{"healthy", healthy}, {"closed", closed}, {"silent", silent}, {"stopped", stoppedAddr}}
	if err := c.SetPeers(context.Background(), peers); err != nil {
		t.Fatal(err)
	}
	req := ProbeRequest{Targets: []string{"healthy", "closed", "silent", "stopped"}, PathMTU: true,
		RTT: &Series{Count: 10, IntervalMs: 10}, ICMP: &Series{Count: 5, IntervalMs: 10}, TCPConnect: 2, TransferBytes: 300_000}
	// What the worst of them may cost: two reachability bursts, then one
	// ICMP echo beside one TCP handshake.
	bound := 2*probe.ProbeTimeout + max(probe.ProbeTimeout, probe.ConnectTimeout) + time.Second

	const runs, atOnce = 50, 10
	var mu sync.Mutex
	var slowest time.Duration
	for wave := range runs / atOnce {
		var wg sync.WaitGroup
		for i := range atOnce {
			wg.Go(func() {
				run := wave*atOnce + i + 1
				ctx, cancel := context.WithTimeout(context.Background(), 4*bound)
				defer cancel()
				start := time.Now()
				resp, err := c.Probe(ctx, req)
				took := time.Since(start)
				mu.Lock()
				slowest = max(slowest, took)
				mu.Unlock()
				if err != nil {
					t.Errorf("run %d: %v after %s", run, err, took)
					return
				}
				if took > bound {
					t.Errorf("run %d took %s; want at most %s", run, took, bound)
				}
				checkBadPeers(t, run, resp)
			})
		}
		wg.Wait()
	}
	t.Logf("%d runs, slowest %s (bound %s); ICMP errors the kernel held back: %s", runs, slowest.Round(time.Millisecond), bound, icmpRateLimited())
}

func checkBadPeers(t *testing.T, run int, resp *ProbeResponse) {
	t.Helper()
	byPeer := map[string]TargetResult{}
	for _, r := range resp.Results {
		byPeer[r.Peer] = r
	}
	h := byPeer["healthy"]
	if !h.Reachable || h.PathMTU == nil || h.PathMTU.PathMTU < 16000 || h.RTT == nil || h.RTT.Received != 10 ||
		h.Transfer == nil || h.Transfer.Bytes != 300_000 || h.TCPConnect == nil || h.TCPConnect.Received != 2 || len(h.Errors) > 0 {
		t.Errorf("run %d: healthy peer lost results: %+v (path MTU %+v %s)", run, h, h.PathMTU, h.PathMTUError)
	}
	if r := byPeer["closed"]; r.Reachable || !strings.Contains(strings.Join(r.Errors, " "), "port unreachable") {
		t.Errorf("run %d: closed port: reachable %v, errors %v; want unreachable, the host's port unreachable named (ICMP errors held back for the namespace's budget so far: %s)", run, r.Reachable, r.Errors, icmpRateLimited())
	}
	if r := byPeer["silent"]; r.Reachable || r.TCPConnect == nil || r.TCPConnect.Received != 0 {
		t.Errorf("run %d: silent peer: %+v; want unreachable, no handshake", run, r)
	}
	if r := byPeer["stopped"]; r.Reachable || r.TCPConnect == nil || r.TCPConnect.Received != 1 {
		t.Errorf("run %d: stopped agent: %+v; want no UDP answer and its kernel's TCP handshake", run, r)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent on %s did not listen: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// icmpRateLimited is this namespace's count of ICMP errors not sent for
// the budget (/proc/net/snmp's Icmp OutRateLimitGlobal), or "unknown".
func icmpRateLimited() string {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return "unknown"
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "OutRateLimitGlobal" && i < len(fields) {
				return fields[i]
			}
		}
	}
	return "unknown"
}

// waitStopped waits until every thread of pid is stopped: SIGSTOP takes
// effect when each thread is next scheduled, and under load a running one
// could still answer the first probes.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			// The state follows the command name in parentheses: "pid (comm) T …".
			if i := bytes.LastIndexByte(b, ')'); err != nil || i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				stopped = false
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d not stopped 5 s after SIGSTOP", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
