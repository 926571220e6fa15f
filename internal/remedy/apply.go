package remedy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// FieldManager names podpath's changes in managedFields.
const FieldManager = "podpath"

// Bounds of applying a plan.
const (
	PatchTimeout          = 15 * time.Second
	DefaultRolloutTimeout = 5 * time.Minute
)

// Preview shows each object change as a diff of the object, asking the API
// server for the result (a server-side dry run, as `kubectl diff` does): what
// it shows is what --apply would store, validation included.
func (p *Change) Preview(ctx context.Context, dyn dynamic.Interface) ([]string, error) {
	var out []string
	for _, c := range p.Objects {
		ctx, cancel := context.WithTimeout(ctx, PatchTimeout)
		res := dyn.Resource(c.GVR).Namespace(c.Namespace)
		before, err := res.Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("read %s: %w", c.What, err)
		}
		after, err := res.Patch(ctx, c.Name, c.PatchType, c.Patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("dry-run %s: %w (nothing was changed)", c.What, err)
		}
		label := strings.ToLower(before.GetKind())
		if c.Namespace != "" {
			label = c.Namespace + "/" + label
		}
		out = append(out, UnifiedDiff(label+"/"+c.Name, objectYAML(before.Object), objectYAML(after.Object)))
	}
	return out, nil
}

// objectYAML renders an object without what changes on every write.
func objectYAML(obj map[string]any) []byte {
	o := map[string]any{}
	for k, v := range obj {
		if k != "status" {
			o[k] = v
		}
	}
	if md, ok := o["metadata"].(map[string]any); ok {
		m := map[string]any{}
		for k, v := range md {
			switch k {
			case "managedFields", "resourceVersion", "generation", "uid", "creationTimestamp":
			default:
				m[k] = v
			}
		}
		o["metadata"] = m
	}
	b, _ := yaml.Marshal(o)
	return b
}

// Apply patches every object. When one fails, the ones already changed
// are put back, so the cluster keeps its previous value, and the error says
// both.
func (p *Change) Apply(ctx context.Context, dyn dynamic.Interface) error {
	for i, c := range p.Objects {
		if err := patch(ctx, dyn, c, c.Patch); err != nil {
			err = fmt.Errorf("set %s to %s: %w", c.What, c.New, err)
			if rerr := p.revert(ctx, dyn, i); rerr != nil {
				return errors.Join(err, rerr)
			}
			return fmt.Errorf("%w; nothing changed (the previous values are in place)", err)
		}
	}
	return nil
}

// Revert puts every object's previous value back.
func (p *Change) Revert(ctx context.Context, dyn dynamic.Interface) error {
	return p.revert(ctx, dyn, len(p.Objects))
}

func (p *Change) revert(ctx context.Context, dyn dynamic.Interface, n int) error {
	var errs []error
	for _, c := range p.Objects[:n] {
		if err := patch(context.WithoutCancel(ctx), dyn, c, c.Revert); err != nil {
			errs = append(errs, fmt.Errorf("put %s back to %q: %w", c.What, c.Old, err))
		}
	}
	return errors.Join(errs...)
}

func patch(ctx context.Context, dyn dynamic.Interface, c ObjectChange, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, PatchTimeout)
	defer cancel()
	_, err := dyn.Resource(c.GVR).Namespace(c.Namespace).Patch(ctx, c.Name, c.PatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}

// Restart restarts a DaemonSet as `kubectl rollout restart` does (a
// restartedAt annotation on its Pod template) and waits until every Pod is
// new and available. It returns when the restart began.
func Restart(ctx context.Context, cs kubernetes.Interface, ds string, timeout time.Duration) (time.Time, error) {
	ns, name, _ := strings.Cut(ds, "/")
	start := time.Now()
	data := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, start.Format(time.RFC3339))
	pctx, cancel := context.WithTimeout(ctx, PatchTimeout)
	_, err := cs.AppsV1().DaemonSets(ns).Patch(pctx, name, types.StrategicMergePatchType, []byte(data), metav1.PatchOptions{FieldManager: FieldManager})
	cancel()
	if err != nil {
		return start, fmt.Errorf("restart DaemonSet %s: %w", ds, err)
	}
	return start, WaitRollout(ctx, cs, ds, 0, timeout)
}

