//go:build !agentonly

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"podpath/internal/diagnose"
	"podpath/internal/doctor"
	"podpath/internal/model"
	"podpath/internal/report"
)

// DefaultDoctorTimeout bounds a doctor run (doctor.DefaultTimeout).
const DefaultDoctorTimeout = doctor.DefaultTimeout

type doctorFlags struct {
	sourceFlags
	fullMesh bool
}

func newDoctor(s Streams) *cobra.Command {
	var f doctorFlags
	c := &cobra.Command{
		Use:   "doctor [--inventory FILE | kubectl flags]",
		Short: "Find why Pods on different nodes cannot talk: root cause, evidence and the exact fix",
		Long: `doctor probes every node pair and Pod pair through the agents (path MTU, echoes, ICMP, TCP,
a 300 KB transfer), reads every node's host facts (links, routes, sysctls, firewall, BIRD,
Felix), and names the root cause with its evidence and remedy. Root causes come before the
symptoms they explain. Exit code 0: no error found; 1: at least one error; 2: could not run.`,
		Example: "  podpath lab up --agents && podpath lab fault add underlay-mtu=node3:1400\n  podpath doctor --inventory /run/podpath/lab/podpath/inventory.yaml\n  podpath doctor --inventory inv.yaml -o html --output-file report.html",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDoctor(c.Context(), s, &f)
		},
	}
	f.register(c)
	c.Flags().BoolVar(&f.fullMesh, "full-mesh", false, "measure every pair in depth (size search, echo series, transfer), not only a covering subset and what the cheap check on every pair finds odd (docs/findings.md)")
	c.Flags().Lookup("output").Usage = "output format: text, json, junit or html"
	c.Flags().Lookup("timeout").DefValue = DefaultDoctorTimeout.String()
	f.timeout = DefaultDoctorTimeout
	return c
}

// progress prints what the doctor is doing: one line updated in place on a
// terminal, plain lines otherwise (CI logs).
type progress struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *progress) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
		return
	}
	fmt.Fprintln(p.w, msg)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func runDoctor(ctx context.Context, s Streams, f *doctorFlags) error {
	// Before anything is deployed: a bad path must not cost a run.
	out, err := openOutput(s, f.outputFile)
	if err != nil {
		return err
	}
	defer out.discard()
	prog := newProgress(s.Err)
	src, layers, err := f.open(ctx, prog, "text", "json", "junit", "html")
	if err != nil {
		return err
	}
	defer src.close()
	rep, err := diagnoseRun(ctx, src, layers, f.fullMesh, f.timeout, prog)
	if ctx.Err() != nil {
		// Ctrl-C or SIGTERM: what was measured until then is the
		// interruption's, not the network's. No report, no findings.
		return errInterrupted
	}
	if err != nil {
		return err
	}
	switch f.output {
	case "json":
		err = report.JSON(out, rep)
	case "junit":
		err = report.JUnit(out, rep, diagnose.Catalogue)
	case "html":
		err = report.HTML(out, rep)
	default:
		report.DoctorText(out, rep)
	}
	if err := out.finish(err); err != nil {
		return err
	}
	if f.outputFile != "" && f.output != "text" {
		fmt.Fprintf(s.Err, "podpath doctor: report written to %s\n", f.outputFile)
	}
	return findingsExit(rep.Findings)
}

// errInterrupted ends a run stopped by SIGINT or SIGTERM: exit 2, as a
// run that did not happen, never 1 ("found a problem"), which CI would read
// as an outage.
var errInterrupted = errors.New("interrupted: no report written (what a run created is removed)")

// openOutput is --output-file, or standard output. A file is created
// before anything is deployed, so a bad path costs no run.
func openOutput(s Streams, path string) (*output, error) {
	if path == "" {
		return &output{w: s.Out}, nil
	}
	_, statErr := os.Stat(path)
	file, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("open output file: %w", err)
	}
	return &output{w: file, file: file, path: path, created: errors.Is(statErr, fs.ErrNotExist)}, nil
}

// output is where a report goes. It remembers its first write error (a
// full disk, /dev/full), so the run says so instead of exiting quietly,
// and removes an --output-file it created if the run ends without a
// report (an error, Ctrl-C): nothing half-written is left.
type output struct {
	w       io.Writer
	file    *os.File // nil: standard output
	path    string
	created bool
	err     error
	done    bool
}

func (o *output) Write(b []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(b)
	if err != nil {
		o.err = fmt.Errorf("write report: %w", err)
	}
	return n, o.err
}

// finish ends a report: the first thing that went wrong writing it, or
// rendering it (renderErr), flushed to the disk for a file. A file this
// run created and could not write whole is removed.
func (o *output) finish(renderErr error) error {
	if o.err == nil && renderErr != nil {
		o.err = fmt.Errorf("write report: %w", renderErr)
	}
	if o.file != nil && !o.done {
		// A character device (/dev/stdout, /dev/null) cannot sync: EINVAL.
		if err := o.file.Sync(); err != nil && o.err == nil && !errors.Is(err, unix.EINVAL) {
			o.err = fmt.Errorf("write report to %s: %w", o.path, err)
		}
		if err := o.file.Close(); err != nil && o.err == nil {
			o.err = fmt.Errorf("write report to %s: %w", o.path, err)
		}
		if o.err != nil && o.created {
			os.Remove(o.path)
		}
	}
	o.done = true
	return o.err
}

// discard ends a run that wrote no report (deferred: a no-op after
// finish): the file is closed, and removed if this run created it.
func (o *output) discard() {
	if o.done || o.file == nil {
		return
	}
	o.done = true
	o.file.Close()
	if o.created {
		os.Remove(o.path)
	}
}

// findingsExit is exit code 1 when any finding is an error.
func findingsExit(findings []model.Finding) error {
	for _, fd := range findings {
		if fd.Severity == model.SeverityError {
			return exitError{code: ExitFindings}
		}
	}
	return nil
}

// diagnoseRun is doctor.Run on src's agents, its progress on prog.
func diagnoseRun(ctx context.Context, src *source, layers []model.Layer, fullMesh bool, timeout time.Duration, prog *progress) (*model.Report, error) {
	defer prog.done()
	return doctor.Run(ctx, doctor.Options{Inventory: src.inv, Token: src.token, Connect: src.connect, Cluster: src.cluster,
		Config: src.config(), Layers: layers, FullMesh: fullMesh, Timeout: timeout, Say: prog.say})
}
