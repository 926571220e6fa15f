package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/hostfacts"
	"podpath/internal/model"
)

// The virtual cluster: n real agents, a few hundred to a process, each on its own
// loopback address (127.1.x.y: all of 127/8 is local), answering real
// probes and API calls, in a network namespace of its own whose loopback
// has a node's MTU (1500) and forwarding on, so nothing touches this
// machine's own loopback. The doctor runs as its own process in that
// namespace, so its wall time, peak RSS and report sizes are the
// controller's alone. What it cannot show: a real network between nodes
// and per-node CPUs (all agents share this machine's cores, which makes it
// harder than a real cluster, not easier).

// virtualPort is the agents' port: each has its own address.
const virtualPort = 7946

// virtualMTU is the namespace's loopback MTU: a node's.
const virtualMTU = 1500

// virtualAddr is node i's address (i from 0): 127.1.0.1, 127.1.0.2, …
func virtualAddr(i int) netip.Addr {
	n := i + 1
	return netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)})
}

// virtualNetns makes the namespace; the func removes it.
func virtualNetns(ctx context.Context) (string, func()) {
	ns := fmt.Sprintf("podpath-virtual-%d", os.Getpid())
	for _, argv := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "mtu", fmt.Sprint(virtualMTU), "up"},
		{"netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"}} {
		if out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "netns", "del", ns).Run()
			fatal(fmt.Errorf("ip %v: %v: %s", argv, err, out))
		}
	}
	return ns, func() { _ = exec.Command("ip", "netns", "del", ns).Run() }
}

// virtualPerProcess is how many agents one process holds: each needs a
// few descriptors of its own and one per probe and connection in flight,
// and an open-file limit root may not raise (20,000 in some containers)
// ran out at 1,000 agents in one process ("accept4: too many open
// files"), which the doctor rightly read as agents not answering.
const virtualPerProcess = 200

// virtualChild is a process holding agents first+1 … first+count (bench
// --virtual-child first,count --virtual-dir DIR, started inside the
// namespace): it reads DIR/token, writes its inventory nodes to
// DIR/nodes-FIRST.json and then DIR/ready-FIRST, and serves until its
// stdin closes.
func virtualChild(spec, dir, cpuProfile string) {
	var first, count int
	if _, err := fmt.Sscanf(spec, "%d,%d", &first, &count); err != nil || count < 1 {
		fatal(fmt.Errorf("--virtual-child %q: want first,count", spec))
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	raiseFileLimit()
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		fatal(err)
	}
	// One real collection, served by every agent of the process: a
	// thousand would measure netlink, not the doctor.
	facts, err := hostfacts.Collect(ctx, hostfacts.Options{AgentPort: virtualPort})
	if err != nil {
		fatal(fmt.Errorf("host facts: %w", err))
	}
	var wg sync.WaitGroup
	var nodes []inventory.Node
	for i := first; i < first+count; i++ {
		name := fmt.Sprintf("vnode%d", i+1)
		addr := netip.AddrPortFrom(virtualAddr(i), virtualPort).String()
		a, err := agent.New(agent.Config{Name: name, Role: "host", Token: string(token),
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
		nodes = append(nodes, inventory.Node{Name: name, Address: virtualAddr(i).String(), Agent: addr})
	}
	b, err := json.Marshal(nodes)
	if err != nil {
		fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("nodes-%d.json", first)), b, 0o600); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("ready-%d", first)), nil, 0o600); err != nil {
		fatal(err)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent ends us by closing it
	cancel()
	wg.Wait()
}

// virtualAgents starts the agents of an n-node virtual cluster in ns,
// virtualPerProcess to a process, waits until all serve, and writes
// DIR/inventory.yaml. The func stops them.
func virtualAgents(ctx context.Context, ns, dir string, n int) func() {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(hex.EncodeToString(tok)), 0o600); err != nil {
		fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	var firsts []int
	for first := 0; first < n; first += virtualPerProcess {
		profile := ""
		if first == 0 {
			profile = virtualProfile // the first process's agents stand for all
		}
		child := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "--virtual-child", fmt.Sprintf("%d,%d", first, min(virtualPerProcess, n-first)),
			"--virtual-dir", dir, "--virtual-cpuprofile", profile)
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		stdin, err := child.StdinPipe()
		if err != nil {
			stop()
			fatal(err)
		}
		if err := child.Start(); err != nil {
			stop()
			fatal(err)
		}
		stops = append(stops, func() { stdin.Close(); _ = child.Wait() })
		firsts = append(firsts, first)
	}
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind, TokenFile: "token"}
	deadline := time.Now().Add(2 * time.Minute)
	for _, first := range firsts {
		for ; ; time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("ready-%d", first))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				stop()
				fatal(fmt.Errorf("virtual cluster of %d nodes not up within 2 minutes", n))
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("nodes-%d.json", first)))
		var nodes []inventory.Node
		if err == nil {
			err = json.Unmarshal(b, &nodes)
		}
		if err != nil {
			stop()
			fatal(fmt.Errorf("virtual nodes from %d: %w", first, err))
		}
		inv.Nodes = append(inv.Nodes, nodes...)
	}
	b, err := inventory.Marshal(inv)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "inventory.yaml"), b, 0o600)
	}
	if err != nil {
		stop()
		fatal(err)
	}
	return stop
}

