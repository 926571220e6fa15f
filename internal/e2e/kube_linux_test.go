//go:build !agentonly

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/agent"
	"podpath/internal/cli"
	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/kubetest"
	"podpath/internal/lab"
	"podpath/internal/model"
	"podpath/internal/report"
)

// kubeCluster is a Kubernetes lab: a real control plane, real nodes
// (kubelet, containerd, runc, kube-proxy) and Calico's objects as an
// install of the given flavour leaves them, calico-node being the lab's
// stand-in.
type kubeCluster struct {
	lab   *lab.Lab
	env   *kubetest.Env
	cs    kubernetes.Interface
	dyn   dynamic.Interface
	alice string // kubeconfig of a user bound only to deploy/rbac.yaml's ClusterRole
}

// newKubeCluster builds a 3-node Kubernetes lab with Calico installed the
// flavour's way (kubespray, manifest or operator). The nodes named in
// notReady have their kubelet stopped (and are cordoned, as an operator
// draining a broken node does) before the test runs.
func newKubeCluster(t *testing.T, flavour string, notReady ...string) *kubeCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane and real nodes")
	}
	l := testLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN).Kubernetes(flavour))
	ca, key := l.CAFiles()
	env := kubetest.Attach(t, l.Kube.Kubeconfig, ca, key)
	k := &kubeCluster{lab: l, env: env, cs: kubernetes.NewForConfigOrDie(env.Config), dyn: dynamic.NewForConfigOrDie(env.Config)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range notReady {
		patch := []byte(`{"spec":{"unschedulable":true}}`)
		if _, err := k.cs.CoreV1().Nodes().Patch(ctx, n, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("cordon %s: %v", n, err)
		}
		if err := l.StopKubelet(n); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); len(notReady) > 0; time.Sleep(500 * time.Millisecond) {
		down := 0
		for _, n := range notReady {
			if node, err := k.cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{}); err == nil && !nodeReady(node) {
				down++
			}
		}
		if down == len(notReady) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v still Ready a minute after their kubelets stopped", notReady)
		}
	}

	// The least-privileged user: bound to the shipped ClusterRole only.
	env.Apply(t, "../../deploy/rbac.yaml")
	if err := env.ApplyBytes(ctx, []byte(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: podpath-doctor-alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podpath-doctor}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
`)); err != nil {
		t.Fatal(err)
	}
	k.alice = env.UserKubeconfig(t, "alice")
	return k
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// doctor runs `podpath doctor` against the cluster as alice.
func (k *kubeCluster) doctor(t *testing.T, args ...string) (*model.Report, int, string) {
	t.Helper()
	start := time.Now()
	code, out, errOut := run(t, append([]string{"doctor", "--kubeconfig", k.alice, "-o", "json"}, args...)...)
	t.Logf("doctor took %s:\n%s", time.Since(start), errOut)
	if code == cli.ExitNoRun {
		t.Fatalf("doctor: exit 2: %s", errOut)
	}
	var r model.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor -o json: %v\n%s\n%s", err, out, errOut)
	}
	return &r, code, errOut
}

// nothingLeft checks that no object labelled by podpath exists, across
// every namespaced and cluster-scoped resource type.
func (k *kubeCluster) nothingLeft(t *testing.T) {
	t.Helper()
	if left := k.env.Labelled(t, deploy.ManagedByLabel+"="+deploy.ManagedBy); len(left) > 0 {
		t.Errorf("objects labelled by podpath left behind: %v", left)
	}
}

func finding(r *model.Report, id string) *model.Finding {
	for i := range r.Findings {
		if r.Findings[i].ID == id {
			return &r.Findings[i]
		}
	}
	return nil
}

// The seed case on a Kubespray install (Calico from manifests), run by a user
// bound only to the shipped ClusterRole, through the API server alone.
func TestKubeDoctorKubespray(t *testing.T) {
	k := newKubeCluster(t, "kubespray")

	t.Run("missing_rbac", func(t *testing.T) {
		bob := k.env.UserKubeconfig(t, "bob") // bound to nothing
		wantUsageError(t, "missing RBAC permissions: list nodes", "doctor", "--kubeconfig", bob)
		wantUsageError(t, "not allowed to list and delete podpath's namespaces (Forbidden): bind the user to the ClusterRole podpath-doctor", "cleanup", "--kubeconfig", bob)
		k.nothingLeft(t)
	})

	t.Run("seed_mtu_blackhole", func(t *testing.T) {
		fault(t, k.lab, "underlay-mtu=node3:1400")
		defer func() {
			if _, err := lab.ClearFaults(context.Background(), k.lab.Spec.Name); err != nil {
				t.Fatal(err)
			}
		}()
		r, code, _ := k.doctor(t)
		f := finding(r, diagnose.MTUBlackhole)
		if code != cli.ExitFindings || f == nil || !slices.Contains(f.Nodes, "node3") || f.Remedy == nil || f.Remedy.MTU != 1350 {
			t.Fatalf("exit %d, findings %s; want exit 1 and mtu-blackhole on node3 with remedy.mtu 1350", code, summary(r))
		}
		var text bytes.Buffer
		report.DoctorText(&text, r)
		t.Logf("the report as a user reads it:\n%s", text.String())
		c := r.Config
		if c == nil || c.Source != "cluster" || c.Install != "kubespray" || c.Backend != "vxlan" || c.PodMTU != 1450 {
			t.Errorf("config %+v; want the cluster's: Kubespray (manifest) install, vxlan, Pod MTU 1450", c)
		}
		// Real kubelets serve calico-node's logs: nothing to say about them.
		if c != nil && strings.Contains(strings.Join(c.Notes, "\n"), "calico-node logs unavailable") {
			t.Errorf("config notes %q; calico-node's logs should be readable through the API server", c.Notes)
		}
		evidence := strings.Join(f.Evidence, "\n")
		for _, want := range []string{"IPPool default-pool vxlanMode Always", "FelixConfiguration default vxlanMTU"} {
			if !strings.Contains(evidence, want) {
				t.Errorf("mtu-blackhole evidence lacks %q:\n%s", want, evidence)
			}
		}
		// mtu through the cluster too: the same agents' view, byte-exact.
		code, out, errOut := run(t, "mtu", "--kubeconfig", k.alice, "-o", "json")
		var m model.Report
		if err := json.Unmarshal([]byte(out), &m); code != cli.ExitOK || err != nil {
			t.Fatalf("mtu: exit %d, %v: %s", code, err, errOut)
		}
		for _, p := range m.Pairs.All() {
			want := map[model.Layer]int{model.LayerNode: 1500, model.LayerPod: 1450}[p.Layer]
			if p.From == "node3" || p.To == "node3" {
				want -= 100
			}
			if p.PathMTU != want {
				t.Errorf("mtu %s %s→%s = %d; want %d", p.Layer, p.From, p.To, p.PathMTU, want)
			}
		}
		if m.Pairs.Len() != 12 {
			t.Errorf("mtu measured %d pairs; want 12 (6 ordered pairs on each layer)", m.Pairs.Len())
		}
		// Kubespray keeps the MTU in its inventory: a kubectl-only fix would be reverted.
		if cmds := strings.Join(f.Remedy.Commands, "\n"); !strings.Contains(f.Remedy.Summary, "calico_mtu: 1350") ||
			!strings.Contains(cmds, "--kubespray-inventory") || strings.Contains(cmds, "installation") {
			t.Errorf("remedy for a Kubespray install: %s\n%s", f.Remedy.Summary, cmds)
		}
		k.nothingLeft(t)
	})

	t.Run("ippool_mtu_ignored", func(t *testing.T) {
		pools := k.dyn.Resource(schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"})
		pool := func() *unstructured.Unstructured {
			u := &unstructured.Unstructured{}
			_ = json.Unmarshal([]byte(`{"apiVersion":"crd.projectcalico.org/v1","kind":"IPPool","metadata":{"name":"article-pool"},"spec":{"cidr":"10.240.0.0/16","mtu":1500,"disabled":true}}`), &u.Object)
			return u
		}
		ctx := context.Background()
		// kubectl apply's default (strict) validation: the real CRD refuses it.
		_, err := pools.Create(ctx, pool(), metav1.CreateOptions{FieldValidation: "Strict"})
		if err == nil || !strings.Contains(err.Error(), `unknown field "spec.mtu"`) {
			t.Fatalf("strict create of an IPPool with spec.mtu: %v; want unknown field", err)
		}
		t.Logf("strict validation: %v", err)
		// --validate=warn: the server prunes the field; kubectl's annotation keeps it.
		u := pool()
		last, _ := json.Marshal(u.Object)
		u.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(last)})
		stored, err := pools.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Warn"})
		if err != nil {
			t.Fatal(err)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(stored.Object, "spec", "mtu"); found {
			t.Errorf("the API server kept spec.mtu; the rule assumes it prunes it")
		} else {
			t.Logf("warn validation: spec.mtu pruned from the stored object, kept in the annotation")
		}
		defer func() { _ = pools.Delete(ctx, "article-pool", metav1.DeleteOptions{}) }()
		r, code, _ := k.doctor(t)
		if f := finding(r, diagnose.IPPoolMTUIgnored); f == nil || !strings.Contains(f.Title, "article-pool") {
			t.Errorf("findings %s; want ippool-mtu-ignored naming article-pool", summary(r))
		}
		if code != cli.ExitOK {
			t.Errorf("healthy cluster with a misleading IPPool: exit %d (%s); want 0 (a warning)", code, summary(r))
		}
		k.nothingLeft(t)
	})

	// A second run while one is in progress leaves it alone and says so.
	t.Run("concurrent_run_refused", func(t *testing.T) {
		first, stderr := k.start(t)
		waitFor(t, stderr, "waiting up to")
		code, _, errOut := run(t, "doctor", "--kubeconfig", k.alice, "-o", "json")
		if code != cli.ExitNoRun || !strings.Contains(errOut, "another podpath run is in progress (namespace podpath-") || strings.Contains(errOut, "removing what") {
			t.Errorf("second run during the first: exit %d; want exit 2 naming the live run, nothing removed:\n%s", code, errOut)
		}
		err := first.Wait()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() == cli.ExitNoRun) {
			t.Errorf("the first run, after a second one was refused: %v; want it to finish", err)
		}
		k.nothingLeft(t)
	})

	t.Run("sigint_during_wait", func(t *testing.T) {
		cmd, stderr := k.start(t)
		waitFor(t, stderr, "waiting up to")
		start := time.Now()
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		took := time.Since(start)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != cli.ExitNoRun {
			t.Errorf("after SIGINT: %v; want exit 2", err)
		}
		if took > 15*time.Second {
			t.Errorf("exit %s after SIGINT; want within seconds", took)
		}
		t.Logf("exit %s after SIGINT, cleanup included", took.Round(time.Millisecond))
		k.nothingLeft(t)
	})

	// The agents are real Pods on real nodes: interrupt while they probe.
	t.Run("sigint_during_probing", func(t *testing.T) {
		cmd, stderr := k.start(t)
		waitFor(t, stderr, "probing")
		start := time.Now()
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != cli.ExitNoRun {
			t.Errorf("after SIGINT while probing: %v; want exit 2", err)
		}
		t.Logf("exit %s after SIGINT while probing, cleanup included", time.Since(start).Round(time.Millisecond))
		k.nothingLeft(t)
	})

	t.Run("cleanup_after_sigkill_during_probing", func(t *testing.T) {
		cmd, stderr := k.start(t)
		waitFor(t, stderr, "probing")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		left := k.env.Labelled(t, deploy.ManagedByLabel+"="+deploy.ManagedBy)
		if len(left) == 0 {
			t.Fatalf("a run SIGKILLed while probing left nothing: the test proves nothing")
		}
		t.Logf("left by the SIGKILLed run: %v", left)
		code, out, errOut := run(t, "cleanup", "--kubeconfig", k.alice)
		if code != cli.ExitOK {
			t.Errorf("podpath cleanup: exit %d:\n%s\n%s", code, out, errOut)
		}
		// cleanup deletes the namespaces; the namespace controller and the
		// kubelets take a few seconds to finish that.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			if len(k.env.Labelled(t, deploy.ManagedByLabel+"="+deploy.ManagedBy)) == 0 || time.Now().After(deadline) {
				break
			}
		}
		k.nothingLeft(t)
		// Its agents' Pods are gone from the nodes too, not only from the API.
		k.noAgentContainers(t)
	})

	t.Run("second_run_after_sigkill", func(t *testing.T) {
		cmd, stderr := k.start(t)
		waitFor(t, stderr, "waiting up to")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if left := k.env.Labelled(t, deploy.ManagedByLabel+"="+deploy.ManagedBy); len(left) == 0 {
			t.Fatalf("a SIGKILLed run left nothing: the test proves nothing")
		}
		r, code, errOut := k.doctor(t)
		if code != cli.ExitOK || !strings.Contains(errOut, "removing what an interrupted run left") {
			t.Errorf("second run: exit %d, findings %s, stderr:\n%s\nwant exit 0 after removing the leftovers", code, summary(r), errOut)
		}
		k.nothingLeft(t)
	})

	// Last: it changes the cluster's MTU for good.
	t.Run("fix_mtu_with_inventory", func(t *testing.T) { fixKubespray(t, k) })
}

// fixKubespray: on a Kubespray install the fix sets FelixConfiguration's
// vxlanMTU in the cluster and calico_mtu in the inventory, comments kept.
func fixKubespray(t *testing.T, k *kubeCluster) {
	fault(t, k.lab, "underlay-mtu=node3:1400")
	inv := filepath.Join(t.TempDir(), "mycluster")
	file := filepath.Join(inv, "group_vars", "k8s_cluster", "k8s-net-calico.yml")
	sample, err := os.ReadFile("../../../shared/fixtures/kubespray/k8s-net-calico.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := k.fix(t, "--apply", "--kubespray-inventory", inv)
	checkApplied(t, code, out)
	if !strings.Contains(out, "set FelixConfiguration default spec.vxlanMTU: 1450 → 1350") ||
		!strings.Contains(out, "+calico_mtu: 1350") || strings.Contains(out, "next Kubespray run reverts") {
		t.Errorf("--apply --kubespray-inventory: exit %d; want Felix's vxlanMTU and the inventory changed:\n%s", code, out)
	}
	if now, _ := os.ReadFile(file); string(now) != strings.Replace(string(sample), "# calico_mtu: 1500\n", "calico_mtu: 1350\n", 1) {
		t.Errorf("inventory after the fix:\n%s", now)
	}
	k.restartCoreDNS(t)
	r, code, _ := k.doctor(t)
	checkFixed(t, r, code)
	k.nothingLeft(t)
}

// noAgentContainers checks that no node's containerd still runs a
// container of a podpath run: deleted Pods are gone from the nodes, not
// only from the API server.
func (k *kubeCluster) noAgentContainers(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		var left []string
		for _, n := range k.lab.Spec.Nodes {
			// containerd's own view, as `ctr` on the node shows it.
			cmd, err := k.lab.NodeCommand(context.Background(), n.Name, "ctr", "containers", "list", "-q",
				`labels."io.kubernetes.pod.namespace"~=^podpath-`)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("list %s's containers: %v", n.Name, err)
			}
			for _, id := range strings.Fields(string(out)) {
				left = append(left, n.Name+": "+id)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers of podpath runs still on the nodes a minute after their namespace went: %v", left)
		}
	}
}

// start runs podpath doctor as a process (signals need one) and returns
// its stderr lines.
func (k *kubeCluster) start(t *testing.T) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(podpathBin, "doctor", "--kubeconfig", k.alice)
	pipe, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		pw.Close()
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody listens any more; keep draining
			}
		}
		close(lines)
	}()
	return cmd, lines
}

func waitFor(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	var seen bytes.Buffer
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("podpath exited before printing %q:\n%s", want, seen.String())
			}
			fmt.Fprintln(&seen, l)
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within 60 s:\n%s", want, seen.String())
		}
	}
}

// The operator flavour: the remedy is the Installation patch.
func TestKubeDoctorOperator(t *testing.T) {
	k := newKubeCluster(t, "operator")
	fault(t, k.lab, "underlay-mtu=node3:1400")
	r, code, _ := k.doctor(t)
	f := finding(r, diagnose.MTUBlackhole)
	if code != cli.ExitFindings || f == nil || !slices.Contains(f.Nodes, "node3") || f.Remedy == nil || f.Remedy.MTU != 1350 {
		t.Fatalf("exit %d, findings %s; want exit 1 and mtu-blackhole on node3 with remedy.mtu 1350", code, summary(r))
	}
	if c := r.Config; c == nil || c.Install != "operator" || c.Backend != "vxlan" || c.PodMTU != 1450 {
		t.Errorf("config %+v; want operator install, vxlan, Pod MTU 1450 (Installation status)", c)
	}
	want := `kubectl patch installation.operator.tigera.io default --type merge -p '{"spec":{"calicoNetwork":{"mtu":1350}}}'`
	if !slices.Contains(f.Remedy.Commands, want) || strings.Contains(strings.Join(f.Remedy.Commands, "\n"), "calico-config") {
		t.Errorf("remedy commands %q; want the Installation patch %q and no ConfigMap", f.Remedy.Commands, want)
	}
	k.nothingLeft(t)
}

// A cordoned NotReady node is reported as such: no agent there, no network
// finding about it.
func TestKubeDoctorNotReadyNode(t *testing.T) {
	k := newKubeCluster(t, "kubespray", "node3")
	r, code, _ := k.doctor(t)
	f := finding(r, diagnose.NodeNotReady)
	if f == nil || !slices.Equal(f.Nodes, []string{"node3"}) || !strings.Contains(strings.Join(f.Evidence, " "), "cordoned") {
		t.Errorf("findings %s; want node-not-ready on node3, cordoned", summary(r))
	}
	for _, bad := range []string{diagnose.PodNetworkPartition, diagnose.NodeUnreachable} {
		if finding(r, bad) != nil {
			t.Errorf("findings %s include %s for a node that is merely NotReady", summary(r), bad)
		}
	}
	for _, p := range r.Pairs.All() {
		if p.From == "node3" || p.To == "node3" {
			t.Errorf("pair %s→%s probed; node3 is NotReady", p.From, p.To)
		}
	}
	if code != cli.ExitOK {
		t.Errorf("exit %d; want 0 (a NotReady node is a warning, the network is fine)", code)
	}
	if c := r.Config; c == nil || !slices.Equal(c.NotReady, []string{"node3"}) {
		t.Errorf("config %+v; want node3 listed NotReady", c)
	}
	k.nothingLeft(t)
}

// Errors before anything is deployed: one line, exit 2, nothing created.
func TestKubeBadAccess(t *testing.T) {
	dir := t.TempDir()
	// Not the machine's own kubeconfig: an empty one.
	empty := filepath.Join(dir, "empty.kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", empty)
	bad := filepath.Join(dir, "bad.kubeconfig")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nclusters: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsageError(t, "kubeconfig: error loading config file", "doctor", "--kubeconfig", bad)
	wantUsageError(t, "kubeconfig: stat", "mtu", "--kubeconfig", filepath.Join(dir, "missing"))
	wantUsageError(t, "cannot reach the API server at https://127.0.0.1:1: connection failed: connection refused",
		"perf", "--server", "https://127.0.0.1:1", "--insecure-skip-tls-verify")
}

// The Pod-network agent exactly as the doctor ships it, in a namespace that
// enforces the restricted Pod Security level: admitted, started by a real
// runtime under what restricted demands (non-root, every capability
// dropped, no privilege escalation, seccomp RuntimeDefault), and measuring:
// DF probes between Pods on different nodes find the Pod MTU.
func TestKubePodAgentRestricted(t *testing.T) {
	k := newKubeCluster(t, "kubespray")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := deploy.NewRun(k.cs, k.dyn, discovery.NewDiscoveryClientForConfigOrDie(k.env.Config), deploy.Options{Image: cli.DefaultImage()})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Install(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Cleanup(context.Background()) })
	shipped, err := k.cs.AppsV1().DaemonSets(run.Namespace).Get(ctx, "podpath-pod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := k.cs.CoreV1().Secrets(run.Namespace).Get(ctx, "podpath-agent-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "psa-restricted"
	if _, err := k.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if _, err := k.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podpath-agent"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: token.Name}, Data: token.Data}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "podpath-pod", Namespace: ns}, Spec: *shipped.Spec.DeepCopy()}
	if _, err := k.cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the shipped Pod agent under restricted: %v", err)
	}
	var pods []corev1.Pod
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		list, err := k.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		pods = nil
		if err == nil {
			for _, p := range list.Items {
				if podReadyCond(&p) {
					pods = append(pods, p)
				}
			}
		}
		if len(pods) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 restricted Pod agents Ready after 2 minutes (%v)", len(pods), err)
		}
	}
	// What the runtime was asked to enforce is what internal/deploy ships.
	for _, p := range pods {
		sc, csc := p.Spec.SecurityContext, p.Spec.Containers[0].SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 {
			t.Errorf("%s runs with %+v / %+v; want the shipped restricted settings", p.Name, sc, csc)
		}
	}
	// Measure with them, from node1's network as a controller there would.
	var peers []agent.Peer
	for _, p := range pods {
		peers = append(peers, agent.Peer{Name: p.Name, Address: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(deploy.AgentPort))})
	}
	for _, p := range pods {
		c := agent.NewClient(p.Name, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(deploy.AgentPort)), string(token.Data["token"]), k.lab.Spec.Nodes[0].Netns)
		if err := c.SetPeers(ctx, peers); err != nil {
			t.Fatalf("%s: set peers: %v", p.Spec.NodeName, err)
		}
		var targets []string
		for _, q := range pods {
			if q.Spec.NodeName != p.Spec.NodeName {
				targets = append(targets, q.Name)
			}
		}
		res, err := c.Probe(ctx, agent.ProbeRequest{Targets: targets, PathMTU: true})
		if err != nil {
			t.Fatalf("%s: probe: %v", p.Spec.NodeName, err)
		}
		for _, r := range res.Results {
			if !r.Reachable || r.PathMTU == nil || r.PathMTU.PathMTU != 1450 {
				t.Errorf("restricted agent %s → %s: reachable %v, path MTU %+v (%s); want 1450", p.Spec.NodeName, r.Peer, r.Reachable, r.PathMTU, r.PathMTUError)
			}
		}
	}
}

func podReadyCond(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
