//go:build !agentonly

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/kubetest"
)

// BenchmarkMonitorAgent5000 runs the image's podpath binary (the agent
// build, stripped) in monitor mode
// against a real kube-apiserver holding 5,000 Ready nodes and 5,000 agent
// Pods, for benchSecs, and reports its memory and CPU (docs/benchmarks.md):
//
//	go test -run NONE -bench MonitorAgent5000 -benchtime 1x ./internal/cli
//
// Every peer's address is 127.0.0.1 on the agent's own port, so its visits
// are real UDP probes answered by its own responder on loopback and never
// leave the machine.
func BenchmarkMonitorAgent5000(b *testing.B) {
	const nodes, port, benchSecs = 5000, 17946, 60
	env := kubetest.Start(b, false)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	const ns = "podpath"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 32 {
		wg.Go(func() {
			for i := range work {
				if err := createAgentNode(ctx, cs, ns, i); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range nodes {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.Logf("%d nodes and agent Pods created in %s", nodes, time.Since(start).Round(time.Millisecond))

	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(agentBinary(b), "agent", "--mode", "monitor", "--role", "pod", "--listen", "127.0.0.1:"+strconv.Itoa(port),
			"--name", "node00000", "--namespace", ns, "--selector", "app=agent", "--period", "5m", "--rate", "20",
			"--warmup", "0s", "--kubeconfig", env.Kubeconfig)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		time.Sleep(benchSecs * time.Second)
		st := procStatus(cmd.Process.Pid)
		cpu := cpuSeconds(cmd.Process.Pid)
		metrics, err := scrapeText(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		series := 0
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "podpath_monitor_") {
				series++
			}
		}
		if !strings.Contains(metrics, fmt.Sprintf("podpath_monitor_peers{layer=\"pod\",node=\"node00000\"} %d", nodes-1)) {
			b.Fatalf("the agent does not see its %d peers:\n%s", nodes-1, metrics)
		}
		b.ReportMetric(float64(st["VmHWM"])/1024, "peak-RSS-MiB")
		b.ReportMetric(float64(st["RssAnon"])/1024, "anon-RSS-MiB")
		b.ReportMetric(100*cpu/time.Since(t0).Seconds(), "CPU-%")
		b.Logf("podpath agent --mode monitor, %d peers watched through the API server, %d s: RSS %d KiB (anonymous %d, file %d), peak %d KiB; CPU %.2f%% of a core; %d monitor series; %s",
			nodes-1, benchSecs, st["VmRSS"], st["RssAnon"], st["RssFile"], st["VmHWM"], 100*cpu/time.Since(t0).Seconds(), series, grepLine(metrics, "podpath_monitor_probes_total"))
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// createAgentNode makes node i Ready and its agent Pod Ready on 127.0.0.1.
func createAgentNode(ctx context.Context, cs kubernetes.Interface, ns string, i int) error {
	name := fmt.Sprintf("node%05d", i)
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	for j := range 20 { // a kubelet reports the images it holds
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{fmt.Sprintf("example.invalid/image-%d:v1", j)}, SizeBytes: 1 << 26})
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return err
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + name, Labels: map[string]string{"app": "agent"}},
		Spec: corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "agent", Image: "podpath/podpath:bench",
			Args: []string{"agent", "--mode", "monitor", "--role", "pod"}}}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	p.Status.PodIP = "127.0.0.1"
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}}
	_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// procStatus reads the kB fields of /proc/pid/status.
func procStatus(pid int) map[string]int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			out[k], _ = strconv.Atoi(f[0])
		}
	}
	return out
}

// cpuSeconds is the user+system time of pid.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	sy, _ := strconv.ParseFloat(f[12], 64)
	return (u + sy) / 100
}

func grepLine(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

func scrapeText(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
