package kubelet

import (
	"slices"
	"testing"
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
