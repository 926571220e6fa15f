//go:build !agentonly

package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"podpath/internal/doctor"
	"podpath/internal/model"
	"podpath/internal/report"
	"podpath/internal/status"
)

// DefaultDoctorTimeout bounds a doctor run (doctor.DefaultTimeout).
const DefaultDoctorTimeout = doctor.DefaultTimeout

type doctorFlags struct {
	sourceFlags
	fullMesh bool
	// timeoutGiven: --timeout was set; else the doctor's own default.
	timeoutGiven bool
}

func newDoctor(s Streams) *cobra.Command {
	var f doctorFlags
	c := &cobra.Command{
		Use:   "doctor [--inventory FILE | kubectl flags]",
		Short: "Find why Pods on different nodes cannot talk: root cause, evidence and the exact fix",
		Long: `doctor probes every node pair and Pod pair through the agents (path MTU, echoes, ICMP, TCP,
a 300 KB transfer), reads every node's host facts (links, routes, sysctls, firewall, BIRD,
Felix, kube-proxy), and names the root cause with its evidence and remedy. Root causes come
before the symptoms they explain. On a cluster it also sends each node's Pod traffic through
Services (ClusterIP, one backend Pod on another node each) to check every node's kube-proxy,
and asks the cluster DNS (its Service and every CoreDNS Pod) a small and a large question over
UDP and TCP from every node's Pods.
Exit code 0: no error found; 1: at least one error; 2: could not run.`,
		Example: "  podpath lab up --agents && podpath lab fault add underlay-mtu=node3:1400\n  podpath doctor --inventory /run/podpath/lab/podpath/inventory.yaml\n  podpath doctor --inventory inv.yaml -o html --output-file report.html\n  kubectl podpath doctor --context prod -o junit --output-file podpath.xml",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f.timeoutGiven = c.Flags().Changed("timeout")
			return runDoctor(c.Context(), s, &f)
		},
	}
	f.register(c, "text", "json", "junit", "html")
	c.Flags().BoolVar(&f.fullMesh, "full-mesh", false, "measure every pair in depth (size search, echo series, transfer), not only a covering subset and what the cheap check on every pair finds odd (docs/findings.md)")
	tf := c.Flags().Lookup("timeout")
	tf.DefValue = DefaultDoctorTimeout.String()
	tf.Usage += "; the default is per address family: a dual-stack cluster's IPv6 pass gets as long again"
	f.timeout = DefaultDoctorTimeout
	return c
}

func runDoctor(ctx context.Context, s Streams, f *doctorFlags) error {
	out, err := f.out.open(s)
	if err != nil {
		return err
	}
	defer out.Discard()
	line := status.New(s.Err)
	defer line.Done()
	sess, layers, err := f.open(ctx, line.Say)
	if err != nil {
		return err
	}
	defer sess.Close()
	timeout := f.timeout
	if !f.timeoutGiven {
		timeout = 0 // the doctor's default: a minute per address family it measures
	}
	rep, err := doctor.Run(ctx, sess, doctor.Options{Layers: layers, FullMesh: f.fullMesh, Timeout: timeout, Say: line.Say})
	if ctx.Err() != nil {
		// Ctrl-C or SIGTERM: what was measured until then is the
		// interruption's, not the network's. No report, no findings.
		return errInterrupted
	}
	if err != nil {
		return err
	}
	line.Done()
	if err := f.out.write(out, rep, report.DoctorText); err != nil {
		return err
	}
	if f.out.file != "" && f.out.format != "text" {
		fmt.Fprintf(s.Err, "podpath doctor: report written to %s\n", f.out.file)
	}
	return findingsExit(rep.Findings)
}

// errInterrupted ends a run stopped by SIGINT or SIGTERM: exit 2, as a
// run that did not happen, never 1 ("found a problem"), which CI would read
// as an outage.
var errInterrupted = errors.New("interrupted: no report written (what a run created is removed)")

// findingsExit is exit code 1 when any finding is an error.
func findingsExit(findings []model.Finding) error {
	for _, fd := range findings {
		if fd.Severity == model.SeverityError {
			return exitError{code: ExitFindings}
		}
	}
	return nil
}
