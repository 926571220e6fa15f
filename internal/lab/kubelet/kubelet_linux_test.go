package kubelet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/deploy"
	"podpath/internal/kubeobj"
	"podpath/internal/kubetest"
	"podpath/internal/lab"
	"podpath/internal/nsenter"
)

const testNS = "podpath-test"

// The lab kubelet end to end, against the real control plane: nodes
// registered as asked, podpath's own DaemonSets run as real agents in the
// lab (host network and Pod network, as uid 65534), reachable through the
// API server's Pod proxy via the egress proxy, a Pod without a free Pod
// namespace waits and then takes the one a deletion frees, a namespace
// deletion finishes, and Stop leaves nothing behind.
func TestKubeletRunsAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane and a lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for the lab's network namespaces (CI runs as root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := testLab(t, ctx)
	sock := filepath.Join(t.TempDir(), "egress.sock")
	stopEgress, err := ServeEgress(ctx, l, sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopEgress()
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("egress socket %s still there after stop", sock)
		}
	})
	env := kubetest.StartWith(t, kubetest.Options{Controllers: true, EgressSocket: sock})
	cs := kubernetes.NewForConfigOrDie(env.Config)

	kcfg := rest.CopyConfig(env.Config)
	kcfg.QPS, kcfg.Burst = 50, 100 // a kubelet's own client
	start := time.Now()
	k, err := Start(ctx, kubernetes.NewForConfigOrDie(kcfg), Options{Lab: l, Binary: podpathBin, NotReady: []string{"node3"}, Cordoned: []string{"node3"}, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	checkNodes(t, ctx, cs)

	token := randHex(16)
	applyAgents(t, ctx, env, token)
	t.Logf("agents applied: +%.3fs", time.Since(start).Seconds())
	pods := waitFor(t, "the agents Ready on node1 and node2", 45*time.Second, func() ([]corev1.Pod, bool) {
		list, err := cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{LabelSelector: deploy.ManagedByLabel + "=" + deploy.ManagedBy})
		if err != nil || len(list.Items) != 4 {
			return nil, false
		}
		for _, p := range list.Items {
			if !podReady(&p) {
				return nil, false
			}
		}
		return list.Items, true
	})
	t.Logf("kubelet start to 4 agents Ready: %s", time.Since(start).Round(time.Millisecond))

	var hostAgent, podAgent corev1.Pod
	for _, p := range pods {
		n, err := l.Spec.Node(p.Spec.NodeName)
		if err != nil || n.Name == "node3" {
			t.Fatalf("agent %s on node %q", p.Name, p.Spec.NodeName)
		}
		want := n.Address
		if !p.Spec.HostNetwork {
			want = n.Pods[0].Address
		}
		if p.Status.PodIP != want.String() || p.Status.HostIP != n.Address.String() {
			t.Errorf("%s on %s: podIP %s, hostIP %s; want %s, %s", p.Name, n.Name, p.Status.PodIP, p.Status.HostIP, want, n.Address)
		}
		switch {
		case p.Spec.HostNetwork && n.Name == "node1":
			hostAgent = p
		case !p.Spec.HostNetwork && n.Name == "node2":
			podAgent = p
		}
	}
	checkDaemonSets(t, ctx, cs)

	// Through the API server's Pod proxy, which the egress proxy carries into the lab.
	for _, p := range []corev1.Pod{hostAgent, podAgent} {
		if code, body := proxyGet(ctx, cs, p.Name, "healthz", nil); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Errorf("GET %s:7946/healthz through the Pod proxy = %d %q; want 200 ok", p.Name, code, body)
		}
	}
	// The proxy consumes the caller's Authorization header: the agent's
	// token must travel in its own header.
	if code, _ := proxyGet(ctx, cs, podAgent.Name, "v1/peers", map[string]string{"Authorization": "Bearer " + token}); code != http.StatusUnauthorized {
		t.Errorf("GET v1/peers with Authorization through the Pod proxy = %d; want 401 (the API server strips it)", code)
	}
	if code, body := proxyGet(ctx, cs, podAgent.Name, "v1/peers", map[string]string{"X-Podpath-Token": token}); code != http.StatusOK {
		t.Errorf("GET v1/peers with X-Podpath-Token through the Pod proxy = %d %s; want 200", code, body)
	}
	checkEgressRefusesOutside(t, sock)

	// The processes: where and as whom they run.
	node1, _ := l.Spec.Node("node1")
	node2, _ := l.Spec.Node("node2")
	hostPID, podPID := pidOf(t, &hostAgent), pidOf(t, &podAgent)
	checkProcess(t, hostPID, 0, node1.Netns)
	checkProcess(t, podPID, 65534, node2.Pods[0].Netns)
	checkPingGroupRange(t, node2.Pods[0].Netns)

	checkOtherPods(t, ctx, cs, l)

	// node1's only Pod namespace is the agent's: a second Pod-network agent waits.
	waiter := createWaiter(t, ctx, cs, token)
	waitFor(t, "the waiting agent Pending for want of a Pod namespace", 15*time.Second, func() (struct{}, bool) {
		p, err := cs.CoreV1().Pods(waiter.Namespace).Get(ctx, waiter.Name, metav1.GetOptions{})
		return struct{}{}, err == nil && p.Status.Phase == corev1.PodPending && p.Status.Reason == "NoPodNamespace" &&
			strings.Contains(p.Status.Message, "no free lab Pod namespace on node1")
	})

	// Deleting the namespace: the kubelet ends the agents and confirms.
	delStart := time.Now()
	if err := cs.CoreV1().Namespaces().Delete(ctx, testNS, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "namespace "+testNS+" deleted", 60*time.Second, func() (struct{}, bool) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, testNS, metav1.GetOptions{})
		return struct{}{}, apierrors.IsNotFound(err)
	})
	t.Logf("namespace deletion: %s", time.Since(delStart).Round(time.Millisecond))
	for _, pid := range []int{hostPID, podPID} {
		if alive(pid) {
			t.Errorf("agent pid %d still running after its namespace was deleted", pid)
		}
	}

	// The freed Pod namespace goes to the waiting agent.
	p := waitFor(t, "the waiting agent Ready in the freed Pod namespace", 20*time.Second, func() (*corev1.Pod, bool) {
		p, err := cs.CoreV1().Pods(waiter.Namespace).Get(ctx, waiter.Name, metav1.GetOptions{})
		return p, err == nil && podReady(p)
	})
	if p.Status.PodIP != node1.Pods[0].Address.String() {
		t.Errorf("waiting agent's podIP = %s; want %s", p.Status.PodIP, node1.Pods[0].Address)
	}
	waiterPID := pidOf(t, p)
	checkProcess(t, waiterPID, 65534, node1.Pods[0].Netns)

	// A container that dies is restarted (restartPolicy Always), and says so.
	if err := syscall.Kill(waiterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p = waitFor(t, "the killed agent restarted", 15*time.Second, func() (*corev1.Pod, bool) {
		p, err := cs.CoreV1().Pods(waiter.Namespace).Get(ctx, waiter.Name, metav1.GetOptions{})
		return p, err == nil && podReady(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 137 {
		t.Errorf("last termination of the killed agent = %+v; want exit code 137", last)
	}
	waiterPID = pidOf(t, p)

	k.Stop()
	if alive(waiterPID) {
		t.Errorf("agent pid %d still running after Stop", waiterPID)
	}
	if left := processesOf(podpathBin); len(left) > 0 {
		t.Errorf("podpath processes left after Stop: %v", left)
	}
	if _, err := os.Stat(k.root); !os.IsNotExist(err) {
		t.Errorf("kubelet directory %s still there after Stop", k.root)
	}
	k.Stop() // idempotent
}

// testLab builds a 3-node VXLAN lab with a unique name, removed when the test ends.
func testLab(t *testing.T, ctx context.Context) *lab.Lab {
	t.Helper()
	l, err := lab.New("k" + randHex(3)).Nodes(3).Backend(lab.BackendVXLAN).Up(ctx)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), l.Spec.Name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testLog sends the kubelet's lines to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor[T any](t *testing.T, what string, timeout time.Duration, cond func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := cond()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func checkNodes(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	for name, want := range map[string]corev1.ConditionStatus{"node1": corev1.ConditionTrue, "node2": corev1.ConditionTrue, "node3": corev1.ConditionFalse} {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ready corev1.ConditionStatus
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status
			}
		}
		if ready != want {
			t.Errorf("%s Ready = %q; want %q", name, ready, want)
		}
		if got := n.Spec.Unschedulable; got != (name == "node3") {
			t.Errorf("%s unschedulable = %v", name, got)
		}
		if n.Annotations[annotVXLANAddr] == "" || !strings.Contains(n.Annotations[annotIPv4Address], "/16") {
			t.Errorf("%s Calico annotations = %v", name, n.Annotations)
		}
	}
	if _, err := cs.CoordinationV1().Leases(leaseNamespace).Get(ctx, "node3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node3 (dead kubelet) has a Lease: %v", err)
	}
}

