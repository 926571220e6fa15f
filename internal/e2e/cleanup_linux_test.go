//go:build !agentonly

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/deploy"
	"podpath/internal/kubetest"
)

// A run killed outright leaves its namespace; `podpath cleanup` removes it.
func TestCleanupRemovesLeftovers(t *testing.T) {
	env := kubetest.Start(t, true)
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dep, err := deploy.NewRun(cs, dynamic.NewForConfigOrDie(env.Config), discovery.NewDiscoveryClientForConfigOrDie(env.Config), deploy.Options{Image: "podpath:test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := dep.Install(ctx); err != nil {
		t.Fatal(err)
	}
	// Someone else's namespace is not touched.
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-podpath"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, "cleanup", "--kubeconfig", env.Kubeconfig)
	if code != 0 || !strings.Contains(out, "removed 1 podpath namespace(s)") {
		t.Fatalf("cleanup: exit %d, %q %q", code, out, errOut)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, dep.Namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there after cleanup", dep.Namespace)
		}
	}
	if ns, err := cs.CoreV1().Namespaces().Get(ctx, "not-podpath", metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("cleanup touched a namespace that is not podpath's: %v", err)
	}
	if code, out, _ = run(t, "cleanup", "--kubeconfig", env.Kubeconfig); code != 0 || !strings.Contains(out, "removed 0") {
		t.Errorf("second cleanup: exit %d, %q; want nothing to do", code, out)
	}

	// Bad input: one line, exit 2.
	bad := filepath.Join(t.TempDir(), "bad.kubeconfig")
	if err := os.WriteFile(bad, []byte("this: is: not: a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsageError(t, "kubeconfig", "cleanup", "--kubeconfig", bad)
	unreachable := strings.Replace(readFile(t, env.Kubeconfig), env.URL, "https://127.0.0.1:1", 1)
	path := filepath.Join(t.TempDir(), "down.kubeconfig")
	if err := os.WriteFile(path, []byte(unreachable), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsageError(t, "connection refused", "cleanup", "--kubeconfig", path)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