// raiseFileLimit lifts this process's open-file limit as far as the
// kernel allows (fs.nr_open; root may raise the hard limit too): a
// thousand agents in one process hold two sockets each, their peers'
// connections and their own probes' sockets.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > rl.Max {
			if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}) == nil {
				return
			}
		}
	}
	rl.Cur = rl.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}

// virtualProfile, when set, is where the agents' process writes its CPU profile.
var virtualProfile string

// virtualDoctor runs the doctor on a virtual cluster of each size in
// sizes, one after the other, and prints time, memory, report sizes and
// the verdict.
func virtualDoctor(ctx context.Context, bin string, sizes []int) {
	fmt.Printf("== podpath doctor on a virtual cluster (real agents on loopback addresses in a namespace, MTU %d, node layer)\n", virtualMTU)
	fmt.Printf("  %6s %9s %5s %9s %9s %9s %9s %s\n", "nodes", "pairs", "exit", "wall", "doctor CPU", "peak RSS", "JSON", "findings")
	for _, n := range sizes {
		virtualRun(ctx, bin, n)
	}
	fmt.Println()
}

func virtualRun(ctx context.Context, bin string, n int) {
	ns, dropNetns := virtualNetns(ctx)
	defer dropNetns()
	dir, err := os.MkdirTemp("", "podpath-virtual-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	defer virtualAgents(ctx, ns, dir, n)()
	out := filepath.Join(dir, "report.json")
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "doctor", "--inventory", filepath.Join(dir, "inventory.yaml"),
		"--layers", "node", "--timeout", virtualTimeout(n).String(), "-o", "json", "--output-file", out)
	start := time.Now()
	progress := &stamped{start: start}
	cmd.Stderr = progress
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
		rss = ru.Maxrss << 10 // ip execs podpath: the same process
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var size int64
	var r model.Report
	if st, err := os.Stat(out); err == nil {
		size = st.Size()
		r.Findings, _ = readFindings(out)
	}
	found := map[string]int{}
	for _, f := range r.Findings {
		found[f.Severity+" "+f.ID]++
	}
	fmt.Printf("  %6d %9d %5d %9s %9s %5.0f MiB %5.0f MiB %v\n", n, n*(n-1), code, wall.Round(10*time.Millisecond),
		cpu.Round(100*time.Millisecond), float64(rss)/(1<<20), float64(size)/(1<<20), found)
	fmt.Print(progress.String())
	for _, f := range r.Findings {
		if f.Severity != "info" {
			fmt.Printf("    %s %s: %s\n", f.Severity, f.ID, f.Title)
			for _, e := range f.Evidence[:min(len(f.Evidence), 3)] {
				fmt.Printf("      %s\n", e)
			}
		}
	}
}

// virtualTimeout is the doctor's --timeout for n nodes: five minutes, or
// 100 µs per pair when that is more (25 million pairs at 5,000 nodes).
func virtualTimeout(n int) time.Duration {
	return max(5*time.Minute, time.Duration(n*n)*100*time.Microsecond)
}

// readFindings reads a JSON report's findings and stops there: they come
// first, and at 5,000 nodes the pairs behind them are gigabytes.
func readFindings(path string) ([]model.Finding, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key == "findings" {
			var fs []model.Finding
			err := dec.Decode(&fs)
			return fs, err
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: no findings", path)
}

// stamped keeps the doctor's progress lines, each with the time since start.
type stamped struct {
	start time.Time
	mu    sync.Mutex
	b     strings.Builder
	part  string
}

func (s *stamped) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part += string(p)
	for {
		i := strings.IndexByte(s.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(&s.b, "    %7.1fs  %s\n", time.Since(s.start).Seconds(), s.part[:i])
		s.part = s.part[i+1:]
	}
}

func (s *stamped) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
