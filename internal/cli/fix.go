//go:build !agentonly

package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/model"
	"podpath/internal/remedy"
	"podpath/internal/report"

	"podpath/internal/calico"
)

type fixFlags struct {
	sourceFlags
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
	f.register(c)
	fl := c.Flags()
	fl.IntVar(&f.mtu, "mtu", 0, "Pod MTU to set (default: the doctor's remedy)")
	fl.BoolVar(&f.apply, "apply", false, "make the change (default: dry run)")
	fl.BoolVar(&f.force, "force", false, "apply even above what the measured path carries, or while a node or calico-node is not Ready")
	fl.StringVar(&f.restart, "restart", "rolling", "restart calico-node after the change: rolling or none (operator installs: wait for the operator's rollout, or not)")
	fl.StringVar(&f.inventoryDir, "kubespray-inventory", "", "Kubespray inventory directory (the one holding group_vars/) to change too")
	// The name before plan and preflight's --kubespray-inventory: still taken.
	fl.StringVar(&f.inventoryDir, "inventory-dir", "", "")
	_ = fl.MarkHidden("inventory-dir")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", remedy.DefaultRolloutTimeout, "how long calico-node's rollout may take (more than 0)")
	_ = fl.MarkHidden("layers")
	_ = fl.MarkHidden("output") // fix prints text: the diffs, then before and after
	_ = fl.MarkHidden("output-file")
	// A podpath inventory names agents; fix changes a cluster's objects.
	_ = fl.MarkHidden("inventory")
	_ = fl.MarkHidden("token-file")
	fl.Lookup("timeout").DefValue = DefaultDoctorTimeout.String()
	f.timeout = DefaultDoctorTimeout
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
	if f.inventory != "" {
		return fmt.Errorf("fix mtu changes a cluster's objects or a Kubespray inventory (--kubespray-inventory), not a podpath inventory file")
	}
	if f.mtu != 0 {
		if err := calico.CheckMTU(f.mtu, false); err != nil {
			return err
		}
	}
	if f.inventoryDir != "" && !f.kube.configured() {
		return fixInventoryOnly(s, f)
	}
	prog := newProgress(s.Err)
	// Even the dry run patches (server-side): a caller without the fix
	// role's rights learns it before the measurement, not after.
	f.kube.check = func(ctx context.Context, cs kubernetes.Interface, cl *kube.Cluster) error {
		perms, err := remedy.Permissions(cl, f.restart == "rolling")
		if err != nil {
			return err
		}
		return deploy.CheckPermissions(ctx, cs, perms, deploy.FixRole)
	}
	src, layers, err := f.open(ctx, prog, "text")
	f.kube.check = nil // the re-check's agents need the doctor's rights only
	if err != nil {
		return err
	}
	defer func() { src.close() }()
	before, err := diagnoseRun(ctx, src, layers, false, f.timeout, prog)
	if err != nil {
		return err
	}
	mtu, why := f.mtu, "--mtu"
	if mtu == 0 {
		fd := mtuFinding(before)
		if fd == nil {
			fmt.Fprintln(s.Out, "Nothing to fix: the doctor found no MTU problem (give --mtu to set one anyway).")
			return nil
		}
		mtu, why = fd.Remedy.MTU, fd.ID+": "+fd.Title
	}
	cl := src.cluster
	if err := calico.CheckMTU(mtu, remedy.IPv6(cl)); err != nil {
		return err
	}
	if limit, path := pathLimit(before, cl.Network().Backend); limit > 0 && mtu > limit && !f.force {
		return fmt.Errorf("MTU %d is above what the measured path carries: %d (%s); --force sets it anyway", mtu, limit, path)
	}
	pl, err := remedy.ClusterPlan(cl, mtu)
	if err != nil {
		return err
	}
	if f.inventoryDir != "" {
		fc, warns, err := remedy.KubesprayMTU(f.inventoryDir, mtu)
		if err != nil {
			return err
		}
		pl.File, pl.Warnings = fc, append(pl.Warnings, warns...)
	} else if pl.Inventory {
		pl.Warnings = append(pl.Warnings, fmt.Sprintf("this is a Kubespray install: set calico_mtu: %d in its inventory too (--kubespray-inventory does it), or the next Kubespray run reverts this", mtu))
	}
	w := s.Out
	fmt.Fprintf(w, "Pod MTU → %d (Calico %s install), because %s\n\n", mtu, pl.Install, why)
	diffs, err := pl.Preview(ctx, src.dyn)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintln(w, d)
	}
	if pl.File != nil && pl.File.Diff != "" {
		fmt.Fprintln(w, pl.File.Diff)
	}
	for _, warn := range pl.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(pl.Objects) == 0 && (pl.File == nil || pl.File.Diff == "") {
		if pl.Inventory && pl.File == nil {
			return fmt.Errorf("this Kubespray install sets its MTU only through calico_mtu: give --kubespray-inventory and run Kubespray's network role afterwards")
		}
		fmt.Fprintln(w, "Nothing to change: the MTU is already set to that value.")
		return nil
	}
	if !f.apply {
		fmt.Fprintln(w, "\nDry run: nothing was changed. Add --apply to make these changes and restart calico-node.")
		return nil
	}
	// A rollout cannot finish on a node that is down: it would stall, time
	// out and leave nodes on different MTUs.
	if down := notReady(cl); len(down) > 0 && !f.force {
		return fmt.Errorf("not applying while %s: calico-node's rollout would stall there (fix the node, or --force)", strings.Join(down, ", "))
	}
	// The operator owns calico-node: it rolls it when the Installation
	// changes, and would put back a template podpath restarted. podpath
	// waits for the operator's rollout instead, past this generation.
	rolling := f.restart == "rolling" && pl.DaemonSet != ""
	byOperator := rolling && pl.Install == "operator"
	var generation int64
	if byOperator {
		if generation, err = remedy.Generation(ctx, src.cs, pl.DaemonSet); err != nil {
			return err
		}
	}
	// The agents of the re-check must be new Pods: only new Pods get the new MTU.
	src.close()
	src.close = func() {}
	if err := pl.Apply(ctx, src.dyn); err != nil {
		return err
	}
	for _, c := range pl.Objects {
		fmt.Fprintf(w, "set %s: %s → %s\n", c.What, orUnset(c.Old), c.New)
	}
	if rolling {
		start := time.Now()
		if byOperator {
			prog.say("podpath: waiting for the operator to roll calico-node (%s)…", pl.DaemonSet)
			err = remedy.WaitRollout(ctx, src.cs, pl.DaemonSet, generation, f.rolloutTimeout)
		} else {
			prog.say("podpath: restarting calico-node (%s) and waiting for the rollout…", pl.DaemonSet)
			start, err = remedy.Restart(ctx, src.cs, pl.DaemonSet, f.rolloutTimeout)
		}
		if err != nil {
			if rerr := pl.Revert(ctx, src.dyn); rerr != nil {
				return fmt.Errorf("%v; putting the previous values back failed too: %v", err, rerr)
			}
			if byOperator {
				return fmt.Errorf("%v; the previous values are back in place (the operator rolls calico-node back to them once it acts)", err)
			}
			return fmt.Errorf("%v; the previous values are back in place (calico-node Pods already restarted keep the new MTU until they restart again)", err)
		}
		verb := "restarted"
		if byOperator {
			verb = "the operator rolled"
		}
		fmt.Fprintf(w, "%s calico-node (%s) in %s\n", verb, pl.DaemonSet, time.Since(start).Round(100*time.Millisecond))
	}
	if pl.File != nil && pl.File.Diff != "" {
		if err := pl.File.Apply(); err != nil {
			return fmt.Errorf("the cluster has the new MTU, but writing the Kubespray inventory failed: %w", err)
		}
		fmt.Fprintf(w, "wrote %s (calico_mtu: %d)\n", pl.File.Path, mtu)
	}
	if rolling {
		// Pods created until the rollout finished may have the old MTU too.
		if err := listOldPods(ctx, w, src, time.Now()); err != nil {
			fmt.Fprintf(w, "warning: could not list the Pods that keep the old MTU: %v\n", err)
		}
	}
	return recheck(ctx, s, f, before, prog)
}

