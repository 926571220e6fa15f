package kubelet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/kubetest"
	"podpath/internal/lab"
	"podpath/internal/nsenter"
)

// apiCheckEnv, set in a container's environment, makes the test binary
// the in-cluster client apiCheck instead of a test run.
const apiCheckEnv = "PODPATH_TEST_APICHECK"

// Pods reach the API server as in-cluster clients: a hostNetwork Pod (node
// namespace, root) and a Pod-network Pod (lab Pod namespace, uid 65534),
// each with its ServiceAccount's kube-api-access volume, read their own
// Pod and are who a Pod-bound token says, no more than their Role allows.
// The token is one the API server accepts; the forwarders go with their
// last Pod and with Stop.
func TestKubeletPodsReachAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane and a lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for the lab's network namespaces (CI runs as root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.New("a" + randHex(3)).Nodes(1).Backend(lab.BackendVXLAN).Up(ctx)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), l.Spec.Name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	// Controllers: kube-controller-manager publishes kube-root-ca.crt.
	env := kubetest.StartWith(t, kubetest.Options{Controllers: true})
	cs := kubernetes.NewForConfigOrDie(env.Config)
	kcfg := rest.CopyConfig(env.Config)
	kcfg.QPS, kcfg.Burst = 50, 100
	k, err := Start(ctx, kubernetes.NewForConfigOrDie(kcfg), Options{Lab: l, Binary: checkBin, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	t.Logf("lab, control plane and kubelet up: %s", time.Since(start).Round(time.Millisecond))

	const ns, sa = "podpath-api", "checker"
	createReader(t, ctx, cs, ns, sa)
	node := &l.Spec.Nodes[0]
	hostPod := checkPod("host", sa, true, "--service-account-dir", saDir)
	netPod := checkPod("net", sa, false, "--service-account-dir="+saDir)
	nobody := int64(65534)
	netPod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &nobody, RunAsGroup: &nobody}
	for _, p := range []*corev1.Pod{hostPod, netPod} {
		createPod(t, ctx, cs, ns, p)
	}
	caPEM, err := os.ReadFile(filepath.Join(env.Dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{hostPod.Name, netPod.Name} {
		p := waitFor(t, name+"'s check done", 30*time.Second, func() (*corev1.Pod, bool) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return p, err == nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
		})
		pdir := filepath.Join(k.root, ns+"_"+p.Name+"_"+string(p.UID))
		if exit := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; exit.ExitCode != 0 {
			t.Errorf("%s: the in-cluster check exited %d; want 0. Its log:\n%s", name, exit.ExitCode, readLog(pdir))
		} else {
			t.Logf("%s: +%s: %s", name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(readLog(pdir)))
		}
		checkAPIAccessFiles(t, ctx, cs, p, pdir, caPEM)
	}
	if got, want := sorted(k.fwd.open()), sorted([]string{node.Netns, node.Pods[0].Netns}); !slices.Equal(got, want) {
		t.Errorf("forwarders in %v; want %v", got, want)
	}

	// The Pod namespace's last Pod goes: so does its forwarder.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, netPod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, netPod.Name+" deleted", 15*time.Second, func() (struct{}, bool) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, netPod.Name, metav1.GetOptions{})
		return struct{}{}, apierrors.IsNotFound(err)
	})
	if got := k.fwd.open(); !slices.Equal(got, []string{node.Netns}) {
		t.Errorf("forwarders after the Pod-network Pod's deletion in %v; want only %s", got, node.Netns)
	}
	checkNotListening(t, node.Pods[0].Netns)

	k.Stop()
	if got := k.fwd.open(); len(got) > 0 {
		t.Errorf("forwarders after Stop in %v", got)
	}
	checkNotListening(t, node.Netns)
	if left := processesOf(checkBin); len(left) > 0 {
		t.Errorf("check processes left after Stop: %v", left)
	}
	t.Logf("total: %s", time.Since(start).Round(time.Millisecond))
}

// createReader creates the namespace and a ServiceAccount that may only get Pods there.
func createReader(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, sa string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkPod is a Pod on node1 whose container is apiCheck, its service
// account token automounted (the admission plugin adds the volume).
func checkPod(name, sa string, hostNetwork bool, args ...string) *corev1.Pod {
	grace := int64(1)
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: "node1", HostNetwork: hostNetwork, ServiceAccountName: sa, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "check", Image: "podpath:test", Args: append([]string{"agent"}, args...),
				Env: []corev1.EnvVar{{Name: apiCheckEnv, Value: "1"},
					{Name: "POD_NAME", ValueFrom: field("metadata.name")}, {Name: "POD_UID", ValueFrom: field("metadata.uid")}}}}}}
}

