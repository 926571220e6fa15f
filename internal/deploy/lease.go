package deploy

// A run's liveness. Two runs at once must not meet: the second one would
// take the first one's namespace for what a killed run left and delete it,
// and their host agents would fight over the node's port. A run holds a
// Lease in its namespace and renews it while it lives; the next run tells a
// live run (refuse) from a dead one's leftovers (remove) by whether the
// Lease is still being renewed, which no clock skew between the two
// machines can fool.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The run's Lease.
const (
	LeaseName = "podpath-run"
	// LeaseRenew is how often a live run renews; LeaseDuration how long a
	// second run watches for a renewal before it calls the run dead.
	LeaseRenew       = 5 * time.Second
	LeaseDuration    = 15 * time.Second
	leaseCallTimeout = 10 * time.Second
	leasePoll        = time.Second
)

// holdLease creates the run's Lease and renews it until releaseLease.
func (r *Run) holdLease(ctx context.Context) error {
	now := metav1.NowMicro()
	secs := int32(LeaseDuration / time.Second)
	holder := "podpath run " + r.ID
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: r.Namespace,
			Labels: map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.ID}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}
	cctx, cancel := context.WithTimeout(ctx, leaseCallTimeout)
	_, err := r.cs.CoordinationV1().Leases(r.Namespace).Create(cctx, l, metav1.CreateOptions{FieldManager: ManagedBy})
	cancel()
	if err != nil {
		return fmt.Errorf("create Lease %s/%s: %w", r.Namespace, LeaseName, err)
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.releaseLease = func() { stop(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseRenew)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			// A merge patch: no read, no conflict. A failed renewal is
			// retried at the next tick; three in a row let the Lease lapse.
			patch := fmt.Sprintf(`{"spec":{"renewTime":%q}}`, metav1.NowMicro().Format(metav1.RFC3339Micro))
			cctx, cancel := context.WithTimeout(lctx, leaseCallTimeout)
			_, _ = r.cs.CoordinationV1().Leases(r.Namespace).Patch(cctx, LeaseName, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: ManagedBy})
			cancel()
		}
	}()
	return nil
}

// LiveRunError: another run is in progress in the cluster.
type LiveRunError struct{ Namespaces []string }

func (e *LiveRunError) Error() string {
	return fmt.Sprintf("another podpath run is in progress (namespace %s renews its Lease): wait for it to finish, then run again", strings.Join(e.Namespaces, ", "))
}

// SortRuns splits the namespaces of runs into those of live runs and those
// a killed run left. A namespace being deleted is a leftover. Any other is
// watched for up to LeaseDuration: a Lease that is renewed (or that appears:
// a run between creating its namespace and its Lease) is a live run. say,
// when set, is told before the wait.
func SortRuns(ctx context.Context, cs kubernetes.Interface, namespaces []corev1.Namespace, say func(string)) (live, leftover []string, err error) {
	seen := map[string]string{} // namespace → the Lease's resourceVersion ("" = none)
	for _, ns := range namespaces {
		if ns.DeletionTimestamp != nil {
			leftover = append(leftover, ns.Name)
			continue
		}
		rv, err := leaseVersion(ctx, cs, ns.Name)
		if err != nil {
			return nil, nil, err
		}
		seen[ns.Name] = rv
	}
	if len(seen) == 0 {
		return nil, leftover, nil
	}
	if say != nil {
		say(fmt.Sprintf("found namespace %s of another run: watching its Lease for up to %s to tell a live run from a killed one…", strings.Join(sortedKeys(seen), ", "), LeaseDuration))
	}
	deadline := time.Now().Add(LeaseDuration)
	for len(seen) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(leasePoll):
		}
		for ns, was := range seen {
			rv, err := leaseVersion(ctx, cs, ns)
			if err != nil {
				return nil, nil, err
			}
			if rv != was {
				live = append(live, ns)
				delete(seen, ns)
			}
		}
	}
	return live, append(leftover, sortedKeys(seen)...), nil
}

// leaseVersion is the resourceVersion of the run's Lease in ns, "" when
// there is none.
func leaseVersion(ctx context.Context, cs kubernetes.Interface, ns string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, leaseCallTimeout)
	defer cancel()
	l, err := cs.CoordinationV1().Leases(ns).Get(ctx, LeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read Lease %s/%s: %w", ns, LeaseName, err)
	}
	return l.ResourceVersion, nil
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
