package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/kubetest"
	"podpath/internal/lab"
	"podpath/internal/lab/kubelet"
	"podpath/internal/model"
	"podpath/internal/report"
)

const calicoFixtures = "../../../shared/fixtures/calico"

// kubeCluster is the lab made a Kubernetes cluster: a real control plane
// whose Pod proxy reaches into the lab, the lab kubelet on its nodes, and
// Calico's objects as an install of the given flavour leaves them.
type kubeCluster struct {
	lab   *lab.Lab
	env   *kubetest.Env
	cs    kubernetes.Interface
	dyn   dynamic.Interface
	alice string // kubeconfig of a user bound only to deploy/rbac.yaml's ClusterRole
}

// Objects of a Kubespray VXLAN install (manifest flavour): calico_mtu
// unset, so Calico auto-detects the MTU; Kubespray's calico-config has no
// veth_mtu and FelixConfiguration default carries the VXLAN settings.
const kubesprayObjects = `
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-pool}
spec: {cidr: 10.233.64.0/18, blockSize: 26, vxlanMode: Always, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
---
apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata: {name: default}
spec: {vxlanEnabled: true, vxlanPort: 4789, vxlanVNI: 4096, vxlanMTU: 1450, logSeverityScreen: Info}
---
apiVersion: crd.projectcalico.org/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false, serviceClusterIPs: [{cidr: 10.233.0.0/18}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: calico-config, namespace: kube-system}
data:
  cluster_type: kubespray
  calico_backend: vxlan
  cni_network_config: '{"name": "cni0", "cniVersion": "0.3.1", "plugins": [{"type": "calico", "datastore_type": "kubernetes", "nodename": "__KUBERNETES_NODE_NAME__", "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}'
` + calicoNodeDS

// manifestPool is the pool calico-node creates at first start from the
// manifest's CALICO_IPV4POOL_VXLAN (the CIDR set to the lab's).
const manifestPool = `
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 10.233.64.0/18, blockSize: 26, vxlanMode: CrossSubnet, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
`

// The operator flavour: the Installation (status.mtu is what the operator
// reports), the pool it creates, calico-node in calico-system.
const operatorObjects = `
apiVersion: operator.tigera.io/v1
kind: Installation
metadata: {name: default}
spec:
  calicoNetwork:
    ipPools:
      - {name: default-ipv4-ippool, blockSize: 26, cidr: 10.233.64.0/18, encapsulation: VXLAN, natOutgoing: Enabled, nodeSelector: all()}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 10.233.64.0/18, blockSize: 26, vxlanMode: Always, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
---
apiVersion: v1
kind: Namespace
metadata: {name: calico-system}
` + calicoNodeDS

// calicoNodeDS is Calico's node DaemonSet, trimmed to what the API server
// and the lab kubelet look at (namespace set per flavour).
const calicoNodeDS = `---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: NAMESPACE, labels: {k8s-app: calico-node}}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
        - name: calico-node
          image: calico/node:v3.30.0
          env: [{name: CALICO_NETWORKING_BACKEND, value: vxlan}]
`

