//go:build !agentonly

package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podpath/internal/cli"
	"podpath/internal/lab"
)

// Ctrl-C while the doctor probes is no network failure: exit 2,
// "interrupted", no report and no finding, the --output-file not left
// behind half-written (issue 15: every node was reported node-unreachable
// with exit 1). cli.Run in process: SIGINT cancels Run's context (main.go's
// signal.NotifyContext), which is what is cancelled here.
func TestDoctorInterrupted(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	fault(t, l, "underlay-mtu=node2:1400") // stalled transfers: the run lasts seconds
	for _, args := range [][]string{
		{"doctor", "--inventory", l.Inventory, "-o", "json"},
		{"perf", "--inventory", l.Inventory, "--count", "100", "--interval", "50ms"}, // 5 s of echoes
	} {
		outFile := filepath.Join(t.TempDir(), "report.json")
		if args[0] == "doctor" {
			args = append(args, "--output-file", outFile)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(1500*time.Millisecond, cancel)
		var out, errb bytes.Buffer
		start := time.Now()
		code := cli.Run(ctx, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
		cancel()
		took := time.Since(start)
		if code != cli.ExitNoRun || !strings.Contains(errb.String(), "podpath: interrupted") {
			t.Errorf("podpath %s, interrupted: exit %d, stderr %q; want exit 2 and \"interrupted\"", args[0], code, errb.String())
		}
		if out.Len() > 0 || strings.Contains(errb.String(), "unreachable") {
			t.Errorf("podpath %s, interrupted: a report or a finding came out:\n%s%s", args[0], out.String(), errb.String())
		}
		if _, err := os.Stat(outFile); err == nil {
			t.Errorf("podpath %s, interrupted: %s left behind", args[0], outFile)
		}
		if took > 8*time.Second {
			t.Errorf("podpath %s: ended %s after the interrupt at 1.5 s; want within seconds", args[0], took)
		}
	}
}

// A report that cannot be written (a full disk) is said, not exit 1 in
// silence.
func TestDoctorOutputFileFull(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(2).Backend(lab.BackendVXLAN))
	code, _, stderr := run(t, "doctor", "--inventory", l.Inventory, "-o", "json", "--output-file", "/dev/full")
	if code != cli.ExitNoRun || !strings.Contains(stderr, "no space left") {
		t.Errorf("doctor --output-file /dev/full: exit %d, %q; want exit 2 and the write error", code, stderr)
	}
}

// cancelOn is a stderr that cancels the run when a progress line says what.
type cancelOn struct {
	bytes.Buffer
	what   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.String(), c.what) {
		c.cancel()
	}
	return n, err
}

// Ctrl-C during preflight, once its temporary listeners are open: exit 2,
// and the listeners are gone when the command returns, not at their own
// timeout (issue 15: they stayed ~35 s).
func TestPreflightInterruptedClosesItsListeners(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).PodsPerNode(0).Backend(lab.BackendNone))
	fault(t, l, "underlay-mtu=node3:1400") // the size search to node3 takes a while
	listening := func() string {
		t.Helper()
		var held []string
		for _, n := range l.Spec.Nodes {
			cmd, err := l.Command(context.Background(), n.Name, "ss", "-Hltn", "sport = :10250 or sport = :6443")
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("ss on %s: %v", n.Name, err)
			}
			if s := strings.TrimSpace(string(out)); s != "" {
				held = append(held, n.Name+": "+s)
			}
		}
		return strings.Join(held, "\n")
	}
	if held := listening(); held != "" {
		t.Fatalf("before preflight, something listens already:\n%s", held)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{what: "probing", cancel: cancel}
	var out bytes.Buffer
	code := cli.Run(ctx, cli.Streams{In: strings.NewReader(""), Out: &out, Err: stderr},
		[]string{"preflight", "--inventory", l.Inventory, "--timeout", "60s"})
	if !strings.Contains(stderr.String(), "probing") {
		t.Fatalf("preflight never reached its probes:\n%s", stderr.String())
	}
	if code != cli.ExitNoRun || !strings.Contains(stderr.String(), "interrupted") || out.Len() > 0 {
		t.Errorf("preflight interrupted: exit %d, stdout %q, stderr %q; want exit 2, interrupted, no report", code, out.String(), stderr.String())
	}
	if held := listening(); held != "" {
		t.Errorf("listeners still open after the interrupted preflight returned:\n%s", held)
	}
}
