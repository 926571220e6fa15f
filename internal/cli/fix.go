//go:build !agentonly

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/cluster"
	"podpath/internal/remedy"
	"podpath/internal/report"
	"podpath/internal/status"
)

type fixFlags struct {
	kube           kubeFlags
	timeout        time.Duration
	mtu            int
	apply, force   bool
	restart        string
	inventoryDir   string
	rolloutTimeout time.Duration
}

func newFix(s Streams) *cobra.Command {
	fix := &cobra.Command{
		Use:   "fix",
		Short: "Change a setting where this install keeps it, restart safely, prove it worked",
		Args:  cobra.NoArgs,
	}
	var f fixFlags
	c := &cobra.Command{
		Use:   "mtu [--mtu N] [--apply] [--kubespray-inventory DIR]",
		Short: "Set Calico's Pod MTU in the right place for this install, restart calico-node, re-check",
		Long: `fix mtu measures the cluster (as the doctor does), takes the MTU from its finding (or --mtu),
and shows the change for this install: the operator's Installation spec.calicoNetwork.mtu, the
manifest's calico-config veth_mtu, FelixConfiguration fields that are set, calico-node's MTU
environment, and with --kubespray-inventory the Kubespray inventory's calico_mtu (comments kept), so
that the next Kubespray run does not revert it.

Without --apply nothing changes: each object's diff comes from a server-side dry run. With
--apply it patches (field manager podpath), restarts calico-node as kubectl rollout restart does
(on an operator install the operator rolls calico-node itself; podpath waits for that rollout),
waits for the rollout, lists the Pods that keep the old MTU until restarted, and re-runs the
probes to show before and after. A failed patch or rollout puts the previous values back.

With --kubespray-inventory and --mtu and no kubeconfig, only the inventory is changed.`,
		Example: "  podpath fix mtu                                   # dry run: what would change, and why\n" +
			"  podpath fix mtu --apply                           # change it, restart calico-node, re-check\n" +
			"  podpath fix mtu --mtu 1350 --kubespray-inventory inventory/mycluster --apply",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runFixMTU(c.Context(), s, &f)
		},
	}
	f.kube.register(c)
	fl := c.Flags()
	fl.DurationVar(&f.timeout, "timeout", DefaultDoctorTimeout, "bound on each measurement, before the change and after (more than 0; deploying the agents and the rollout come on top)")
	fl.IntVar(&f.mtu, "mtu", 0, "Pod MTU to set (default: the doctor's remedy)")
	fl.BoolVar(&f.apply, "apply", false, "make the change (default: dry run)")
	fl.BoolVar(&f.force, "force", false, "apply even above what the measured path carries, or while a node or calico-node is not Ready")
	fl.StringVar(&f.restart, "restart", "rolling", "restart calico-node after the change: rolling or none (operator installs: wait for the operator's rollout, or not)")
	fl.StringVar(&f.inventoryDir, "kubespray-inventory", "", "Kubespray inventory directory (the one holding group_vars/) to change too")
	// The name before plan and preflight's --kubespray-inventory: still taken.
	fl.StringVar(&f.inventoryDir, "inventory-dir", "", "")
	_ = fl.MarkHidden("inventory-dir")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", remedy.DefaultRolloutTimeout, "how long calico-node's rollout may take (more than 0)")
	fix.AddCommand(c)
	return fix
}

func runFixMTU(ctx context.Context, s Streams, f *fixFlags) error {
	if f.restart != "rolling" && f.restart != "none" {
		return fmt.Errorf("--restart %q: use rolling or none", f.restart)
	}
	if err := positiveDuration("timeout", f.timeout); err != nil {
		return err
	}
	if err := positiveDuration("rollout-timeout", f.rolloutTimeout); err != nil {
		return err
	}
	line := status.New(s.Err)
	defer line.Done()
	o := remedy.FixOptions{MTU: f.mtu, Apply: f.apply, Force: f.force, Rolling: f.restart == "rolling",
		KubesprayInventory: f.inventoryDir, RolloutTimeout: f.rolloutTimeout, Timeout: f.timeout, Out: s.Out, Clear: line.Done}
	// With --kubespray-inventory and no cluster named, the file alone.
	if f.inventoryDir == "" || cluster.Configured(f.kube.config) {
		var err error
		if o.Config, o.Cluster, err = f.kube.options(line.Say); err != nil {
			return err
		}
	}
	after, err := remedy.FixMTU(ctx, o)
	if err != nil || after == nil {
		return err
	}
	line.Done()
	report.DoctorText(s.Out, after)
	return findingsExit(after.Findings)
}