// recheck deploys fresh agents, diagnoses again and prints before and after.
func recheck(ctx context.Context, s Streams, f *fixFlags, before *model.Report, prog *progress) error {
	src, layers, err := f.open(ctx, prog, "text")
	if err != nil {
		return fmt.Errorf("re-check: %w", err)
	}
	defer src.close()
	after, err := diagnoseRun(ctx, src, layers, false, f.timeout, prog)
	if err != nil {
		return fmt.Errorf("re-check: %w", err)
	}
	w := s.Out
	fmt.Fprintf(w, "\nBefore: %s\nAfter:  %s\n\n", findingLine(before), findingLine(after))
	report.DoctorText(w, after)
	return findingsExit(after.Findings)
}

func listOldPods(ctx context.Context, w io.Writer, src *source, start time.Time) error {
	old, err := remedy.OldPods(ctx, src.cs, start, func(ns string) bool { return strings.HasPrefix(ns, "podpath-") })
	if err != nil {
		return err
	}
	if len(old) == 0 {
		return nil
	}
	fmt.Fprintln(w, "These Pods were created before the change and keep the old MTU until they restart:")
	for _, o := range old {
		fmt.Fprintf(w, "  %s/%s (%d Pod(s)): %s\n", o.Namespace, o.Owner, o.Pods, o.Command)
	}
	return nil
}

