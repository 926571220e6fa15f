package monitor

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/kubetest"
)

// The watcher against a real API server: the DaemonSet's Pods become
// peers, a cordoned node and a deleted Pod drop out, and an API server
// restart in the middle costs nothing but a short delay: the next change
// still arrives. The informers' goroutines are gone after Run (goleak in
// TestMain).
func TestWatcherRealAPIServer(t *testing.T) {
	env := kubetest.Start(t, false)
	cfg := rest.CopyConfig(env.Config)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "podpath-monitor"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager here to make the default ServiceAccount.
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"n1", "n2", "n3"} {
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, app := range []string{"agent", "other"} { // another app's Pods are no peers
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: app + "-" + name, Labels: map[string]string{"app": app}},
				Spec: corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "a", Image: "podpath"}}}}
			p, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Status.PodIP = "10.0.0." + string(rune('1'+i))
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}}
			if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	w := &Watcher{Client: cs, Namespace: ns, Selector: "app=agent", Port: 7946, Warmup: time.Second}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	expect := func(what string, want ...string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		var got []string
		for {
			select {
			case set := <-w.Updates():
				got = got[:0]
				for _, p := range set {
					got = append(got, p.Name)
				}
				if slices.Equal(got, want) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: peers %v; want %v", what, got, want)
			}
		}
	}
	expect("start", "n1", "n2", "n3")

	n2, err := cs.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n2.Spec.Unschedulable = true
	if _, err := cs.CoreV1().Nodes().Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("n2 cordoned", "n1", "n3")

	env.RestartAPIServer(t)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "agent-n3", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	expect("after an API server restart, n3's Pod deleted", "n1")

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
