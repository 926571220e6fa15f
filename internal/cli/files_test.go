//go:build !agentonly

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoNodeInventory = `apiVersion: podpath/v1
kind: Inventory
tokenFile: token
nodes:
  - name: node1
    address: 198.18.0.1
    agent: 198.18.0.1:7946
  - name: node2
    address: 198.18.0.2
    agent: 198.18.0.2:7946
`

// An inventory's tokenFile is sent, as the bearer token, to every agent
// address the inventory lists: it must lie beside the inventory, symlinks
// resolved. --token-file on the command line may name any file.
func TestInventoryTokenFileStaysInItsDirectory(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("not-a-token-for-agents\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tokenFile string }{
		{"absolute", secret},
		{"dot-dot", "../../../../../../.." + secret},
		{"symlink", "link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Symlink(secret, filepath.Join(dir, "link")); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			inv := filepath.Join(dir, tc.name+".yaml")
			data := strings.Replace(twoNodeInventory, "tokenFile: token", "tokenFile: "+tc.tokenFile, 1)
			if err := os.WriteFile(inv, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			wantUsageError(t, "outside the inventory's directory", "doctor", "--inventory", inv)
		})
	}
	// Empty and two-line token files are refused before anything is sent.
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(twoNodeInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsageError(t, "is empty", "doctor", "--inventory", inv)
	if err := os.WriteFile(tok, []byte("abc\ndef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsageError(t, "one word of printable ASCII", "doctor", "--inventory", inv)
}

// $KUBECONFIG naming only missing files, or a kubeconfig without a current
// context, is said as such, not as "cannot reach localhost:8080".
func TestKubeconfigMistakes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing"))
	wantUsageError(t, "none of the files $KUBECONFIG names exists", "doctor")
	kc := filepath.Join(dir, "config")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	wantUsageError(t, "no current context", "doctor")
	wantUsageError(t, "no current context", "cleanup")
}

// A report that cannot be written is said (exit 2, the write error), and
// a run that ends without a report leaves no --output-file it created.
func TestOutputFileOnlyWithAWholeReport(t *testing.T) {
	sample := kubesprayInventory(t, "", nil)
	for _, format := range []string{"text", "json"} {
		wantUsageError(t, "no space left on device", "plan", "--kubespray-inventory", sample, "-o", format, "--output-file", "/dev/full")
	}
	report := filepath.Join(t.TempDir(), "report.html")
	wantUsageError(t, "read inventory", "doctor", "--inventory", filepath.Join(t.TempDir(), "missing.yaml"), "-o", "html", "--output-file", report)
	if _, err := os.Stat(report); err == nil {
		t.Errorf("doctor that could not run left %s behind", report)
	}
	code, _, stderr := run(t, "plan", "--kubespray-inventory", sample, "-o", "html", "--output-file", report)
	if st, err := os.Stat(report); code != ExitOK || err != nil || st.Size() == 0 {
		t.Errorf("plan -o html --output-file: exit %d, %v, %s; want the report written", code, err, stderr)
	}
}
