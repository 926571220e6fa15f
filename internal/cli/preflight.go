//go:build !agentonly

package cli

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/model"
	"podpath/internal/preflight"
	"podpath/internal/report"
	"podpath/internal/status"
)

// DefaultPreflightTimeout bounds a preflight run.
const DefaultPreflightTimeout = 30 * time.Second

type preflightFlags struct {
	inventory, kubesprayDir, tokenFile, backend string
	out                                         outputFlags
	timeout                                     time.Duration
}

func newPreflight(s Streams) *cobra.Command {
	var f preflightFlags
	c := &cobra.Command{
		Use:   "preflight (--inventory FILE | --kubespray-inventory DIR --token-file F)",
		Short: "Check the future nodes' network before installing: path MTU, the ports the cluster needs, modules, clocks",
		Long: `preflight talks to a podpath agent started on each future node and checks, for every node pair:
the underlay's path MTU (and the calico_mtu it allows), that TCP 179 (BGP), 5473 (Typha), 6443
(API server), 10250 (kubelet), 2379-2380 (etcd) and UDP 4789 (VXLAN) pass between the nodes (the
agents open temporary listeners where nothing listens yet, and say when something already holds
a port), the kernel modules the encapsulation needs, rp_filter, and clock skew between the
nodes. It gives a verdict per node and the calico_mtu to set.

Make one token, then start the agent on every node with it (one static binary, as root,
removed with the files):
  head -c32 /dev/urandom | base64 > pp.token
  scp podpath pp.token NODE:/tmp/ && ssh NODE \
    '/tmp/podpath agent --listen $(hostname -I | cut -d" " -f1):7946 --name $(hostname) --token-file /tmp/pp.token'
Then from any machine that reaches them (exit 1 when a node fails):
  podpath preflight --kubespray-inventory inventory/mycluster --token-file pp.token`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runPreflight(c.Context(), s, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.inventory, "inventory", "", "podpath inventory of the nodes and their agents")
	fl.StringVar(&f.kubesprayDir, "kubespray-inventory", "", "Kubespray inventory directory: agents at each host's address, port 7946")
	fl.StringVar(&f.tokenFile, "token-file", "", "agent token (default: the inventory's tokenFile)")
	f.out.register(c, "text", "json", "html")
	fl.StringVar(&f.backend, "backend", "", "calico_network_backend to check for: vxlan, bird or none (default: the Kubespray inventory's, else vxlan)")
	fl.DurationVar(&f.timeout, "timeout", DefaultPreflightTimeout, "bound on the whole run (more than 0)")
	return c
}

func runPreflight(ctx context.Context, s Streams, f *preflightFlags) error {
	if err := positiveDuration("timeout", f.timeout); err != nil {
		return err
	}
	out, err := f.out.open(s)
	if err != nil {
		return err
	}
	defer out.Discard()
	o, err := preflight.Load(f.inventory, f.kubesprayDir, f.tokenFile, f.backend)
	if err != nil {
		return err
	}
	line := status.New(s.Err)
	defer line.Done()
	o.Timeout, o.Say = f.timeout, line.Say
	res, err := preflight.Run(ctx, o)
	if ctx.Err() != nil { // the run's own timeout is not an interruption
		return errInterrupted
	}
	if err != nil {
		return err
	}
	line.Done()
	text := func(w io.Writer, rep *model.Report) { report.PreflightText(w, res.Nodes, res.PreflightResult, rep) }
	if err := f.out.write(out, res.Report, text); err != nil {
		return err
	}
	return findingsExit(res.Findings)
}
