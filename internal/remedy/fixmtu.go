package remedy

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/calico"
	"podpath/internal/cluster"
	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/doctor"
	"podpath/internal/model"
)

// FixOptions is one fix mtu run.
type FixOptions struct {
	MTU   int  // 0: the doctor's remedy
	Apply bool // false: a dry run, every diff from the server
	// Force applies above what the measured path carries, or while a node
	// or calico-node is not Ready.
	Force bool
	// Rolling restarts calico-node after the change (on an operator
	// install: waits for the operator's rollout).
	Rolling            bool
	KubesprayInventory string // a directory to change too; "" none
	RolloutTimeout     time.Duration
	// Config is the cluster's; nil changes the Kubespray inventory only.
	Config *rest.Config
	// Cluster deploys the doctor's agents, before the change and after.
	Cluster cluster.Options
	Timeout time.Duration // of each doctor run
	Out     io.Writer     // the diffs, what was set, before and after
	// Clear ends the progress the doctor runs said (a terminal's line)
	// before Out is written to; nil: nothing to clear.
	Clear func()
}

func (o FixOptions) say(format string, a ...any) {
	if o.Cluster.Say != nil {
		o.Cluster.Say(format, a...)
	}
}

// FixMTU measures the cluster, takes the MTU from the doctor's finding
// (or o.MTU), shows the change where this install keeps it and, with
// o.Apply, makes it, rolls calico-node and diagnoses again on fresh
// agents. It returns the re-check's report; nil when nothing was applied.
// A failed patch or rollout puts the previous values back.
func FixMTU(ctx context.Context, o FixOptions) (*model.Report, error) {
	if o.MTU != 0 {
		if err := calico.CheckMTU(o.MTU, false); err != nil {
			return nil, err
		}
	}
	if o.Config == nil {
		return nil, fixInventoryOnly(o)
	}
	// Even the dry run patches (server-side): a caller without the fix
	// role's rights learns it before the measurement, not after.
	open := o.Cluster
	open.Check = func(ctx context.Context, cs kubernetes.Interface, cl *kube.Cluster) error {
		perms, err := Permissions(cl, o.Rolling)
		if err != nil {
			return err
		}
		return deploy.CheckPermissions(ctx, cs, perms, deploy.FixRole)
	}
	s, err := cluster.Open(ctx, o.Config, open)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	before, err := o.diagnose(ctx, s)
	if err != nil {
		return nil, err
	}
	pl, mtu, err := o.plan(ctx, s, before)
	if err != nil || pl == nil || !o.Apply {
		return nil, err
	}
	// The agents of the re-check must be new Pods: only new Pods get the new MTU.
	s.Close()
	if err := o.apply(ctx, s, pl, mtu); err != nil {
		return nil, err
	}
	after, err := o.recheck(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "\nBefore: %s\nAfter:  %s\n\n", findingLine(before), findingLine(after))
	return after, nil
}

func (o FixOptions) diagnose(ctx context.Context, s *cluster.Session) (*model.Report, error) {
	if o.Clear != nil {
		defer o.Clear()
	}
	return doctor.Run(ctx, s, doctor.Options{Layers: []model.Layer{model.LayerNode, model.LayerPod}, Timeout: o.Timeout, Say: o.Cluster.Say})
}

// recheck deploys fresh agents, with the doctor's rights only, and
// diagnoses again.
func (o FixOptions) recheck(ctx context.Context) (*model.Report, error) {
	s, err := cluster.Open(ctx, o.Config, o.Cluster)
	if err != nil {
		return nil, fmt.Errorf("re-check: %w", err)
	}
	defer s.Close()
	after, err := o.diagnose(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("re-check: %w", err)
	}
	return after, nil
}

