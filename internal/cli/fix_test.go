//go:build !agentonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without cluster access, fix mtu changes only the Kubespray inventory:
// a dry run shows the diff, --apply writes it with the comments kept.
func TestFixMTUInventoryOnly(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", empty)
	sample, err := os.ReadFile("../../../shared/fixtures/kubespray/k8s-net-calico.yml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "inv", "group_vars", "k8s_cluster", "k8s-net-calico.yml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inv")

	wantUsageError(t, "needs --mtu", "fix", "mtu", "--kubespray-inventory", inv)
	wantUsageError(t, "MTU 100: an IPv4 cluster needs 576-9000", "fix", "mtu", "--mtu", "100", "--kubespray-inventory", inv)

	// The flag's earlier name still works.
	wantUsageError(t, "needs --mtu", "fix", "mtu", "--inventory-dir", inv)
	code, out, errOut := run(t, "fix", "mtu", "--mtu", "1350", "--kubespray-inventory", inv)
	if code != ExitOK || !strings.Contains(out, "-# calico_mtu: 1500") || !strings.Contains(out, "+calico_mtu: 1350") || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	if now, _ := os.ReadFile(file); string(now) != string(sample) {
		t.Fatal("the dry run changed the file")
	}
	if code, out, errOut = run(t, "fix", "mtu", "--mtu", "1350", "--kubespray-inventory", inv, "--apply"); code != ExitOK {
		t.Fatalf("--apply: exit %d\n%s\n%s", code, out, errOut)
	}
	now, _ := os.ReadFile(file)
	want := strings.Replace(string(sample), "# calico_mtu: 1500\n", "calico_mtu: 1350\n", 1)
	if string(now) != want {
		t.Errorf("after --apply the file differs from the sample by more than calico_mtu:\n%s", now)
	}
	if code, out, _ = run(t, "fix", "mtu", "--mtu", "1350", "--kubespray-inventory", inv); code != ExitOK || !strings.Contains(out, "Nothing to change") {
		t.Errorf("second run: exit %d %q; want nothing to change", code, out)
	}
}
