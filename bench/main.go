// Command bench compares podpath's measurements with the reference tools on
// the same lab path in one run: throughput vs iperf3, RTT vs iputils ping on
// a delayed path, path-MTU time and probes vs tracepath, a full 3-node
// `podpath mtu`, the doctor on labs of 3 to 100 nodes (healthy and with the
// seed fault), the agent's RSS and CPU while it probes 100 peers, and the
// doctor on virtual clusters of 200 and 1,000 nodes.
// It needs root (it builds labs) and prints ratios.
//
//	go run ./bench --podpath bin/podpath
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/lab"
	"podpath/internal/model"
)

func main() {
	bin := flag.String("podpath", "bin/podpath", "podpath binary the lab runs as agents")
	secs := flag.Float64("seconds", 3, "length of each throughput run")
	peers := flag.Int("peers", 100, "peers for the agent-cost run")
	only := flag.String("only", "", "run one section: monitor, mtu (path MTU against tracepath, flat and routed), doctor (the doctor on labs of --doctor-nodes), virtual (the doctor on virtual clusters), or agent (one agent's CPU and RSS probing --peers peers)")
	virtual := flag.String("virtual-nodes", "200,1000", "sizes of the virtual clusters, comma-separated")
	doctorNodes := flag.String("doctor-nodes", "3,10,50,100", "sizes of the labs the doctor is timed on, comma-separated")
	child := flag.Int("monitor-child", 0, "internal: run the monitor's process-cost check with this many nodes")
	monitorSecs := flag.Int("monitor-seconds", 60, "length of the monitor's process-cost run")
	virtualChildSpec := flag.String("virtual-child", "", "internal: serve agents first+1 … first+count of a virtual cluster (first,count)")
	virtualDir := flag.String("virtual-dir", "", "internal: the virtual cluster's directory")
	flag.StringVar(&virtualProfile, "virtual-cpuprofile", "", "write the virtual agents' CPU profile to this file")
	flag.Parse()
	if *virtualChildSpec != "" {
		virtualChild(*virtualChildSpec, *virtualDir, virtualProfile)
		return
	}
	if *child > 0 {
		monitorChild(*child, *monitorSecs)
		return
	}
	if *only == "monitor" {
		monitorScale(5000, *monitorSecs)
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (it builds network-namespace labs)")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fatal(err)
	}
	lab.Binary = abs
	ctx := context.Background()
	if *only == "agent" {
		agentCost(ctx, *peers)
		return
	}
	if *only == "virtual" {
		virtualDoctor(ctx, abs, sizes(*virtual))
		return
	}
	if *only == "doctor" {
		doctorScale(ctx, abs, sizes(*doctorNodes))
		return
	}
	if *only == "mtu" {
		pathMTU(ctx, abs)
		routedPathMTU(ctx)
		return
	}
	fmt.Printf("podpath bench, %s, kernel %s\n\n", time.Now().UTC().Format(time.DateOnly), kernel())
	throughputAndRTT(ctx, *secs)
	pathMTU(ctx, abs)
	routedPathMTU(ctx)
	doctorScale(ctx, abs, sizes(*doctorNodes))
	preflightTime(ctx, abs)
	agentCost(ctx, *peers)
	virtualDoctor(ctx, abs, sizes(*virtual))
	monitorScale(5000, *monitorSecs)
}

// preflightTime times `podpath preflight` on 3 future nodes (agents in the
// node namespaces, no Calico), healthy and with the acceptance faults.
func preflightTime(ctx context.Context, bin string) {
	l, _, _ := up(ctx, lab.New("bench").Nodes(3).PodsPerNode(0).Backend(lab.BackendNone))
	fmt.Println("== podpath preflight, 3 nodes (path MTU and 6 ports per ordered pair), median of 5 (target: under 5 s)")
	median5 := func() time.Duration {
		var v []float64
		for range 5 {
			start := time.Now()
			_ = exec.Command(bin, "preflight", "--inventory", l.Inventory, "-o", "json").Run() // exit 1 with findings
			v = append(v, float64(time.Since(start)))
		}
		return time.Duration(median(v))
	}
	healthy := median5()
	fault(ctx, l, "underlay-mtu=node3:1400")
	fault(ctx, l, "block-vxlan=node2")
	faulty := median5()
	fmt.Printf("  healthy %s; underlay-mtu=node3:1400 + block-vxlan=node2 %s\n\n", healthy.Round(time.Millisecond), faulty.Round(time.Millisecond))
	_ = lab.Down(ctx, "bench")
}