func newKubeCluster(t *testing.T, flavour string, notReady ...string) *kubeCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := testLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	// The egress proxy and the kubelet live as long as the test.
	life, end := context.WithCancel(context.Background())
	t.Cleanup(end)
	sock := filepath.Join(t.TempDir(), "egress.sock")
	stopEgress, err := kubelet.ServeEgress(life, l, sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopEgress)
	env := kubetest.StartWith(t, kubetest.Options{Controllers: true, EgressSocket: sock})
	k := &kubeCluster{lab: l, env: env, cs: kubernetes.NewForConfigOrDie(env.Config), dyn: dynamic.NewForConfigOrDie(env.Config)}

	crds, _ := filepath.Glob(filepath.Join(calicoFixtures, "crds-v1", "*.yaml"))
	for _, f := range crds {
		env.Apply(t, f)
	}
	objects := strings.ReplaceAll(kubesprayObjects, "NAMESPACE", "kube-system")
	switch flavour {
	case "operator":
		env.Apply(t, filepath.Join(calicoFixtures, "operator", "operator.tigera.io_installations.yaml"))
		objects = strings.ReplaceAll(operatorObjects, "NAMESPACE", "calico-system")
	case "manifest":
		// Calico's own manifest, unchanged, and the pool calico-node creates
		// from its CALICO_IPV4POOL_* settings.
		env.Apply(t, filepath.Join(calicoFixtures, "manifests", "calico-vxlan.yaml"))
		objects = manifestPool
	}
	if err := env.ApplyBytes(ctx, []byte(objects)); err != nil {
		t.Fatal(err)
	}
	if flavour == "operator" {
		inst := k.dyn.Resource(installationGVR)
		u, err := inst.Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(u.Object, int64(1450), "status", "mtu")
		if _, err := inst.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("Installation status: %v", err)
		}
	}

	kcfg := rest.CopyConfig(env.Config)
	kcfg.QPS, kcfg.Burst = 50, 100 // a kubelet's own client, as a real one has
	kl, err := kubelet.Start(life, kubernetes.NewForConfigOrDie(kcfg), kubelet.Options{Lab: l, Binary: podpathBin,
		NotReady: notReady, Cordoned: notReady, Dynamic: dynamic.NewForConfigOrDie(kcfg)})
	if err != nil {
		t.Fatalf("lab kubelet: %v", err)
	}
	t.Cleanup(kl.Stop)

	// calico-node runs on every Ready node before anyone runs a doctor
	// (on a NotReady node its Pod stays Pending, as in a real cluster).
	dsNS := map[string]string{"operator": "calico-system"}[flavour]
	if dsNS == "" {
		dsNS = "kube-system"
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		ds, err := k.cs.AppsV1().DaemonSets(dsNS).Get(ctx, "calico-node", metav1.GetOptions{})
		if err == nil && ds.Status.DesiredNumberScheduled == 3 && ds.Status.NumberReady == int32(3-len(notReady)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calico-node not ready on the lab's nodes: %+v %v", ds.Status, err)
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

// doctor runs `podpath doctor` against the cluster as alice.
func (k *kubeCluster) doctor(t *testing.T, args ...string) (*model.Report, int, string) {
	t.Helper()
	start := time.Now()
	code, out, errOut := run(t, append([]string{"doctor", "--kubeconfig", k.alice, "--image", "podpath/podpath:test", "-o", "json"}, args...)...)
	t.Logf("doctor took %s:\n%s", time.Since(start), errOut)
	if code == ExitNoRun {
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
		if code != ExitFindings || f == nil || !slices.Contains(f.Nodes, "node3") || f.Remedy == nil || f.Remedy.MTU != 1350 {
			t.Fatalf("exit %d, findings %s; want exit 1 and mtu-blackhole on node3 with remedy.mtu 1350", code, summary(r))
		}
		var text bytes.Buffer
		report.DoctorText(&text, r)
		t.Logf("the report as a user reads it:\n%s", text.String())
		c := r.Config
		if c == nil || c.Source != "cluster" || c.Install != "kubespray" || c.Backend != "vxlan" || c.PodMTU != 1450 {
			t.Errorf("config %+v; want the cluster's: Kubespray (manifest) install, vxlan, Pod MTU 1450", c)
		}
		// The lab kubelet serves no logs: the run says so and goes on.
		if c != nil && !strings.Contains(strings.Join(c.Notes, "\n"), "calico-node logs unavailable") {
			t.Errorf("config notes %q; want the reason calico-node's logs could not be read", c.Notes)
		}
		evidence := strings.Join(f.Evidence, "\n")
		for _, want := range []string{"IPPool default-pool vxlanMode Always", "FelixConfiguration default vxlanMTU"} {
			if !strings.Contains(evidence, want) {
				t.Errorf("mtu-blackhole evidence lacks %q:\n%s", want, evidence)
			}
		}
		// mtu through the cluster too: the same agents' view, byte-exact.
		code, out, errOut := run(t, "mtu", "--kubeconfig", k.alice, "--image", "podpath/podpath:test", "-o", "json")
		var m model.Report
		if err := json.Unmarshal([]byte(out), &m); code != ExitOK || err != nil {
			t.Fatalf("mtu: exit %d, %v: %s", code, err, errOut)
		}
		for _, p := range m.Pairs {
			want := map[model.Layer]int{model.LayerNode: 1500, model.LayerPod: 1450}[p.Layer]
			if p.From == "node3" || p.To == "node3" {
				want -= 100
			}
			if p.PathMTU != want {
				t.Errorf("mtu %s %s→%s = %d; want %d", p.Layer, p.From, p.To, p.PathMTU, want)
			}
		}
		if len(m.Pairs) != 12 {
			t.Errorf("mtu measured %d pairs; want 12 (6 ordered pairs on each layer)", len(m.Pairs))
		}
		// Kubespray keeps the MTU in its inventory: a kubectl-only fix would be reverted.
		if cmds := strings.Join(f.Remedy.Commands, "\n"); !strings.Contains(f.Remedy.Summary, "calico_mtu: 1350") ||
			!strings.Contains(cmds, "--inventory-dir") || strings.Contains(cmds, "installation") {
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
		if code != ExitOK {
			t.Errorf("healthy cluster with a misleading IPPool: exit %d (%s); want 0 (a warning)", code, summary(r))
		}
		k.nothingLeft(t)
	})

	// A second run while one is in progress leaves it alone and says so.
	t.Run("concurrent_run_refused", func(t *testing.T) {
		first, stderr := k.start(t)
		waitFor(t, stderr, "waiting up to")
		code, _, errOut := run(t, "doctor", "--kubeconfig", k.alice, "--image", "podpath/podpath:test", "-o", "json")
		if code != ExitNoRun || !strings.Contains(errOut, "another podpath run is in progress (namespace podpath-") || strings.Contains(errOut, "removing what") {
			t.Errorf("second run during the first: exit %d; want exit 2 naming the live run, nothing removed:\n%s", code, errOut)
		}
		err := first.Wait()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() == ExitNoRun) {
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
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitNoRun {
			t.Errorf("after SIGINT: %v; want exit 2", err)
		}
		if took > 15*time.Second {
			t.Errorf("exit %s after SIGINT; want within seconds", took)
		}
		t.Logf("exit %s after SIGINT, cleanup included", took.Round(time.Millisecond))
		k.nothingLeft(t)
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
		if code != ExitOK || !strings.Contains(errOut, "removing what an interrupted run left") {
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
	code, out, _ := k.fix(t, "--apply", "--inventory-dir", inv)
	if code != ExitOK || !strings.Contains(out, "set FelixConfiguration default spec.vxlanMTU: 1450 → 1350") ||
		!strings.Contains(out, "+calico_mtu: 1350") || strings.Contains(out, "next Kubespray run reverts") {
		t.Errorf("--apply --inventory-dir: exit %d; want Felix's vxlanMTU and the inventory changed:\n%s", code, out)
	}
	if now, _ := os.ReadFile(file); string(now) != strings.Replace(string(sample), "# calico_mtu: 1500\n", "calico_mtu: 1350\n", 1) {
		t.Errorf("inventory after the fix:\n%s", now)
	}
	r, code, _ := k.doctor(t)
	checkFixed(t, r, code)
	k.nothingLeft(t)
}

// start runs podpath doctor as a process (signals need one) and returns
// its stderr lines.
func (k *kubeCluster) start(t *testing.T) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(podpathBin, "doctor", "--kubeconfig", k.alice, "--image", "podpath/podpath:test")
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
	if code != ExitFindings || f == nil || !slices.Contains(f.Nodes, "node3") || f.Remedy == nil || f.Remedy.MTU != 1350 {
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
	for _, p := range r.Pairs {
		if p.From == "node3" || p.To == "node3" {
			t.Errorf("pair %s→%s probed; node3 is NotReady", p.From, p.To)
		}
	}
	if code != ExitOK {
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