// notReady names the nodes, and calico-node Pods, that are not Ready.
func notReady(cl *kube.Cluster) []string {
	var out []string
	for _, n := range cl.Nodes {
		if !n.Ready {
			out = append(out, "node "+n.Name+" is NotReady")
		}
	}
	if cl.Calico != nil {
		for n, ready := range cl.Calico.NodeReady {
			if !ready {
				out = append(out, "calico-node on "+n+" is not Ready")
			}
		}
	}
	sort.Strings(out)
	return out
}

// mtuFinding is the first finding whose remedy is an MTU.
func mtuFinding(r *model.Report) *model.Finding {
	for i, fd := range r.Findings {
		switch fd.ID {
		case diagnose.MTUBlackhole, diagnose.MTUInconsistent, diagnose.UnderlayFragmentation, diagnose.MTUWasteful:
			if fd.Remedy != nil && fd.Remedy.MTU > 0 {
				return &r.Findings[i]
			}
		}
	}
	return nil
}

// pathLimit is the largest Pod MTU the measured underlay carries: the
// smallest node-layer path MTU less the backend's encapsulation.
func pathLimit(r *model.Report, backend string) (int, string) {
	limit, path := 0, ""
	for _, p := range r.Pairs.All() {
		if p.Layer != model.LayerNode || p.PathMTU == 0 {
			continue
		}
		if v := p.PathMTU - calico.Overhead(backend); limit == 0 || v < limit {
			limit = v
			path = fmt.Sprintf("%s→%s carries %d bytes, %s takes %d", p.From, p.To, p.PathMTU, backend, calico.Overhead(backend))
		}
	}
	return limit, path
}

func findingLine(r *model.Report) string {
	var parts []string
	for _, fd := range r.Findings {
		if fd.Severity != model.SeverityInfo {
			parts = append(parts, fmt.Sprintf("%s %s (%s)", fd.ID, strings.Join(fd.Nodes, ","), fd.Severity))
		}
	}
	if len(parts) == 0 {
		return "no problems"
	}
	return strings.Join(parts, "; ")
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// fixInventoryOnly changes a Kubespray inventory without cluster access.
func fixInventoryOnly(s Streams, f *fixFlags) error {
	if f.mtu == 0 {
		return fmt.Errorf("--kubespray-inventory without cluster access needs --mtu (nothing was measured)")
	}
	fc, warns, err := remedy.KubesprayMTU(f.inventoryDir, f.mtu)
	if err != nil {
		return err
	}
	w := s.Out
	if fc.Diff == "" {
		fmt.Fprintf(w, "Nothing to change: %s already sets calico_mtu: %d.\n", fc.Path, f.mtu)
		return nil
	}
	fmt.Fprintln(w, fc.Diff)
	for _, warn := range warns {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if !f.apply {
		fmt.Fprintln(w, "\nDry run: nothing was changed. Add --apply to write the file.")
		return nil
	}
	if err := fc.Apply(); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s; run Kubespray (cluster.yml) to roll it out\n", fc.Path)
	return nil
}