// Generation is the DaemonSet's metadata.generation: the one an operator's
// rollout must go past.
func Generation(ctx context.Context, cs kubernetes.Interface, ds string) (int64, error) {
	ns, name, _ := strings.Cut(ds, "/")
	ctx, cancel := context.WithTimeout(ctx, PatchTimeout)
	defer cancel()
	d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("read DaemonSet %s: %w", ds, err)
	}
	return d.Generation, nil
}

// WaitRollout waits until the DaemonSet's template is newer than
// generation since (0: any) and all its Pods run it. An operator's rollout
// is waited for this way, since being the generation before the change:
// podpath does not restart a DaemonSet an operator owns, as the operator
// would put its own template back and cut the rollout short.
func WaitRollout(ctx context.Context, cs kubernetes.Interface, ds string, since int64, timeout time.Duration) error {
	ns, name, _ := strings.Cut(ds, "/")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			s := d.Status
			switch {
			case d.Generation <= since:
				err = fmt.Errorf("the operator has not changed it yet (kubectl get tigerastatus; the tigera-operator's log says why)")
			case s.ObservedGeneration >= d.Generation && s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled:
				return nil
			default:
				err = fmt.Errorf("%d of %d Pods updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
			}
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("rollout of DaemonSet %s: interrupted: %v", ds, err)
			}
			return fmt.Errorf("rollout of DaemonSet %s not done within %s: %v", ds, timeout, err)
		case <-time.After(time.Second):
		}
	}
}

// OldPod is a workload whose Pods were created before the change and keep
// the old MTU until they are restarted.
type OldPod struct {
	Namespace, Owner string // owner as kind/name ("Pod/x" when it has none)
	Pods             int
	Command          string
}

// OldPods lists the Pod-network Pods created before t, by workload, with
// the command that restarts each. Host-network Pods do not use the Pod MTU.
func OldPods(ctx context.Context, cs kubernetes.Interface, t time.Time, skipNamespace func(string) bool) ([]OldPod, error) {
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Pods: %w", err)
	}
	byOwner := map[string]*OldPod{}
	var order []string
	for _, p := range list.Items {
		if p.Spec.HostNetwork || p.Status.Phase != corev1.PodRunning || !p.CreationTimestamp.Time.Before(t) || skipNamespace(p.Namespace) {
			continue
		}
		owner, cmd := ownerOf(p)
		key := p.Namespace + "/" + owner
		if byOwner[key] == nil {
			byOwner[key] = &OldPod{Namespace: p.Namespace, Owner: owner, Command: cmd}
			order = append(order, key)
		}
		byOwner[key].Pods++
	}
	var out []OldPod
	for _, k := range order {
		out = append(out, *byOwner[k])
	}
	return out, nil
}

// ownerOf names a Pod's workload (a ReplicaSet's Deployment by its name)
// and the command that restarts it.
func ownerOf(p corev1.Pod) (string, string) {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		kind, name := o.Kind, o.Name
		if kind == "ReplicaSet" {
			if i := strings.LastIndex(name, "-"); i > 0 {
				kind, name = "Deployment", name[:i]
			}
		}
		switch kind {
		case "Deployment", "StatefulSet", "DaemonSet":
			ref := strings.ToLower(kind) + "/" + name
			return ref, fmt.Sprintf("kubectl -n %s rollout restart %s", p.Namespace, ref)
		}
		return kind + "/" + name, fmt.Sprintf("kubectl -n %s delete pod %s   # its %s recreates it", p.Namespace, p.Name, kind)
	}
	return "Pod/" + p.Name, fmt.Sprintf("kubectl -n %s delete pod %s   # no controller: recreate it yourself", p.Namespace, p.Name)
}
