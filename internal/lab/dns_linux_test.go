package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"podpath/internal/nsenter"
	"podpath/internal/probe"
)

// kubeLabBinary builds podpath for a Kubernetes lab: its nodes run it (the
// supervisor, the CNI plugin, calico-node's stand-in, the pause image), and
// this test binary is none of those.
func kubeLabBinary(t *testing.T) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "podpath")
	build := exec.Command("go", "build", "-o", bin, "podpath/cmd/podpath")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the lab serves it as an image FROM scratch
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build podpath for the lab: %v\n%s", err, out)
	}
	old := Binary
	Binary = bin
	t.Cleanup(func() { Binary = old })
}

const (
	dnsTestName  = "kubernetes.default.svc.cluster.local."
	kubernetesIP = "10.233.0.1"
)

// The cluster DNS as Kubespray deploys it: right after lab up, a Pod
// resolves the API server's Service name through 10.233.0.3 (its
// resolv.conf, from the kubelet's clusterDNS). dns-udp-dropped on the node
// of one CoreDNS replica drops UDP queries to it, from a Pod on that node
// and from another node, while TCP to it and UDP to the other replica
// still answer; clearing the fault restores UDP.
func TestKubeClusterDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane and real nodes")
	}
	requireRoot(t)
	kubeLabBinary(t)
	start := time.Now()
	l := testLab(t, New("").Nodes(3).Backend(BackendVXLAN).Kubernetes(CalicoKubespray))
	t.Logf("lab up --kubernetes: %s", time.Since(start).Round(100*time.Millisecond))
	ctx := ctxT(t, 3*time.Minute)
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)

	// Both replicas are Ready (lab up waited for them) on two nodes.
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: DNSLabel})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 || !podReady(&pods.Items[0]) || !podReady(&pods.Items[1]) || pods.Items[0].Spec.NodeName == pods.Items[1].Spec.NodeName {
		for _, p := range pods.Items {
			t.Logf("%s: %s", p.Name, podState(&p))
		}
		t.Fatalf("%d CoreDNS Pods; want 2, Ready, on two nodes", len(pods.Items))
	}
	faulty, other := pods.Items[0], pods.Items[1]
	var remote *Node // a node with no CoreDNS replica
	for i, n := range l.Spec.Nodes {
		if n.Name != faulty.Spec.NodeName && n.Name != other.Spec.NodeName {
			remote = &l.Spec.Nodes[i]
		}
	}

	// A busybox Pod beside the replica to be cut off, as an operator runs it.
	bb := busyboxPod(t, ctx, cs, faulty.Spec.NodeName)
	out, err := exec.CommandContext(ctx, filepath.Join(l.Kube.KubeBin, "kubectl"), "--kubeconfig", l.Kube.Kubeconfig,
		"exec", bb.Name, "--", "nslookup", strings.TrimSuffix(dnsTestName, ".")).CombinedOutput()
	t.Logf("kubectl exec %s -- nslookup %s:\n%s", bb.Name, dnsTestName, out)
	if err != nil || !strings.Contains(string(out), ClusterDNS) || !strings.Contains(string(out), "Address: "+kubernetesIP) {
		t.Fatalf("nslookup in a Pod: %v; want an answer %s from %s", err, kubernetesIP, ClusterDNS)
	}
	bbNetns := podNetns(t, l, bb)

	type check struct {
		from, netns string // netns: a path, or a lab namespace's name
		to          string
		tcp, answer bool
	}
	run := func(cs []check) {
		t.Helper()
		for _, c := range cs {
			proto := map[bool]string{false: "UDP", true: "TCP"}[c.tcp]
			r := dnsQuery(c.netns, c.to, c.tcp)
			switch {
			case c.answer && (!r.OK() || r.Records != 1):
				t.Errorf("%s → %s:53/%s: %+v; want one record, %s", c.from, c.to, proto, r, kubernetesIP)
			case !c.answer && r.Error != "timeout":
				t.Errorf("%s → %s:53/%s: %+v; want a timeout", c.from, c.to, proto, r)
			default:
				t.Logf("%s → %s:53/%s: %s %s (%.1f ms)", c.from, c.to, proto, r.Rcode, r.Error, r.RTTMs)
			}
		}
	}
	a, b := faulty.Status.PodIP, other.Status.PodIP
	run([]check{{"busybox", bbNetns, a, false, true}, {remote.Name, remote.Netns, a, false, true}})

	f, err := ParseFault("dns-udp-dropped=" + faulty.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddFault(ctx, f); err != nil {
		t.Fatal(err)
	}
	run([]check{
		{"busybox (same node)", bbNetns, a, false, false},
		{"busybox (same node)", bbNetns, a, true, true},
		{remote.Name + " (host)", remote.Netns, a, false, false},
		{remote.Name + " (host)", remote.Netns, a, true, true},
		{"busybox", bbNetns, b, false, true}, // the other replica's node has no such rule
	})
	if err := l.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	run([]check{{"busybox, fault cleared", bbNetns, a, false, true}})
}

// busyboxPod runs busybox on node and waits for it to run.
func busyboxPod(t *testing.T, ctx context.Context, cs kubernetes.Interface, node string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dnstest", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: int64p(0), Containers: []corev1.Container{{
			Name: "busybox", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "3600"}}}}}
	if _, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err == nil && got.Status.Phase == corev1.PodRunning && len(got.Status.ContainerStatuses) == 1 && got.Status.ContainerStatuses[0].ContainerID != "" {
			return got
		}
		select {
		case <-ctx.Done():
			state := fmt.Sprint(err)
			if got != nil {
				state = podState(got)
			}
			t.Fatalf("busybox not running: %s", state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podNetns is the network namespace of a Kubernetes Pod of the lab, as
// /proc/<pid>/ns/net of its container's process: found in the container's
// cgroup, under its node's subtree.
func podNetns(t *testing.T, l *Lab, p *corev1.Pod) string {
	t.Helper()
	_, id, _ := strings.Cut(p.Status.ContainerStatuses[0].ContainerID, "://")
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		var procs string
		_ = filepath.WalkDir(filepath.Join(m, cgroupName(l.Spec.Name, p.Spec.NodeName)), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.Contains(d.Name(), id) {
				procs = filepath.Join(path, "cgroup.procs")
				return filepath.SkipAll
			}
			return nil
		})
		if b, err := os.ReadFile(procs); err == nil && len(strings.Fields(string(b))) > 0 {
			if pid, err := strconv.Atoi(strings.Fields(string(b))[0]); err == nil {
				return fmt.Sprintf("/proc/%d/ns/net", pid)
			}
		}
	}
	t.Fatalf("no process of container %s of %s in the cgroups of %s", id, p.Name, p.Spec.NodeName)
	return ""
}

// dnsQuery asks server for the kubernetes Service's A record from inside
// ns (a /proc path or a lab namespace's name), over UDP or TCP, as the
// doctor's agents ask (probe.QueryDNS), and says how it went.
func dnsQuery(ns, server string, tcp bool) probe.DNSResult {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nsenter.DialContext(ctx, ns, &net.Dialer{}, network, addr)
	}
	return probe.QueryDNS(context.Background(), dial, net.JoinHostPort(server, "53"), probe.DNSQuery{Name: dnsTestName, Type: "A", TCP: tcp})
}
