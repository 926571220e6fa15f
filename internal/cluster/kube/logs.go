package kube

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Bounds of reading calico-node's logs: a few recent lines per node, read
// in parallel, never holding up a run for long.
const (
	LogCallTimeout  = 5 * time.Second
	LogsTimeout     = 10 * time.Second
	LogTailLines    = 500
	LogLimitBytes   = 256 << 10
	LogLinesPerNode = 5
	logParallel     = 16
)

// knownErrors are calico-node log lines that name a cause of cross-node
// trouble (Felix, BIRD, the CNI plugin, the datastore).
var knownErrors = regexp.MustCompile(`(?i)failed to auto-detect host MTU|BGP not established|` +
	`unable to auto-detect an IPv4 address|is already using the IPv4 address|` +
	`failed to (?:create|configure|set up) .*(?:vxlan|tunnel|ipip)|datastore.*(?:error|fail)|` +
	`\[ERROR\]|level=error|bird: .*(?:error|failed)`)

// calicoLogs reads the recent log lines of every calico-node Pod that match
// known errors. The API server fetches logs from the kubelet; where it
// cannot, the run goes on without them and says why.
func calicoLogs(ctx context.Context, cs kubernetes.Interface, cal *Calico) {
	ctx, cancel := context.WithTimeout(ctx, LogsTimeout)
	defer cancel()
	var mu sync.Mutex
	sem := make(chan struct{}, logParallel)
	var wg sync.WaitGroup
	tail, limit, since := int64(LogTailLines), int64(LogLimitBytes), int64(30*60)
	for node, ref := range cal.NodePods {
		ns, name, _ := strings.Cut(ref, "/")
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, ccancel := context.WithTimeout(ctx, LogCallTimeout)
			defer ccancel()
			raw, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: "calico-node",
				TailLines: &tail, LimitBytes: &limit, SinceSeconds: &since}).Do(cctx).Raw()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if cal.LogsUnavailable == "" {
					cal.LogsUnavailable = "calico-node logs unavailable through the API server: " + firstLine(err.Error())
				}
				return
			}
			if lines := matchErrors(raw); len(lines) > 0 {
				if cal.LogErrors == nil {
					cal.LogErrors = map[string][]string{}
				}
				cal.LogErrors[node] = lines
			}
		})
	}
	wg.Wait()
}

// matchErrors keeps the last LogLinesPerNode lines that match knownErrors.
func matchErrors(raw []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); knownErrors.MatchString(line) {
			if len(line) > 300 {
				line = line[:300] + "…"
			}
			out = append(out, line)
		}
	}
	if len(out) > LogLinesPerNode {
		out = out[len(out)-LogLinesPerNode:]
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
