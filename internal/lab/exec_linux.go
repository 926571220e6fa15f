package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// Namespace resolves a node or Pod name of the lab ("node1", "node1-pod1",
// or "fabric") to its namespace.
func (l *Lab) Namespace(who string) (string, error) {
	if who == "fabric" {
		return l.Spec.Fabric, nil
	}
	for _, n := range l.Spec.Nodes {
		if n.Name == who {
			return n.Netns, nil
		}
		for _, p := range n.Pods {
			if p.Name == who {
				return p.Netns, nil
			}
		}
	}
	return "", invalidf("lab %s has no node or Pod %q (see `podpath lab status --name %s`)", l.Spec.Name, who, l.Spec.Name)
}

// Command prepares argv to run inside the namespace of who, as
// `ip netns exec` does (which also gives it the namespace's /sys).
func (l *Lab) Command(ctx context.Context, who string, argv ...string) (*exec.Cmd, error) {
	ns, err := l.Namespace(who)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...), nil
}

// PingResult is what iputils ping reported.
type PingResult struct {
	Sent, Received int
	AvgRTT         time.Duration // zero when nothing came back
	Output         string
}

var (
	pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)
	pingRTT     = regexp.MustCompile(`= [\d.]+/([\d.]+)/[\d.]+/[\d.]+ ms`)
)

// PingTimeout bounds the wait for each echo reply of Ping.
const PingTimeout = time.Second

// Ping runs iputils ping from who to addr with IP packets of size bytes
// (headers included); with df the Don't Fragment bit is set and the kernel
// may not fragment (-M do).
func (l *Lab) Ping(ctx context.Context, who string, addr netip.Addr, size int, df bool, count int) (PingResult, error) {
	args := []string{"ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2",
		"-W", strconv.Itoa(int(PingTimeout / time.Second)), "-s", strconv.Itoa(size - 28)}
	if df {
		args = append(args, "-M", "do")
	}
	cmd, err := l.Command(ctx, who, append(args, addr.String())...)
	if err != nil {
		return PingResult{}, err
	}
	out, _ := cmd.CombinedOutput() // exit 1 means no reply: the summary says so
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		return PingResult{}, fmt.Errorf("ping from %s to %s: %s", who, addr, out)
	}
	sent, _ := strconv.Atoi(string(m[1]))
	recv, _ := strconv.Atoi(string(m[2]))
	res := PingResult{Sent: sent, Received: recv, Output: string(out)}
	if m := pingRTT.FindSubmatch(out); m != nil {
		if ms, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			res.AvgRTT = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return res, nil
}