// sizes parses a comma-separated list of node counts.
func sizes(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 || n > 60000 {
			fatal(fmt.Errorf("node counts %q: want numbers from 3 to 60000, comma-separated", s))
		}
		out = append(out, n)
	}
	return out
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	_ = lab.Down(context.Background(), "bench")
	os.Exit(1)
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func up(ctx context.Context, b *lab.Builder) (*lab.Lab, *inventory.Inventory, string) {
	_ = lab.Down(ctx, "bench")
	l, err := b.Agents(true).Up(ctx)
	if err != nil {
		fatal(err)
	}
	inv, err := inventory.Load(l.Inventory)
	if err != nil {
		fatal(err)
	}
	tok, err := os.ReadFile(inv.TokenFile)
	if err != nil {
		fatal(err)
	}
	return l, inv, strings.TrimSpace(string(tok))
}

func fault(ctx context.Context, l *lab.Lab, spec string) {
	f, err := lab.ParseFault(spec)
	if err == nil {
		err = l.AddFault(ctx, f)
	}
	if err != nil {
		fatal(err)
	}
}

func labRun(ctx context.Context, l *lab.Lab, who string, argv ...string) string {
	cmd, err := l.Command(ctx, who, argv...)
	if err != nil {
		fatal(err)
	}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// probe runs one probe request from an endpoint of the inventory towards one peer.
func probe(ctx context.Context, token string, from, to inventory.Node, pod bool, req agent.ProbeRequest) agent.TargetResult {
	name, addr, netns, peer := from.Name, from.Agent, from.Netns, agent.Peer{Name: to.Name, Address: to.Agent}
	if pod {
		name, addr, netns, peer = from.Pods[0].Name, from.Pods[0].Agent, from.Pods[0].Netns, agent.Peer{Name: to.Pods[0].Name, Address: to.Pods[0].Agent}
	}
	c := agent.NewClient(name, addr, token, netns)
	if err := c.SetPeers(ctx, []agent.Peer{peer}); err != nil {
		fatal(err)
	}
	req.Targets = []string{to.Name}
	resp, err := c.Probe(ctx, req)
	if err != nil {
		fatal(err)
	}
	return resp.Results[0]
}

var iperfBps = regexp.MustCompile(`([\d.]+) ([KMG]?)bits/sec\s+receiver`)

// rounds of each throughput measurement: the 2-core machines this runs on
// swing by ±10% from run to run, so single runs compare noise.
const rounds = 6

// shapedMbit is the bottleneck of the throughput comparison's second run.
const shapedMbit = 1000

func compareThroughput(ctx context.Context, l *lab.Lab, token string, n1, n2 inventory.Node, secs float64, what string) {
	fmt.Printf("== TCP throughput, one stream, Pod node1-pod1 → Pod node2-pod1 over VXLAN, %s\n", what)
	fmt.Printf("   %d runs of %.0f s each in ABBA order, medians\n", rounds, secs)
	var refs, ours []float64
	ref := func() { refs = append(refs, iperf3(ctx, l, n2.Pods[0].Address, secs)) }
	our := func() {
		tp := probe(ctx, token, n1, n2, true, agent.ProbeRequest{Throughput: &agent.ThroughputSpec{Seconds: secs, Streams: 1}}).Throughput
		ours = append(ours, tp.BitsPerSec)
	}
	// ABBA order, so a drift in the machine's speed hits both tools alike.
	for i := range rounds {
		if i%2 == 0 {
			ref()
			our()
		} else {
			our()
			ref()
		}
	}
	refMed, ourMed := median(refs), median(ours)
	fmt.Printf("  iperf3   %8.3f Gbit/s  (runs %s)\n  podpath  %8.3f Gbit/s  (runs %s)   ratio %.3f (%+.1f%%)\n\n",
		refMed/1e9, gbits(refs), ourMed/1e9, gbits(ours), ourMed/refMed, 100*(ourMed/refMed-1))
}

// iperf3 runs one iperf3 client → server transfer between the lab's Pods
// and returns the receiver's bits per second.
func iperf3(ctx context.Context, l *lab.Lab, server string, secs float64) float64 {
	srv, err := l.Command(ctx, "node2-pod1", "iperf3", "-s", "-1", "-p", "5201")
	if err != nil {
		fatal(err)
	}
	if err := srv.Start(); err != nil {
		fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	out := labRun(ctx, l, "node1-pod1", "iperf3", "-c", server, "-p", "5201", "-t", strconv.Itoa(int(secs)), "-f", "m")
	_ = srv.Wait()
	m := iperfBps.FindStringSubmatch(out)
	if m == nil {
		fatal(fmt.Errorf("iperf3: %s", out))
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v * map[string]float64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m[2]]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func gbits(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, fmt.Sprintf("%.3f", x/1e9))
	}
	return strings.Join(parts, " ")
}

func throughputAndRTT(ctx context.Context, secs float64) {
	l, inv, token := up(ctx, lab.New("bench").Nodes(2).Backend(lab.BackendVXLAN))
	n1, n2 := inv.Nodes[0], inv.Nodes[1]
	// On veth alone the path is as fast as the CPUs, and the comparison
	// measures which tool spends fewer cycles per byte. A shaped path (a
	// slower NIC, rate=node1:N) has a real bottleneck both tools must find.
	compareThroughput(ctx, l, token, n1, n2, secs, "unshaped: CPU-bound, compares the tools' cost per byte")
	fault(ctx, l, fmt.Sprintf("rate=node1:%d", shapedMbit))
	compareThroughput(ctx, l, token, n1, n2, secs, fmt.Sprintf("node1 shaped to %d Mbit/s: a real bottleneck", shapedMbit))
	if err := l.ClearFaults(ctx); err != nil {
		fatal(err)
	}

	fmt.Println("== RTT node1 → node2 with delay=node2:20 (50 echoes, 20 ms apart)")
	fault(ctx, l, "delay=node2:20")
	pout := labRun(ctx, l, "node1", "ping", "-n", "-q", "-c", "50", "-i", "0.02", n2.Address)
	pm := regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms`).FindStringSubmatch(pout)
	if pm == nil {
		fatal(fmt.Errorf("ping: %s", pout))
	}
	pingAvg, _ := strconv.ParseFloat(pm[2], 64)
	s := probe(ctx, token, n1, n2, false, agent.ProbeRequest{RTT: &agent.Series{Count: 50, IntervalMs: 20}}).RTT
	diff := s.MeanMs - pingAvg
	fmt.Printf("  ping     mean %.3f ms (min %s, max %s)\n  podpath  mean %.3f ms (p50 %.3f, p99 %.3f, jitter %.3f)   diff %+.3f ms (%+.2f%%)\n\n",
		pingAvg, pm[1], pm[3], s.MeanMs, s.P50Ms, s.P99Ms, s.JitterMs, diff, 100*diff/pingAvg)
	_ = lab.Down(ctx, "bench")
}

func pathMTU(ctx context.Context, bin string) {
	l, inv, token := up(ctx, lab.New("bench").Nodes(3).Backend(lab.BackendVXLAN))
	fault(ctx, l, "underlay-mtu=node3:1400")
	n1, n3 := inv.Nodes[0], inv.Nodes[2]
	fmt.Println("== Path MTU node1 → node3, underlay towards node3 carries 1400 bytes (silent drop)")
	start := time.Now()
	tout := labRun(ctx, l, "node1", "tracepath", "-n", "-m", "4", n3.Address)
	tdur := time.Since(start)
	pmtu := regexp.MustCompile(`pmtu (\d+)`).FindAllStringSubmatch(tout, -1)
	tv := "none"
	if len(pmtu) > 0 {
		tv = pmtu[len(pmtu)-1][1]
	}
	r := probe(ctx, token, n1, n3, false, agent.ProbeRequest{PathMTU: true}).PathMTU
	fmt.Printf("  tracepath  pmtu %s in %s (it relies on ICMP, which a silent drop never sends)\n", tv, tdur.Round(time.Millisecond))
	fmt.Printf("  podpath    pmtu %d in %s, %d probes, %d rounds (limit: %s)\n\n", r.PathMTU, r.Duration.Round(time.Millisecond), r.Probes, r.Rounds, r.Limit)

	fmt.Println("== Full `podpath mtu` on 3 nodes, both layers (12 ordered pairs), ICMP blocked everywhere")
	for _, n := range []string{"node1", "node2", "node3"} {
		fault(ctx, l, "block-icmp="+n)
	}
	var best time.Duration
	for range 3 {
		start = time.Now()
		out, err := exec.Command(bin, "mtu", "--inventory", l.Inventory, "-o", "json").CombinedOutput()
		d := time.Since(start)
		if err != nil {
			fatal(fmt.Errorf("podpath mtu: %v: %s", err, out))
		}
		if best == 0 || d < best {
			best = d
		}
	}
	fmt.Printf("  podpath mtu  %s wall time (best of 3, process start to exit)\n\n", best.Round(time.Millisecond))
	_ = lab.Down(ctx, "bench")
}

// routedPathMTU compares podpath with tracepath behind a router whose link
// to node3 carries 1400 bytes: with the router's "fragmentation needed"
// arriving (both should say 1400) and with it suppressed (tracepath cannot
// know). Each run starts from an empty route cache, so neither tool finds
// the other's path MTU already cached; medians of 5.
func routedPathMTU(ctx context.Context) {
	l, inv, token := up(ctx, lab.New("bench").Nodes(3).Backend(lab.BackendVXLAN).Topology(lab.TopologyRouted))
	fault(ctx, l, "router-mtu=1400")
	n1, n3 := inv.Nodes[0], inv.Nodes[2]
	pmtuRE := regexp.MustCompile(`pmtu (\d+)`)
	for _, variant := range []string{"router sends fragmentation needed", "router suppresses fragmentation needed"} {
		if strings.Contains(variant, "suppresses") {
			fault(ctx, l, "router-no-frag-needed")
		}
		fmt.Printf("== Path MTU node1 → node3 across a router whose link carries 1400 bytes, %s; median of 5\n", variant)
		var tdur, pdur []float64
		var tv string
		var pr *probeOutcome
		for range 5 {
			labRun(ctx, l, "node1", "ip", "route", "flush", "cache")
			start := time.Now()
			out := labRun(ctx, l, "node1", "tracepath", "-n", "-m", "4", n3.Address)
			tdur = append(tdur, float64(time.Since(start)))
			tv = "none"
			if m := pmtuRE.FindAllStringSubmatch(out, -1); len(m) > 0 {
				tv = m[len(m)-1][1]
			}
			labRun(ctx, l, "node1", "ip", "route", "flush", "cache")
			start = time.Now()
			r := probe(ctx, token, n1, n3, false, agent.ProbeRequest{PathMTU: true}).PathMTU
			pdur = append(pdur, float64(time.Since(start)))
			pr = &probeOutcome{r.PathMTU, r.Limit, r.ICMPFrom, r.Probes, r.Rounds}
		}
		fmt.Printf("  tracepath  pmtu %s in %s\n", tv, time.Duration(median(tdur)).Round(time.Millisecond))
		fmt.Printf("  podpath    pmtu %d in %s (request round trip), %d probes, %d rounds, limit %s %s\n\n", pr.mtu, time.Duration(median(pdur)).Round(time.Millisecond), pr.probes, pr.rounds, pr.limit, pr.from)
	}
	_ = lab.Down(ctx, "bench")
}

type probeOutcome struct {
	mtu            int
	limit, from    string
	probes, rounds int
}

// doctorScale times `podpath doctor` on labs of each size in sizes (both
// layers), healthy and with the seed fault (whose stalled transfers wait
// out the stall timeout), best of 3, with what each run reported at error
// and warning level, and the growth of the wall time from the first size
// to the last.
func doctorScale(ctx context.Context, bin string, sizes []int) {
	fmt.Println("== podpath doctor on labs (both layers), healthy and with the seed fault (underlay-mtu=node3:1400), best of 3")
	fmt.Printf("  %5s %7s %9s %-34s %9s %s\n", "nodes", "pairs", "healthy", "its verdicts (3 runs)", "seed", "its verdicts (3 runs)")
	var first, last [2]time.Duration
	for i, n := range sizes {
		l, _, _ := up(ctx, lab.New("bench").Nodes(n).Backend(lab.BackendVXLAN))
		healthy, hv := doctorRuns(bin, l.Inventory)
		fault(ctx, l, "underlay-mtu=node3:1400")
		seed, sv := doctorRuns(bin, l.Inventory)
		_ = lab.Down(ctx, "bench")
		fmt.Printf("  %5d %7d %9s %-34s %9s %s\n", n, 2*n*(n-1), healthy.Round(10*time.Millisecond), hv, seed.Round(10*time.Millisecond), sv)
		if i == 0 {
			first = [2]time.Duration{healthy, seed}
		}
		last = [2]time.Duration{healthy, seed}
	}
	if len(sizes) > 1 {
		fmt.Printf("  %d → %d nodes (%.0f× the nodes, %.0f× the pairs): healthy %.1f×, seed fault %.1f× the wall time\n", sizes[0], sizes[len(sizes)-1],
			float64(sizes[len(sizes)-1])/float64(sizes[0]), float64(sizes[len(sizes)-1]*(sizes[len(sizes)-1]-1))/float64(sizes[0]*(sizes[0]-1)),
			float64(last[0])/float64(first[0]), float64(last[1])/float64(first[1]))
	}
	fmt.Println()
}

// doctorRuns runs the doctor 3 times on inventory and returns the best
// wall time and, per run, its exit code and error and warning findings.
func doctorRuns(bin, inventory string) (time.Duration, string) {
	var best time.Duration
	var verdicts []string
	for range 3 {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("podpath-bench-doctor-%d.json", os.Getpid()))
		start := time.Now()
		err := exec.Command(bin, "doctor", "--inventory", inventory, "-o", "json", "--output-file", out).Run() // exit 1 with findings
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		var r model.Report
		if b, err := os.ReadFile(out); err == nil {
			_ = json.Unmarshal(b, &r)
		}
		_ = os.Remove(out)
		var found []string
		for _, f := range r.Findings {
			if f.Severity != "info" {
				found = append(found, f.ID+" "+strings.Join(f.Nodes[:min(len(f.Nodes), 3)], ","))
			}
		}
		v := fmt.Sprintf("%d", code)
		if len(found) > 0 {
			v += ": " + strings.Join(found, "; ")
		}
		verdicts = append(verdicts, v)
	}
	return best, strings.Join(verdicts, " | ")
}

func agentCost(ctx context.Context, peers int) {
	start := time.Now()
	_, inv, token := up(ctx, lab.New("bench").Nodes(peers+1).PodsPerNode(0).Backend(lab.BackendVXLAN))
	fmt.Printf("== Agent cost: node1's agent probes %d peers (lab of %d nodes with agents up in %s)\n", peers, peers+1, time.Since(start).Round(time.Millisecond))
	pid := agentPid(inv.Nodes[0].Name)
	c := agent.NewClient(inv.Nodes[0].Name, inv.Nodes[0].Agent, token, inv.Nodes[0].Netns)
	var ps []agent.Peer
	var names []string
	for _, n := range inv.Nodes[1:] {
		ps = append(ps, agent.Peer{Name: n.Name, Address: n.Agent})
		names = append(names, n.Name)
	}
	if err := c.SetPeers(ctx, ps); err != nil {
		fatal(err)
	}
	idleCPU := cpuTicks(pid)
	idleStart := time.Now()
	time.Sleep(2 * time.Second)
	idle := cpuPct(cpuTicks(pid)-idleCPU, time.Since(idleStart))
	// For 10 s, one request a second towards every peer: light (one echo
	// each, what a monitoring agent sends) and heavy (5 echoes and a full
	// path-MTU search each, every second).
	load := func(req agent.ProbeRequest) float64 {
		cpu0, t0 := cpuTicks(pid), time.Now()
		for range 10 {
			tick := time.Now()
			if _, err := c.Probe(ctx, req); err != nil {
				fatal(err)
			}
			time.Sleep(time.Until(tick.Add(time.Second)))
		}
		return cpuPct(cpuTicks(pid)-cpu0, time.Since(t0))
	}
	light := load(agent.ProbeRequest{Targets: names, RTT: &agent.Series{Count: 1, IntervalMs: 1}})
	heavy := load(agent.ProbeRequest{Targets: names, RTT: &agent.Series{Count: 5, IntervalMs: 100}, PathMTU: true})
	fmt.Printf("  CPU, %% of one core: idle %.2f; %d peers × 1 echo a second %.2f; %d peers × (5 echoes + path-MTU search) a second %.2f\n", idle, peers, light, peers, heavy)
	fmt.Printf("  RSS now %s (anonymous %s, file-backed %s: the binary's pages), peak %s\n\n", status(pid, "VmRSS"), status(pid, "RssAnon"), status(pid, "RssFile"), status(pid, "VmHWM"))
	_ = lab.Down(ctx, "bench")
}

func agentPid(node string) int {
	b, err := os.ReadFile(filepath.Join(lab.Dir("bench"), "agents", node+".pid"))
	if err != nil {
		fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// cpuTicks is utime+stime of pid, in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func cpuPct(ticks int64, d time.Duration) float64 {
	return 100 * float64(ticks) / 100 / d.Seconds()
}

func status(pid int, key string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}
