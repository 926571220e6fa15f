//go:build !agentonly

package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/doctor"
	"podpath/internal/model"
	"podpath/internal/report"
	"podpath/internal/status"
)

// DefaultRunTimeout bounds a whole mtu or perf run: what is not measured
// by then is reported as missing, not waited for.
const DefaultRunTimeout = 45 * time.Second

// sourceFlags select what to measure: an inventory file, or (without
// --inventory) the cluster of the kubeconfig, where podpath deploys its
// agents for the run.
type sourceFlags struct {
	inventory, tokenFile, layers string
	timeout                      time.Duration
	kube                         kubeFlags
	out                          outputFlags
}

// register adds the flags; formats are -o's values, the first the default.
func (f *sourceFlags) register(c *cobra.Command, formats ...string) {
	fl := c.Flags()
	fl.StringVar(&f.inventory, "inventory", "", "inventory file describing the nodes and their agents (default: the cluster of the kubeconfig)")
	fl.StringVar(&f.tokenFile, "token-file", "", "agent token (default: the inventory's tokenFile)")
	f.out.register(c, formats...)
	fl.StringVar(&f.layers, "layers", "node,pod", "layers to measure: node (underlay), pod (overlay)")
	fl.DurationVar(&f.timeout, "timeout", DefaultRunTimeout, "bound on probing and host facts, more than 0 (on a cluster, deploying the agents, --wait-timeout and cleanup come on top)")
	f.kube.register(c)
}

// open checks the flags and opens the session. The caller must close it.
func (f *sourceFlags) open(ctx context.Context, say func(string, ...any)) (*cluster.Session, []model.Layer, error) {
	if err := positiveDuration("timeout", f.timeout); err != nil {
		return nil, nil, err
	}
	layers, err := model.ParseLayers(f.layers)
	if err != nil {
		return nil, nil, err
	}
	if f.inventory != "" {
		s, err := cluster.Load(f.inventory, f.tokenFile)
		return s, layers, err
	}
	cfg, o, err := f.kube.options(say)
	if err != nil {
		return nil, nil, err
	}
	s, err := cluster.Open(ctx, cfg, o)
	return s, layers, err
}

// runMesh probes every planned pair and renders the report.
func runMesh(ctx context.Context, s Streams, f *sourceFlags, req agent.ProbeRequest, text func(io.Writer, *model.Report)) error {
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
	rep, err := doctor.Mesh(ctx, sess, doctor.MeshOptions{Layers: layers, Probe: req, Timeout: f.timeout, Say: line.Say})
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return err
	}
	line.Done()
	return f.out.write(out, rep, text)
}

func newMTU(s Streams) *cobra.Command {
	var f sourceFlags
	c := &cobra.Command{
		Use:   "mtu [--inventory FILE | kubectl flags]",
		Short: "Measure the path MTU of every node pair and Pod pair, exact to the byte, each direction",
		Long: `mtu asks every agent to find, towards every other agent on the same layer, the largest IP
packet that crosses: UDP probes with Don't Fragment, several sizes per round, retries to tell
loss from a limit. It needs no ICMP ("fragmentation needed" is used when it comes). The node
layer is the underlay; the Pod layer is the overlay, what Pods actually get.`,
		Example: "  podpath lab up --agents && podpath lab fault add underlay-mtu=node3:1400\n  podpath mtu --inventory /run/podpath/lab/podpath/inventory.yaml",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runMesh(c.Context(), s, &f, agent.ProbeRequest{PathMTU: true}, report.MTUText)
		},
	}
	f.register(c, "text", "json")
	return c
}

type perfFlags struct {
	sourceFlags
	perf doctor.Perf
}

func newPerf(s Streams) *cobra.Command {
	var f perfFlags
	c := &cobra.Command{
		Use:   "perf [--inventory FILE | kubectl flags]",
		Short: "Measure latency, loss, jitter and TCP throughput, node↔node and Pod↔Pod",
		Long: `perf measures every ordered pair on each layer: UDP round trips (percentiles, loss, jitter),
ICMP echo beside them, TCP connect time, an HTTP GET, a 300 KB upload that stalls where an MTU
black hole swallows full-sized segments while small requests pass, and with --throughput TCP throughput, one pair at a time per
agent. Compare the node and Pod layers to see what the overlay costs.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := positiveDuration("timeout", f.timeout); err != nil {
				return err
			}
			f.perf.StreamsGiven = c.Flags().Changed("streams")
			req, err := f.perf.Request(f.timeout)
			if err != nil {
				return err
			}
			return runMesh(c.Context(), s, &f.sourceFlags, req, report.PerfText)
		},
	}
	f.register(c, "text", "json")
	fl := c.Flags()
	fl.IntVar(&f.perf.Count, "count", 50, fmt.Sprintf("UDP and ICMP echoes per pair (1-%d)", agent.MaxSeriesCount))
	fl.Int64Var(&f.perf.Transfer, "transfer-bytes", 300_000, fmt.Sprintf("bulk TCP upload per pair that must not stall, the MTU black hole's signature (0: none; up to %d)", agent.MaxTransferBytes))
	fl.DurationVar(&f.perf.Interval, "interval", 10*time.Millisecond, "time between echoes (1ms-10s; --count × --interval must fit in --timeout)")
	fl.DurationVar(&f.perf.Throughput, "throughput", 0, fmt.Sprintf("TCP throughput test length per pair, one pair at a time (0: none; up to %ds; every pair's test must fit in --timeout), e.g. 3s", agent.MaxThroughputSecs))
	fl.IntVar(&f.perf.Streams, "streams", 1, fmt.Sprintf("parallel TCP streams in the throughput test (1-%d; only with --throughput)", agent.MaxStreams))
	return c
}

// newFacts prints this host's network facts, as the host agent serves them.
func newFacts(s Streams) *cobra.Command {
	var f agentFlags
	c := &cobra.Command{
		Use:   "facts",
		Short: "Print this host's network facts as JSON (links, routes, sysctls, modules, firewall, Calico)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			facts, err := hostfactsCollect(c.Context(), f)
			if err != nil {
				return err
			}
			return writeIndented(s.Out, facts)
		},
	}
	c.Flags().StringVar(&f.birdSocket, "bird-socket", "", "BIRD control socket (default: calico-node's)")
	c.Flags().StringVar(&f.felixHealth, "felix-health", "", "Felix readiness URL (default: calico-node's)")
	return c
}