// applyAgents creates the run's objects as deploy renders them, keeping the
// DaemonSets off node3 as the CLI does for NotReady nodes: a Pod there would
// never be confirmed deleted, and the namespace would never go.
func applyAgents(t *testing.T, ctx context.Context, env *kubetest.Env, token string) {
	t.Helper()
	data, err := deploy.Render("test", testNS, "podpath:test", token)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubeobj.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, o := range objs {
		if o.GetKind() == "DaemonSet" {
			affinity := map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
				"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{
					"key": "kubernetes.io/hostname", "operator": "NotIn", "values": []any{"node3"}}}}}}}}
			if err := unstructured.SetNestedField(o.Object, affinity, "spec", "template", "spec", "affinity"); err != nil {
				t.Fatal(err)
			}
		}
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	if err := env.ApplyBytes(ctx, []byte(strings.Join(docs, "\n---\n"))); err != nil {
		t.Fatalf("apply agents: %v", err)
	}
}

func checkDaemonSets(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	waitFor(t, "DaemonSet status 2/2 ready", 15*time.Second, func() (struct{}, bool) {
		for _, name := range []string{"podpath-host", "podpath-pod"} {
			ds, err := cs.AppsV1().DaemonSets(testNS).Get(ctx, name, metav1.GetOptions{})
			if err != nil || ds.Status.DesiredNumberScheduled != 2 || ds.Status.NumberReady != 2 {
				return struct{}{}, false
			}
		}
		return struct{}{}, true
	})
}

