package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/hostfacts"
	"podpath/internal/model"
	"podpath/internal/nsenter"
)

// The virtual cluster: n real agents in this process, each on its own
// loopback address (127.1.x.y, all of 127/8 is local on Linux), answering
// real probes and API calls, and an inventory naming them. The doctor runs
// as its own process against it, so its wall time, peak RSS and report
// sizes are the controller's alone. What it cannot show: a real network
// (every path is loopback, MTU 65536) and per-node CPUs (all agents share
// this machine's cores, which makes it harder than a real cluster, not
// easier).

// virtualPort is the agents' port: each has its own address.
const virtualPort = 7946

// virtualAddr is node i's address (i from 0): 127.1.0.1, 127.1.0.2, …
func virtualAddr(i int) netip.Addr {
	n := i + 1
	return netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)})
}

// virtualCluster starts n agents and writes their inventory into dir; stop
// ends them.
func virtualCluster(ctx context.Context, n int, dir string) (invPath string, stop func()) {
	raiseFileLimit()
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
		fatal(err)
	}
	facts := nodeFacts(ctx)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind, TokenFile: "token"}
	for i := range n {
		name := fmt.Sprintf("vnode%d", i+1)
		addr := netip.AddrPortFrom(virtualAddr(i), virtualPort).String()
		a, err := agent.New(agent.Config{Name: name, Role: "host", Token: token,
			Facts: func(context.Context) (any, error) { return facts, nil }})
		if err != nil {
			fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fatal(fmt.Errorf("virtual node %s: %w", name, err))
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			fatal(fmt.Errorf("virtual node %s: %w", name, err))
		}
		wg.Go(func() { _ = a.Serve(ctx, ln, pc) })
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: name, Address: virtualAddr(i).String(), Agent: addr})
	}
	b, err := inventory.Marshal(inv)
	if err != nil {
		fatal(err)
	}
	invPath = filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(invPath, b, 0o600); err != nil {
		fatal(err)
	}
	return invPath, func() { cancel(); wg.Wait() }
}

// nodeFacts are the host facts every virtual agent serves: one real
// collection, in a network namespace of their own set up as a node would
// be (forwarding on), not this machine's, which is no node. A thousand
// collections would measure netlink, not the doctor.
func nodeFacts(ctx context.Context) *model.Facts {
	ns := fmt.Sprintf("podpath-virtual-%d", os.Getpid())
	for _, argv := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput(); err != nil {
			fatal(fmt.Errorf("ip %v: %v: %s", argv, err, out))
		}
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("forwarding on in %s: %v: %s", ns, err, out))
	}
	var facts *model.Facts
	err := nsenter.Do(ns, func() error {
		var err error
		facts, err = hostfacts.Collect(ctx, hostfacts.Options{AgentPort: virtualPort})
		return err
	})
	if err != nil {
		fatal(fmt.Errorf("host facts in %s: %w", ns, err))
	}
	return facts
}

// raiseFileLimit lifts this process's open-file limit to its hard limit:
// a thousand agents hold two sockets each and their peers' connections.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// virtualDoctor runs the doctor on a virtual cluster of each size in
// sizes, one after the other, and prints time, memory, report sizes and
// the verdict.
func virtualDoctor(ctx context.Context, bin string, sizes []int) {
	fmt.Printf("== podpath doctor on a virtual cluster (real agents on loopback addresses, node layer)\n")
	fmt.Printf("  %6s %9s %6s %11s %12s %12s %s\n", "nodes", "pairs", "exit", "wall", "peak RSS", "JSON report", "findings (error/warning/info)")
	for _, n := range sizes {
		dir, err := os.MkdirTemp("", "podpath-virtual-")
		if err != nil {
			fatal(err)
		}
		invPath, stop := virtualCluster(ctx, n, dir)
		out := filepath.Join(dir, "report.json")
		cmd := exec.CommandContext(ctx, bin, "doctor", "--inventory", invPath, "--layers", "node", "-o", "json", "--output-file", out)
		cmd.Stderr = os.Stderr
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			fatal(err)
		}
		var rss int64
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10
		}
		var size int64
		var r model.Report
		if b, err := os.ReadFile(out); err == nil {
			size = int64(len(b))
			_ = json.Unmarshal(b, &r)
		}
		sev := map[string]int{}
		var ids []string
		for _, f := range r.Findings {
			sev[f.Severity]++
			ids = append(ids, f.Severity+" "+f.ID)
		}
		fmt.Printf("  %6d %9d %6d %11s %9.0f MiB %8.1f MiB %d/%d/%d %v\n", n, n*(n-1), code, wall.Round(10*time.Millisecond),
			float64(rss)/(1<<20), float64(size)/(1<<20), sev["error"], sev["warning"], sev["info"], ids)
		if len(r.Pairs) > 0 {
			b, _ := json.Marshal(r.Pairs[0])
			fmt.Printf("  first pair: %s\n", b)
		}
		stop()
		os.RemoveAll(dir)
	}
	fmt.Println()
}
