package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"podpath/internal/model"
	"podpath/internal/monitor"
)

// monitorScale is issue 8's scale check: one agent's schedule and metrics
// with 5,000 nodes in virtual time (coverage, rate, series), then a real
// monitor loop in its own process for childSecs, probing 4,999 simulated
// peers at the real rate, for the agent's CPU and memory.
func monitorScale(nodes int, childSecs int) {
	fmt.Printf("== Monitor at %d nodes (simulated peers, no network)\n", nodes)
	series := 0
	for _, layer := range []model.Layer{model.LayerPod, model.LayerNode} {
		res, err := monitor.Simulate(monitor.SimOptions{Nodes: nodes, Period: 5 * time.Minute, Rate: 20, Periods: 2, Bad: 0.01, Lossy: 0.01, Layer: layer})
		if err != nil {
			fatal(err)
		}
		series += res.Series
		fmt.Printf("  %s agent: %d of %d peers covered, the last first visited at %s, longest gap between visits %s; at most %d visits in any second (limit 20); %d series; %s of schedule+state+metric work per visit\n",
			layer, res.Covered, nodes-1, res.FirstCoverage.Round(time.Millisecond), res.MaxGap.Round(time.Millisecond), res.MaxPerSecond, res.Series, res.CPUPerVisit)
	}
	fmt.Printf("  series per node (both agents, every finding and top-K gauge present): %d (target < 50)\n", series)
	for _, n := range []int{nodes, 101} {
		r := runChild(n, childSecs)
		fmt.Printf("  agent process, %d s of monitor.Run (period 5m, ≤ 20 visits/s) with %d peers and a slim informer cache of %d Pods + %d Nodes: %d visits (%.2f/s), CPU %.2f%% of one core, RSS %d KiB, peak %d KiB\n",
			childSecs, n-1, n, n, r.Visits, float64(r.Visits)/float64(childSecs), r.CPUPct, r.RSSKiB, r.PeakKiB)
	}
	fmt.Println()
}

// runChild runs monitorChild in a process of its own, so its memory is an
// agent's alone.
func runChild(nodes, secs int) childReport {
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	out, err := exec.Command(self, "-monitor-child", strconv.Itoa(nodes), "-monitor-seconds", strconv.Itoa(secs)).Output()
	if err != nil {
		fatal(fmt.Errorf("monitor child: %w", err))
	}
	var r childReport
	if err := json.Unmarshal(out, &r); err != nil {
		fatal(fmt.Errorf("monitor child said %q: %w", out, err))
	}
	return r
}

type childReport struct {
	Visits  int     `json:"visits"`
	CPUPct  float64 `json:"cpuPct"`
	RSSKiB  int     `json:"rssKiB"`
	PeakKiB int     `json:"peakKiB"`
}

// simProber answers like a healthy LAN peer after a LAN round trip.
type simProber struct{ visits *atomic.Int64 }

func (p simProber) Probe(ctx context.Context, _ monitor.Peer, _ *monitor.MTUResult, _ bool) monitor.Result {
	rtt := time.Duration(200+rand.IntN(800)) * time.Microsecond
	select {
	case <-time.After(rtt):
	case <-ctx.Done():
	}
	p.visits.Add(1)
	return monitor.Result{At: time.Now(), Sent: true, Answered: true, RTT: rtt, MTU: &monitor.MTUResult{IfaceMTU: 1450, PathMTU: 1450, Limit: "none"}}
}

// monitorChild runs in its own process: what an agent holds at this scale
// (the informers' slimmed objects, the state, the metrics) and does (the
// loop at the rate), then reports its CPU and memory.
func monitorChild(nodes, secs int) {
	// The informer cache: full objects as the API server sends them,
	// slimmed by the monitor's transform, as the watch keeps them.
	var cache []any
	for i := range nodes {
		name := fmt.Sprintf("node%05d", i)
		pod, node := fullPod(name, i), fullNode(name)
		sp, _ := monitor.Slim(pod)
		sn, _ := monitor.Slim(node)
		cache = append(cache, sp, sn)
	}
	peers := make(chan []monitor.Peer, 1)
	var set []monitor.Peer
	for i := 1; i < nodes; i++ {
		set = append(set, monitor.Peer{Name: fmt.Sprintf("node%05d", i), Address: fmt.Sprintf("10.%d.%d.%d:7946", i>>16&255, i>>8&255, i&255)})
	}
	peers <- set
	var visits atomic.Int64
	m, err := monitor.New(monitor.Config{Node: "node00000", Layer: model.LayerPod, Period: 5 * time.Minute, Rate: 20,
		Prober: simProber{&visits}, Peers: peers, Registerer: prometheus.NewRegistry()})
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	_ = m.Run(ctx)
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	rss, _ := strconv.Atoi(firstField(status(os.Getpid(), "VmRSS")))
	peak, _ := strconv.Atoi(firstField(status(os.Getpid(), "VmHWM")))
	_ = json.NewEncoder(os.Stdout).Encode(childReport{Visits: int(visits.Load()), CPUPct: 100 * cpu.Seconds() / time.Since(start).Seconds(), RSSKiB: rss, PeakKiB: peak})
	runtime.KeepAlive(cache)
}

func firstField(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

// fullPod is an agent Pod as the API server returns it.
func fullPod(node string, i int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "podpath-pod-agent-" + node, Namespace: "podpath",
		Labels:      map[string]string{"app.kubernetes.io/name": "podpath", "app.kubernetes.io/instance": "podpath", "app.kubernetes.io/component": "pod-agent", "controller-revision-hash": "5d8f7c9b6"},
		Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().Format(time.RFC3339)},
		UID:         "1b4e28ba-2fa1-11d2-883f-0016d3cca427", ResourceVersion: strconv.Itoa(100000 + i)}}
	p.Spec.NodeName = node
	p.Spec.Containers = []corev1.Container{{Name: "agent", Image: "podpath/podpath:v0.1.0",
		Args:      []string{"agent", "--mode", "monitor", "--role", "pod", "--listen", "0.0.0.0:7946", "--name", "$(NODE_NAME)"},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}}}}
	p.Status.PodIP = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	return p
}

// fullNode is a Node with the status a kubelet reports (images included).
func fullNode(name string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}
	for i := range 30 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{fmt.Sprintf("example.invalid/image-%d@sha256:%064d", i, i)}, SizeBytes: 1 << 26})
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}, {Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}}
	return n
}
