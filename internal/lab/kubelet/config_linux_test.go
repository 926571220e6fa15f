package kubelet

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"NODE_NAME": "node1", "A": "x"}
	for in, want := range map[string]string{
		"$(NODE_NAME)":     "node1",
		"--name=$(A)-$(A)": "--name=x-x",
		"$(MISSING)":       "$(MISSING)",
		"$$(NODE_NAME)":    "$(NODE_NAME)",
		"cost $5":          "cost $5",
		"open $(A":         "open $(A",
		"end$":             "end$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRewriteArgs(t *testing.T) {
	mounts := []mount{{path: "/etc/podpath/sub", dir: "/tmp/k/sub"}, {path: "/etc/podpath", dir: "/tmp/k/token"}}
	got := rewriteArgs([]string{"--token-file", "/etc/podpath/token", "--x=/etc/podpath/sub/f", "/etc/podpathological", "/etc/podpath"}, mounts)
	want := []string{"--token-file", "/tmp/k/token/token", "--x=/tmp/k/sub/f", "/etc/podpathological", "/tmp/k/token"}
	if !slices.Equal(got, want) {
		t.Errorf("rewriteArgs = %q; want %q", got, want)
	}
}

// An in-cluster client's flag, in both forms, points at the volume.
func TestRewriteArgsServiceAccountDir(t *testing.T) {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	mounts := []mount{{path: sa, dir: "/tmp/k/volumes/kube-api-access-abcde"}}
	got := rewriteArgs([]string{"agent", "--service-account-dir", sa, "--service-account-dir=" + sa, "--token=" + sa + "/token", "--other=" + sa + "x"}, mounts)
	want := []string{"agent", "--service-account-dir", "/tmp/k/volumes/kube-api-access-abcde", "--service-account-dir=/tmp/k/volumes/kube-api-access-abcde",
		"--token=/tmp/k/volumes/kube-api-access-abcde/token", "--other=" + sa + "x"}
	if !slices.Equal(got, want) {
		t.Errorf("rewriteArgs = %q; want %q", got, want)
	}
}

// Every container gets the "kubernetes" Service's variables first: its own
// may use them, and override them.
func TestContainerEnvKubernetesService(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	c := &corev1.Container{Env: []corev1.EnvVar{
		{Name: "API", Value: "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
		{Name: "KUBERNETES_SERVICE_PORT", Value: "8443"}}}
	vars, env, err := containerEnv(pod, c, sandbox{})
	if err != nil {
		t.Fatal(err)
	}
	if got := vars["API"]; got != "https://127.0.0.1:443" {
		t.Errorf("API = %q; want https://127.0.0.1:443", got)
	}
	for _, kv := range []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_PORT=tcp://127.0.0.1:443", "KUBERNETES_PORT_443_TCP_ADDR=127.0.0.1"} {
		if !slices.Contains(env, kv) {
			t.Errorf("env lacks %s: %q", kv, env)
		}
	}
	// exec keeps the last of duplicate keys: the container's own value.
	if i, j := slices.Index(env, "KUBERNETES_SERVICE_PORT=443"), slices.Index(env, "KUBERNETES_SERVICE_PORT=8443"); i < 0 || j < i {
		t.Errorf("env = %q; want KUBERNETES_SERVICE_PORT=443 before the container's 8443", env)
	}
}

func TestAPIServerAddr(t *testing.T) {
	real := func(host string) kubernetes.Interface { return kubernetes.NewForConfigOrDie(&rest.Config{Host: host}) }
	for _, tc := range []struct {
		name    string
		cs      kubernetes.Interface
		opt     string
		want    string
		wantErr bool
	}{
		{"from_the_client", real("https://127.0.0.1:23456"), "", "127.0.0.1:23456", false},
		{"client_default_port", real("https://10.0.0.1"), "", "10.0.0.1:443", false},
		{"option_wins", real("https://127.0.0.1:23456"), "127.0.0.1:6443", "127.0.0.1:6443", false},
		{"option_without_port", real("https://127.0.0.1:23456"), "127.0.0.1", "", true},
		{"fake_client", fake.NewClientset(), "", "", true},
		{"fake_client_with_option", fake.NewClientset(), "[::1]:6443", "[::1]:6443", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiServerAddr(tc.cs, Options{APIServer: tc.opt})
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("apiServerAddr = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