// proxyGet GETs an agent's path through the API server's Pod proxy.
func proxyGet(ctx context.Context, cs kubernetes.Interface, pod, path string, header map[string]string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := cs.CoreV1().RESTClient().Get().Namespace(testNS).Resource("pods").Name(pod + ":7946").SubResource("proxy").Suffix(path)
	for k, v := range header {
		req.SetHeader(k, v)
	}
	var code int
	res := req.Do(ctx).StatusCode(&code)
	body, err := res.Raw()
	if err != nil && len(body) == 0 {
		body = []byte(err.Error())
	}
	return code, string(body)
}

func checkEgressRefusesOutside(t *testing.T, sock string) {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT to an address outside the lab = %d; want 403", resp.StatusCode)
	}
}

// pidOf is a Pod's agent process, from its container ID "lab://PID".
func pidOf(t *testing.T, p *corev1.Pod) int {
	t.Helper()
	var pid int
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("%s has no container status", p.Name)
	}
	if _, err := fmt.Sscanf(p.Status.ContainerStatuses[0].ContainerID, "lab://%d", &pid); err != nil {
		t.Fatalf("%s container ID %q: %v", p.Name, p.Status.ContainerStatuses[0].ContainerID, err)
	}
	return pid
}

// checkProcess asserts a process runs as uid in the named network namespace.
func checkProcess(t *testing.T, pid, uid int, netns string) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" && f[1] != fmt.Sprint(uid) {
			t.Errorf("pid %d runs as uid %s; want %d", pid, f[1], uid)
		}
	}
	var got, want syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &got); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/run/netns/"+netns, &want); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || got.Dev != want.Dev {
		t.Errorf("pid %d is not in network namespace %s", pid, netns)
	}
}