// checkAPIAccessFiles: the kube-api-access volume's files on the host are
// an API-server-accepted token bound to the Pod, the cluster's CA and the
// namespace.
func checkAPIAccessFiles(t *testing.T, ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, pdir string, caPEM []byte) {
	t.Helper()
	i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return strings.HasPrefix(v.Name, "kube-api-access-") })
	if i < 0 {
		t.Fatalf("%s has no kube-api-access volume: %+v", p.Name, p.Spec.Volumes)
	}
	vdir := filepath.Join(pdir, "volumes", p.Spec.Volumes[i].Name)
	read := func(file string) string {
		b, err := os.ReadFile(filepath.Join(vdir, file))
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		return string(b)
	}
	if got := read("namespace"); got != p.Namespace {
		t.Errorf("%s: namespace file = %q; want %q", p.Name, got, p.Namespace)
	}
	if got := read("ca.crt"); got != string(caPEM) {
		t.Errorf("%s: ca.crt is not the cluster's CA:\n%s", p.Name, got)
	}
	rev, err := cs.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: read("token")}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := rev.Status.User
	if want := "system:serviceaccount:" + p.Namespace + ":" + p.Spec.ServiceAccountName; !rev.Status.Authenticated || u.Username != want {
		t.Errorf("%s: token review = %v %q (%s); want authenticated as %s", p.Name, rev.Status.Authenticated, u.Username, rev.Status.Error, want)
	}
	if got := u.Extra["authentication.kubernetes.io/pod-uid"]; len(got) != 1 || got[0] != string(p.UID) {
		t.Errorf("%s: token bound to Pod uid %v; want %s", p.Name, got, p.UID)
	}
}

// checkNotListening: nothing answers on the API server's address in netns.
func checkNotListening(t *testing.T, netns string) {
	t.Helper()
	addr := net.JoinHostPort(apiServiceHost, fmt.Sprint(apiServicePort))
	c, err := nsenter.DialContext(context.Background(), netns, &net.Dialer{Timeout: time.Second}, "tcp", addr)
	if err == nil {
		c.Close()
		t.Errorf("%s still answers in %s", addr, netns)
	}
}

// readLog is the check container's log (every run of it so far).
func readLog(pdir string) string {
	b, err := os.ReadFile(filepath.Join(pdir, "check.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// apiCheck is the test Pods' container: from the arguments the kubelet
// gives it ("agent --service-account-dir DIR", either flag form), it builds
// a client as rest.InClusterConfig does, gets its own Pod, and asks the API
// server who it is. Exit 0 only when all holds.
func apiCheck(args []string) int {
	if err := runAPICheck(args); err != nil {
		fmt.Fprintln(os.Stderr, "apicheck:", err)
		return 1
	}
	return 0
}

func runAPICheck(args []string) error {
	if len(args) == 0 || args[0] != "agent" {
		return fmt.Errorf("args %q: want agent --service-account-dir DIR", args)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	dir := fs.String("service-account-dir", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" || *dir == saDir {
		return fmt.Errorf("--service-account-dir %q: not rewritten to the volume", *dir)
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return errors.New("KUBERNETES_SERVICE_HOST or _PORT not set")
	}
	ns, err := os.ReadFile(filepath.Join(*dir, "namespace"))
	if err != nil {
		return err
	}
	cfg := &rest.Config{Host: "https://" + net.JoinHostPort(host, port), BearerTokenFile: filepath.Join(*dir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(*dir, "ca.crt")}, Timeout: 5 * time.Second}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := os.Getenv("POD_NAME")
	pod, err := cs.CoreV1().Pods(string(ns)).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get my Pod %s/%s through %s: %w", ns, name, cfg.Host, err)
	}
	if string(pod.UID) != os.Getenv("POD_UID") {
		return fmt.Errorf("got Pod uid %s; mine is %s", pod.UID, os.Getenv("POD_UID"))
	}
	rev, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	u := rev.Status.UserInfo
	if want := "system:serviceaccount:" + string(ns) + ":" + pod.Spec.ServiceAccountName; u.Username != want {
		return fmt.Errorf("I am %q; want %q", u.Username, want)
	}
	if got := u.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != name {
		return fmt.Errorf("my token is bound to Pod %v; want %s", got, name)
	}
	if _, err := cs.CoreV1().Secrets(string(ns)).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		return fmt.Errorf("list Secrets: %v; want forbidden (the Role allows get pods only)", err)
	}
	fmt.Printf("apicheck: ok: %s/%s (uid %d) as %s through %s\n", ns, name, os.Getuid(), u.Username, cfg.Host)
	return nil
}