// plan chooses the MTU, checks it against the measured path, and prints
// what would change. A nil plan: nothing to change (said on o.Out).
func (o FixOptions) plan(ctx context.Context, s *cluster.Session, before *model.Report) (*Change, int, error) {
	w := o.Out
	mtu, why := o.MTU, "--mtu"
	if mtu == 0 {
		fd := mtuFinding(before)
		if fd == nil {
			fmt.Fprintln(w, "Nothing to fix: the doctor found no MTU problem (give --mtu to set one anyway).")
			return nil, 0, nil
		}
		mtu, why = fd.Remedy.MTU, fd.ID+": "+fd.Title
	}
	cl := s.Cluster
	if err := calico.CheckMTU(mtu, IPv6(cl)); err != nil {
		return nil, 0, err
	}
	if limit, path := pathLimit(before, cl.Network().Backend); limit > 0 && mtu > limit && !o.Force {
		return nil, 0, fmt.Errorf("MTU %d is above what the measured path carries: %d (%s); --force sets it anyway", mtu, limit, path)
	}
	pl, err := ClusterChange(cl, mtu)
	if err != nil {
		return nil, 0, err
	}
	if o.KubesprayInventory != "" {
		fc, warns, err := KubesprayMTU(o.KubesprayInventory, mtu)
		if err != nil {
			return nil, 0, err
		}
		pl.File, pl.Warnings = fc, append(pl.Warnings, warns...)
	} else if pl.Inventory {
		pl.Warnings = append(pl.Warnings, fmt.Sprintf("this is a Kubespray install: set calico_mtu: %d in its inventory too (--kubespray-inventory does it), or the next Kubespray run reverts this", mtu))
	}
	fmt.Fprintf(w, "Pod MTU → %d (Calico %s install), because %s\n\n", mtu, pl.Install, why)
	diffs, err := pl.Preview(ctx, s.Dynamic)
	if err != nil {
		return nil, 0, err
	}
	for _, d := range diffs {
		fmt.Fprintln(w, d)
	}
	fileChange := pl.File != nil && pl.File.Diff != ""
	if fileChange {
		fmt.Fprintln(w, pl.File.Diff)
	}
	for _, warn := range pl.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(pl.Objects) == 0 && !fileChange {
		if pl.Inventory && pl.File == nil {
			return nil, 0, fmt.Errorf("this Kubespray install sets its MTU only through calico_mtu: give --kubespray-inventory and run Kubespray's network role afterwards")
		}
		fmt.Fprintln(w, "Nothing to change: the MTU is already set to that value.")
		return nil, 0, nil
	}
	if !o.Apply {
		fmt.Fprintln(w, "\nDry run: nothing was changed. Add --apply to make these changes and restart calico-node.")
		return pl, mtu, nil
	}
	// A rollout cannot finish on a node that is down: it would stall, time
	// out and leave nodes on different MTUs.
	if down := notReady(cl); len(down) > 0 && !o.Force {
		return nil, 0, fmt.Errorf("not applying while %s: calico-node's rollout would stall there (fix the node, or --force)", strings.Join(down, ", "))
	}
	return pl, mtu, nil
}

// apply patches, rolls calico-node (reverting when that fails), writes the
// Kubespray inventory and lists the Pods that keep the old MTU.
func (o FixOptions) apply(ctx context.Context, s *cluster.Session, pl *Change, mtu int) error {
	w := o.Out
	// The operator owns calico-node: it rolls it when the Installation
	// changes, and would put back a template podpath restarted. podpath
	// waits for the operator's rollout instead, past this generation.
	rolling := o.Rolling && pl.DaemonSet != ""
	byOperator := rolling && pl.Install == "operator"
	var generation int64
	if byOperator {
		var err error
		if generation, err = Generation(ctx, s.Clients, pl.DaemonSet); err != nil {
			return err
		}
	}
	if err := pl.Apply(ctx, s.Dynamic); err != nil {
		return err
	}
	for _, c := range pl.Objects {
		fmt.Fprintf(w, "set %s: %s → %s\n", c.What, orUnset(c.Old), c.New)
	}
	if rolling {
		if err := o.roll(ctx, s, pl, byOperator, generation); err != nil {
			return err
		}
	}
	if pl.File != nil && pl.File.Diff != "" {
		if err := pl.File.Apply(); err != nil {
			return fmt.Errorf("the cluster has the new MTU, but writing the Kubespray inventory failed: %w", err)
		}
		fmt.Fprintf(w, "wrote %s (calico_mtu: %d)\n", pl.File.Path, mtu)
	}
	if rolling {
		// Pods created until the rollout finished may have the old MTU too.
		if err := listOldPods(ctx, w, s.Clients, time.Now()); err != nil {
			fmt.Fprintf(w, "warning: could not list the Pods that keep the old MTU: %v\n", err)
		}
	}
	return nil
}