func checkPingGroupRange(t *testing.T, netns string) {
	t.Helper()
	var v []byte
	if err := nsenter.Do(netns, func() (err error) {
		v, err = os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(string(v)), " "); got != "0 2147483647" {
		t.Errorf("ping_group_range in %s = %q; want 0 2147483647", netns, got)
	}
}

// checkOtherPods: calico-node is reported running without a process; any
// other Pod stays Pending and says why.
func checkOtherPods(t *testing.T, ctx context.Context, cs kubernetes.Interface, l *lab.Lab) {
	t.Helper()
	grace := int64(2) // as the agents': the namespace controller waits out the longest
	calico := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "calico-node-x", Labels: map[string]string{"k8s-app": "calico-node"}},
		Spec: corev1.PodSpec{NodeName: "node1", HostNetwork: true, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "calico-node", Image: "calico/node:v3"}}}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{NodeName: "node2", AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}
	for _, p := range []*corev1.Pod{calico, other} {
		createPod(t, ctx, cs, testNS, p)
	}
	node1, _ := l.Spec.Node("node1")
	waitFor(t, "calico-node Running and Ready", 15*time.Second, func() (struct{}, bool) {
		p, err := cs.CoreV1().Pods(testNS).Get(ctx, calico.Name, metav1.GetOptions{})
		return struct{}{}, err == nil && podReady(p) && p.Status.Phase == corev1.PodRunning && p.Status.PodIP == node1.Address.String()
	})
	waitFor(t, "another Pod Pending, saying why", 15*time.Second, func() (struct{}, bool) {
		p, err := cs.CoreV1().Pods(testNS).Get(ctx, other.Name, metav1.GetOptions{})
		return struct{}{}, err == nil && p.Status.Phase == corev1.PodPending && p.Status.Message == unsupportedMessage
	})
}

// createPod creates a Pod, retrying while its namespace's default
// ServiceAccount does not exist yet (admission refuses the Pod until then).
func createPod(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string, p *corev1.Pod) {
	t.Helper()
	waitFor(t, "create Pod "+p.Name, 15*time.Second, func() (struct{}, bool) {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil && !apierrors.IsForbidden(err) && !apierrors.IsServerTimeout(err) {
			t.Fatalf("create Pod %s: %v", p.Name, err)
		}
		return struct{}{}, err == nil
	})
}

// createWaiter creates a bare Pod-network agent on node1, in a namespace
// of its own, with its token in a Secret.
func createWaiter(t *testing.T, ctx context.Context, cs kubernetes.Interface, token string) *corev1.Pod {
	t.Helper()
	const ns = "podpath-wait"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tok"}, StringData: map[string]string{"token": token}}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	uid := int64(65534)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "waiter", Namespace: ns},
		Spec: corev1.PodSpec{NodeName: "node1", AutomountServiceAccountToken: new(bool),
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &uid},
			Containers: []corev1.Container{{Name: "agent", Image: "podpath:test",
				Args:         []string{"agent", "--listen", "0.0.0.0:7946", "--role", "pod", "--name", "$(POD_NAME)", "--token-file", "/etc/podpath/token"},
				Env:          []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/etc/podpath"}}}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tok"}}}}}}
	createPod(t, ctx, cs, ns, p)
	return p
}

func alive(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && exe == podpathBin
}

// processesOf lists the PIDs running bin.
func processesOf(bin string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == bin {
			out = append(out, e.Name())
		}
	}
	return out
}
