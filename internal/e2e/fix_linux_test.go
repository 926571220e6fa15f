//go:build !agentonly

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"podpath/internal/cli"
	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// fix runs `podpath fix mtu` as the admin (fixing needs patch rights the
// doctor's role does not have).
func (k *kubeCluster) fix(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, out, errOut := run(t, append([]string{"fix", "mtu", "--kubeconfig", k.env.Kubeconfig}, args...)...)
	t.Logf("podpath fix mtu %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	return code, out, errOut
}

func (k *kubeCluster) vethMTU(t *testing.T) string {
	t.Helper()
	cm, err := k.cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "calico-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data["veth_mtu"]
}

// The seed case fixed on a manifest install (Calico's own calico-vxlan.yaml):
// refusals change nothing, the dry run shows the diff and changes nothing, a
// failed rollout puts the old value back, --apply sets veth_mtu, restarts
// calico-node (the lab then does what Felix and the CNI plugin do), and its
// re-check finds only the cluster DNS's Pods made before the change, which it
// lists to restart; restarted, the doctor is clean, the 300 KB transfer
// across node1→node3 included.
func TestKubeFixMTUManifest(t *testing.T) {
	k := newKubeCluster(t, "manifest")
	fault(t, k.lab, "underlay-mtu=node3:1400")

	// alice holds the doctor's role only: refused before anything is deployed.
	code, _, errOut := run(t, "fix", "mtu", "--kubeconfig", k.alice)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if last := lines[len(lines)-1]; code != cli.ExitNoRun || !strings.Contains(last, "missing RBAC permissions: patch configmaps calico-config, patch daemonsets.apps calico-node") ||
		!strings.Contains(last, "podpath-fix from deploy/rbac-fix.yaml") || strings.Contains(errOut, "deploying agents") {
		t.Errorf("fix as a user without the fix role: exit %d %q; want exit 2 and one line naming the missing rights and the role", code, errOut)
	}
	k.nothingLeft(t)

	if code, _, errOut := k.fix(t, "--mtu", "500"); code != cli.ExitNoRun || !strings.Contains(errOut, "MTU 500: an IPv4 cluster needs 576-9000") {
		t.Errorf("--mtu 500: exit %d %q; want exit 2 naming the range", code, errOut)
	}
	if code, _, errOut := k.fix(t, "--mtu", "1450", "--apply"); code != cli.ExitNoRun || !strings.Contains(errOut, "MTU 1450 is above what the measured path carries: 1350") {
		t.Errorf("--mtu 1450 on a 1400-byte path: exit %d %q; want exit 2 naming 1350", code, errOut)
	}
	if v := k.vethMTU(t); v != "0" {
		t.Fatalf("veth_mtu %q after refusals; want the manifest's \"0\"", v)
	}

	code, out, _ := k.fix(t)
	if code != cli.ExitOK || !strings.Contains(out, `-  veth_mtu: "0"`) || !strings.Contains(out, `+  veth_mtu: "1350"`) || !strings.Contains(out, "Dry run: nothing was changed") {
		t.Errorf("dry run: exit %d; want exit 0 and calico-config's diff veth_mtu \"0\" → \"1350\":\n%s", code, out)
	}
	if v := k.vethMTU(t); v != "0" {
		t.Fatalf("veth_mtu %q after the dry run; want \"0\"", v)
	}

	// A patch the API server refuses (an admission policy here): nothing changes.
	deny := `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: freeze-calico-config}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [UPDATE], resources: [configmaps]}]
  validations: [{expression: "object.metadata.name != 'calico-config'", message: "calico-config is frozen"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: freeze-calico-config}
spec: {policyName: freeze-calico-config, validationActions: [Deny]}
`
	if err := k.env.ApplyBytes(context.Background(), []byte(deny)); err != nil {
		t.Fatal(err)
	}
	waitFrozen(t, k)
	code, _, errOut = k.fix(t, "--apply")
	if code != cli.ExitNoRun || !strings.Contains(errOut, "calico-config is frozen") || !strings.Contains(errOut, "nothing") {
		t.Errorf("refused patch: exit %d %q; want exit 2 saying nothing changed", code, errOut)
	}
	if v := k.vethMTU(t); v != "0" {
		t.Errorf("veth_mtu %q after a refused patch; want \"0\"", v)
	}
	for _, r := range []string{"validatingadmissionpolicybindings", "validatingadmissionpolicies"} {
		if err := k.dyn.Resource(schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: r}).
			Delete(context.Background(), "freeze-calico-config", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if _, err := k.cs.CoreV1().ConfigMaps("kube-system").Patch(context.Background(), "calico-config", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"podpath.test/thawed":"yes"}}}`), metav1.PatchOptions{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("calico-config still frozen: %v", err)
		}
	}

	code, out, _ = k.fix(t, "--apply")
	if !strings.Contains(out, "set ConfigMap kube-system/calico-config veth_mtu: 0 → 1350") || !strings.Contains(out, "Before: mtu-blackhole node3 (error)") {
		t.Errorf("--apply: exit %d; want veth_mtu set:\n%s", code, out)
	}
	checkApplied(t, code, out)
	if v := k.vethMTU(t); v != "1350" {
		t.Errorf("veth_mtu %q after --apply; want \"1350\"", v)
	}
	k.restartCoreDNS(t)
	r, code, _ := k.doctor(t)
	checkFixed(t, r, code)
	k.nothingLeft(t)

	// A rollout that does not finish in time: the value set before it comes back.
	code, _, errOut = k.fix(t, "--mtu", "1300", "--apply", "--rollout-timeout", "1ms")
	if code != cli.ExitNoRun || !strings.Contains(errOut, "the previous values are back in place") {
		t.Errorf("rollout that cannot finish in 1 ms: exit %d %q; want exit 2 saying the old value is back", code, errOut)
	}
	if v := k.vethMTU(t); v != "1350" {
		t.Errorf("veth_mtu %q after a failed rollout; want \"1350\" back", v)
	}
	k.nothingLeft(t)
}

// waitFrozen waits until the admission policy refuses a change of calico-config
// (policies take a moment to load).
func waitFrozen(t *testing.T, k *kubeCluster) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		_, err := k.cs.CoreV1().ConfigMaps("kube-system").Patch(context.Background(), "calico-config", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"podpath.test/probe":"x"}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "frozen") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admission policy never took effect: %v", err)
		}
	}
}

// checkFixed: no MTU black hole any more, and the bulk transfer across the
// formerly broken Pod pairs passes.
func checkFixed(t *testing.T, r *model.Report, code int) {
	t.Helper()
	if f := finding(r, diagnose.MTUBlackhole); f != nil && f.Severity == model.SeverityError {
		t.Errorf("after the fix: %s", summary(r))
	}
	crossed := 0
	for _, p := range r.Pairs.All() {
		if p.Layer == model.LayerPod && (p.To == "node3" || p.From == "node3") {
			if p.Stalled || !p.Reachable || p.PathMTU != 1350 {
				t.Errorf("pod %s→%s after the fix: reachable %v, stalled %v, path MTU %d; want a 300 KB transfer through at 1350", p.From, p.To, p.Reachable, p.Stalled, p.PathMTU)
			}
			crossed++
		}
	}
	if crossed != 4 {
		t.Errorf("%d Pod pairs with node3; want 4", crossed)
	}
	if code != cli.ExitOK {
		t.Errorf("doctor after the fix: exit %d (%s); want 0 (the host network's own warning is not an error)", code, summary(r))
	}
}

// checkApplied: the fix's re-check finds the Pods made before the change
// (the cluster DNS's) and nothing else wrong: it lists them with the
// command that restarts them, and the only error left is their MTU, above
// the tunnel's now.
func checkApplied(t *testing.T, code int, out string) {
	t.Helper()
	after, _, _ := strings.Cut(out[strings.Index(out, "After:"):], "\n")
	errs := strings.Count(after, "(error)")
	if !strings.Contains(out, "kube-system/deployment/coredns (2 Pod(s)): kubectl -n kube-system rollout restart deployment/coredns") ||
		errs != strings.Count(after, "mtu-inconsistent") || (code == cli.ExitOK) != (errs == 0) {
		t.Errorf("--apply: exit %d; want CoreDNS's old Pods listed to restart, and no error in the re-check but their MTU:\n%s", code, out)
	}
}

// restartCoreDNS does what the fix says to do with the cluster DNS's Pods
// (kubectl -n kube-system rollout restart deployment/coredns) and waits
// until only new Pods, at the new MTU, serve.
func (k *kubeCluster) restartCoreDNS(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	since := time.Now().Truncate(time.Second) // creation times have seconds only
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	if _, err := k.cs.AppsV1().Deployments("kube-system").Patch(ctx, "coredns", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("restart coredns: %v", err)
	}
	for {
		pods, err := k.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		fresh := 0
		if err == nil {
			for i := range pods.Items {
				p := &pods.Items[i]
				if p.DeletionTimestamp == nil && podReadyCond(p) && !p.CreationTimestamp.Time.Before(since) {
					fresh++
				}
			}
		}
		// Only the new ones: the old ones' veths, at the old MTU, gone too.
		if err == nil && fresh == 2 && len(pods.Items) == 2 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("coredns not restarted within 2 minutes (%v)", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

var installationGVR = schema.GroupVersionResource{Group: "operator.tigera.io", Version: "v1", Resource: "installations"}

// The operator flavour: the Installation carries the MTU, and the operator,
// not podpath, rolls calico-node.
func TestKubeFixMTUOperator(t *testing.T) {
	k := newKubeCluster(t, "operator")
	fault(t, k.lab, "underlay-mtu=node3:1400")

	t.Run("operator_does_not_roll", func(t *testing.T) {
		code, out, errOut := k.fix(t, "--apply", "--rollout-timeout", "5s")
		if code != cli.ExitNoRun || !strings.Contains(errOut, "the operator has not changed it yet") || !strings.Contains(errOut, "previous values are back") {
			t.Errorf("--apply with no operator rolling calico-node: exit %d; want 2, the wait named and the change undone:\n%s\n%s", code, out, errOut)
		}
		if v := k.installationMTU(t); v != 0 {
			t.Errorf("Installation spec.calicoNetwork.mtu = %d after the failed fix; want it unset again", v)
		}
	})

	k.runOperator(t)
	code, out, _ := k.fix(t, "--apply")
	if !strings.Contains(out, "set Installation default spec.calicoNetwork.mtu: (unset) → 1350") ||
		!strings.Contains(out, "the operator rolled calico-node (calico-system/calico-node)") {
		t.Errorf("--apply: exit %d; want the Installation set and the operator's rollout waited for:\n%s", code, out)
	}
	checkApplied(t, code, out)
	if v := k.installationMTU(t); v != 1350 {
		t.Errorf("Installation spec.calicoNetwork.mtu = %d; want 1350", v)
	}
	ds, err := k.cs.AppsV1().DaemonSets("calico-system").Get(context.Background(), "calico-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]; ok {
		t.Errorf("podpath restarted the operator's calico-node itself (restartedAt %s); the operator owns it", a)
	}
	k.restartCoreDNS(t)
	r, code, _ := k.doctor(t)
	checkFixed(t, r, code)
	k.nothingLeft(t)
}

func (k *kubeCluster) installationMTU(t *testing.T) int64 {
	t.Helper()
	inst, err := k.dyn.Resource(installationGVR).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ := unstructured.NestedInt64(inst.Object, "spec", "calicoNetwork", "mtu")
	return v
}

// runOperator stands in for the one move of the Tigera operator that fix
// depends on: when the Installation's spec.calicoNetwork.mtu changes, it
// renders calico-node again with the MTU in Felix's environment, and the
// DaemonSet controller rolls it. (The operator itself needs its images and
// all of calico-system; this control plane runs none of them.)
func (k *kubeCluster) runOperator(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	seen := k.installationMTU(t)
	go func() {
		defer close(done)
		for ; ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
			inst, err := k.dyn.Resource(installationGVR).Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				continue
			}
			mtu, _, _ := unstructured.NestedInt64(inst.Object, "spec", "calicoNetwork", "mtu")
			if mtu == seen {
				continue
			}
			patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"calico-node","env":[{"name":"FELIX_VXLANMTU","value":"%d"}]}]}}}}`, mtu)
			if _, err := k.cs.AppsV1().DaemonSets("calico-system").Patch(ctx, "calico-node", types.StrategicMergePatchType,
				[]byte(patch), metav1.PatchOptions{FieldManager: "operator"}); err == nil {
				seen = mtu
			}
		}
	}()
}