// roll restarts calico-node, or waits for the operator to, and puts the
// previous values back when the rollout fails.
func (o FixOptions) roll(ctx context.Context, s *cluster.Session, pl *Change, byOperator bool, generation int64) error {
	start := time.Now()
	var err error
	if byOperator {
		o.say("podpath: waiting for the operator to roll calico-node (%s)…", pl.DaemonSet)
		err = WaitRollout(ctx, s.Clients, pl.DaemonSet, generation, o.RolloutTimeout)
	} else {
		o.say("podpath: restarting calico-node (%s) and waiting for the rollout…", pl.DaemonSet)
		start, err = Restart(ctx, s.Clients, pl.DaemonSet, o.RolloutTimeout)
	}
	if err != nil {
		if rerr := pl.Revert(ctx, s.Dynamic); rerr != nil {
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
	fmt.Fprintf(o.Out, "%s calico-node (%s) in %s\n", verb, pl.DaemonSet, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func listOldPods(ctx context.Context, w io.Writer, cs kubernetes.Interface, start time.Time) error {
	old, err := OldPods(ctx, cs, start, func(ns string) bool { return strings.HasPrefix(ns, "podpath-") })
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
	var first *model.Finding
	for i, fd := range r.Findings {
		switch fd.ID {
		case diagnose.MTUAutodetect, diagnose.MTUBlackhole, diagnose.MTUInconsistent, diagnose.UnderlayFragmentation, diagnose.MTUWasteful:
			if fd.Remedy == nil || fd.Remedy.MTU == 0 {
				continue
			}
			switch {
			case first == nil:
				first = &r.Findings[i]
			case fd.ID == first.ID && fd.Family != first.Family && fd.Remedy.MTU < first.Remedy.MTU:
				// A dual-stack cluster's other family needs less: a Pod has
				// one MTU for both.
				first = &r.Findings[i]
			}
		}
	}
	return first
}

// familySuffix marks a dual-stack run's IPv6 pair.
func familySuffix(family string) string {
	if f := model.FamilyName(family); f != "" {
		return " (" + f + ")"
	}
	return ""
}

// pathLimit is the largest Pod MTU the measured underlay carries: the
// smallest node-layer path MTU less the backend's encapsulation.
func pathLimit(r *model.Report, backend string) (int, string) {
	limit, path := 0, ""
	v6only := ipv6Only(r)
	for _, p := range r.Pairs.All() {
		if p.Layer != model.LayerNode || p.PathMTU == 0 {
			continue
		}
		overhead := calico.Overhead(backend)
		if p.Family == model.FamilyIPv6 || v6only {
			overhead = calico.OverheadIPv6(backend)
		}
		if v := p.PathMTU - overhead; limit == 0 || v < limit {
			limit = v
			path = fmt.Sprintf("%s→%s%s carries %d bytes, %s takes %d", p.From, p.To, familySuffix(p.Family), p.PathMTU, backend, overhead)
		}
	}
	return limit, path
}

// ipv6Only reports whether every node address of r is IPv6: an
// IPv6-only cluster, whose first (only) pass is IPv6's.
func ipv6Only(r *model.Report) bool {
	six := false
	for _, n := range r.Nodes {
		a, err := netip.ParseAddr(n.Address)
		if err != nil {
			continue
		}
		if a.Unmap().Is4() {
			return false
		}
		six = true
	}
	return six
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
func fixInventoryOnly(o FixOptions) error {
	if o.MTU == 0 {
		return fmt.Errorf("--kubespray-inventory without cluster access needs --mtu (nothing was measured)")
	}
	fc, warns, err := KubesprayMTU(o.KubesprayInventory, o.MTU)
	if err != nil {
		return err
	}
	w := o.Out
	if fc.Diff == "" {
		fmt.Fprintf(w, "Nothing to change: %s already sets calico_mtu: %d.\n", fc.Path, o.MTU)
		return nil
	}
	fmt.Fprintln(w, fc.Diff)
	for _, warn := range warns {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if !o.Apply {
		fmt.Fprintln(w, "\nDry run: nothing was changed. Add --apply to write the file.")
		return nil
	}
	if err := fc.Apply(); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s; run Kubespray (cluster.yml) to roll it out\n", fc.Path)
	return nil
}
