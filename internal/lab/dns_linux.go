package lab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/kubeobj"
)

// dnsTimeout bounds the wait for CoreDNS's Pods to be Ready once the nodes
// are: a pull from the lab's registry, a start, a sync with the API server.
const dnsTimeout = 90 * time.Second

// installDNS creates the cluster DNS's objects, as Kubespray's
// kubernetes-apps role does after the network plugin.
func installDNS(ctx context.Context, cfg *rest.Config) error {
	if err := kubeobj.CreateAll(ctx, cfg, []byte(dnsObjects()), "podpath-lab"); err != nil {
		return fmt.Errorf("create the cluster DNS (CoreDNS): %w", err)
	}
	return nil
}

// waitDNS waits until every CoreDNS Pod is Ready, so the cluster's names
// resolve once lab up returns.
func waitDNS(ctx context.Context, cs kubernetes.Interface, s *Spec) error {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	for {
		last := dnsState(ctx, cs)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster DNS is not ready within %s: %s (logs under %s/<node>/kube/, `kubectl -n kube-system logs -l %s`)",
				dnsTimeout, last, Dir(s.Name), DNSLabel)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// dnsState says which CoreDNS Pods are not Ready and why, "" when all are.
func dnsState(ctx context.Context, cs kubernetes.Interface) string {
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: DNSLabel})
	if err != nil {
		return "list CoreDNS's Pods: " + err.Error()
	}
	var states []string
	ready := 0
	for _, p := range pods.Items {
		if podReady(&p) {
			ready++
			continue
		}
		states = append(states, p.Name+" "+podState(&p))
	}
	if ready >= DNSReplicas {
		return ""
	}
	sort.Strings(states)
	return fmt.Sprintf("CoreDNS Ready in %d of %d Pods (%s)", ready, DNSReplicas, strings.Join(append(states, fmt.Sprintf("%d Pods", len(pods.Items))), "; "))
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podState is a Pod's state as `kubectl get pods -o wide` shows it: its
// phase and node, the reason its container waits or ended, or why it is
// not scheduled.
func podState(p *corev1.Pod) string {
	node := p.Spec.NodeName
	if node == "" {
		node = "no node"
	}
	out := fmt.Sprintf("%s on %s", p.Status.Phase, node)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Message != "" {
			out += ": " + c.Message
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			out += fmt.Sprintf(": %s waiting: %s %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		case c.State.Terminated != nil:
			out += fmt.Sprintf(": %s terminated: %s (exit %d)", c.Name, c.State.Terminated.Reason, c.State.Terminated.ExitCode)
		case !c.Ready:
			out += fmt.Sprintf(": %s running, not ready (restarts %d)", c.Name, c.RestartCount)
		}
	}
	return strings.TrimSpace(out)
}
