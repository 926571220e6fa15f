package remedy

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sampleFile is Kubespray's real inventory/sample/group_vars/k8s_cluster/k8s-net-calico.yml. It is
// read from the shared fixtures, not copied, so a refreshed upstream sample re-runs these tests.
const sampleFile = "../../../shared/fixtures/kubespray/k8s-net-calico.yml"

const varsPath = "group_vars/k8s_cluster/k8s-net-calico.yml"

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "kubespray", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/remedy -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/remedy -update to accept):\n%s", name, got)
	}
}

func sample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// inventory writes content as the Calico vars file of a new inventory and returns its directory.
func inventory(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, varsPath), content)
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceOnce replaces old in s, failing if the sample no longer holds it.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("the sample holds %q %d times, want once: has upstream changed it?", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}

// plan runs KubesprayMTU on content and checks Old, the path, and that a diff matches golden file
// name.diff (with the temp dir shown as inventory/mycluster).
func plan(t *testing.T, name, content string, mtu int) (*FileChange, []string) {
	t.Helper()
	dir := inventory(t, content)
	c, warnings, err := KubesprayMTU(dir, mtu)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != filepath.Join(dir, varsPath) || string(c.Old) != content {
		t.Errorf("path %s, old content changed: %v", c.Path, string(c.Old) != content)
	}
	if c.Diff != "" { // a no-op has no diff to keep; its New is checked against Old
		golden(t, name+".diff", []byte(strings.ReplaceAll(c.Diff, dir, "inventory/mycluster")))
	}
	return c, warnings
}

// The cases built on the real sample check New exactly against the sample with the expected lines
// edited, and the diff against a golden file; New is not stored, as it would copy the fixture.
func TestKubesprayMTUOnTheSample(t *testing.T) {
	s := sample(t)
	both := replaceOnce(t, replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu: 1350\n"), "# calico_veth_mtu: 1440\n", "calico_veth_mtu: 1350\n")
	crlf := strings.ReplaceAll(s, "\n", "\r\n")
	noDefault := replaceOnce(t, s, "# calico_mtu: 1500\n", "")
	for _, tc := range []struct {
		name, in, want string
		warning        string // in the only warning; "" for none
	}{
		{name: "sample", in: s, want: replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu: 1350\n")},
		{
			name: "mtu-set-with-comment",
			in:   replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu: 1500   # the underlay's MTU\n"),
			want: replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu: 1350   # the underlay's MTU\n"),
		},
		{
			name: "veth-alone", in: replaceOnce(t, s, "# calico_veth_mtu: 1440\n", "calico_veth_mtu: 1440\n"),
			want: both, warning: "calico_veth_mtu (1440) alone was ignored by Kubespray",
		},
		{name: "both-already-1350", in: both, want: both},
		{
			name: "crlf", in: crlf,
			want: replaceOnce(t, crlf, "# calico_mtu: 1500\r\n", "calico_mtu: 1350\r\n"),
		},
		{
			name: "absent", in: noDefault,
			want: noDefault + "\n" + appendedComment + "\ncalico_mtu: 1350\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, warnings := plan(t, tc.name, tc.in, 1350)
			if string(c.New) != tc.want {
				t.Errorf("new content differs from the expected edit:\n%s", c.Diff)
			}
			if (tc.warning == "") != (len(warnings) == 0) || len(warnings) > 1 ||
				(tc.warning != "" && !strings.Contains(warnings[0], tc.warning)) {
				t.Errorf("warnings %q, want one with %q", warnings, tc.warning)
			}
		})
	}
}

// The plain sample: the commented default becomes the setting and every other line is untouched.
func TestKubesprayMTUSampleChangesOneLine(t *testing.T) {
	c, _, err := KubesprayMTU(inventory(t, sample(t)), 1350)
	if err != nil {
		t.Fatal(err)
	}
	old, new := splitLines(string(c.Old)), splitLines(string(c.New))
	if len(old) != len(new) {
		t.Fatalf("%d lines became %d", len(old), len(new))
	}
	var changed []string
	for i := range old {
		if old[i] != new[i] {
			changed = append(changed, old[i]+"→ "+new[i])
		}
	}
	if len(changed) != 1 || changed[0] != "# calico_mtu: 1500\n→ calico_mtu: 1350\n" {
		t.Errorf("changed lines %q, want only the commented default", changed)
	}
}

// Small files for the layouts the sample does not show; their New is golden too.
func TestKubesprayMTULayouts(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"no-final-newline", "calico_cni_name: k8s-pod-network\ncalico_mtu: 1500"},
		{"absent-no-final-newline", "calico_cni_name: k8s-pod-network"},
		{"empty-value", "calico_cni_name: k8s-pod-network\ncalico_mtu:   # empty: Calico picks\ncalico_pool_blocksize: 26\n"},
		{"empty-file", ""},
		{"flow-mapping-non-ascii", "{calico_cni_name: k8s-pod-network, note: héllo’, calico_mtu: 1500}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, warnings := plan(t, tc.name, tc.in, 1350)
			golden(t, tc.name+".yml", c.New)
			if len(warnings) != 0 {
				t.Errorf("warnings %q", warnings)
			}
		})
	}
}

func TestKubesprayMTUNoOp(t *testing.T) {
	in := replaceOnce(t, sample(t), "# calico_mtu: 1500\n", "calico_mtu: 1350 # set\n")
	c, warnings, err := KubesprayMTU(inventory(t, in), 1350)
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if !bytes.Equal(c.Old, c.New) || c.Diff != "" {
		t.Errorf("want a no-op, got diff:\n%s", c.Diff)
	}
}

func TestKubesprayMTUAcceptsTheFile(t *testing.T) {
	path := filepath.Join(inventory(t, sample(t)), varsPath)
	c, _, err := KubesprayMTU(path, 1400)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || !strings.Contains(string(c.New), "\ncalico_mtu: 1400\n") {
		t.Errorf("path %s, new content:\n%s", c.Path, c.Diff)
	}
}

// A value elsewhere in the inventory can beat the edited file by Ansible's precedence.
func TestKubesprayMTUWarnsOfOtherSettings(t *testing.T) {
	dir := inventory(t, sample(t))
	writeFile(t, filepath.Join(dir, "group_vars/all/all.yml"), "calico_mtu: 1500\n")
	writeFile(t, filepath.Join(dir, "host_vars/node1.yml"), "calico_veth_mtu: 1350\n") // agrees: fine
	writeFile(t, filepath.Join(dir, "group_vars/all/vault.yml"), "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
	_, warnings, err := KubesprayMTU(dir, 1350)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "calico_mtu is also set, to 1500, in "+filepath.Join(dir, "group_vars/all/all.yml")) {
		t.Errorf("warnings %q", warnings)
	}
}

func TestKubesprayMTUErrors(t *testing.T) {
	s := sample(t)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"bad yaml", replaceOnce(t, s, "calico_pool_blocksize: 26\n", "calico_pool_blocksize: 26: 27\n"), []string{"line 23"}},
		{"quoted", replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu: \"1500\"\n"), []string{"line 41", "not a plain scalar"}},
		{"mapping", replaceOnce(t, s, "# calico_mtu: 1500\n", "calico_mtu:\n  value: 1500\n"), []string{"line 41", "not a plain scalar"}},
		{"twice", s + "calico_mtu: 1400\ncalico_mtu: 1450\n", []string{"lines 127 and 128 both set calico_mtu"}},
		{"not a mapping", "- calico_mtu: 1500\n", []string{"line 1: the file is not a mapping"}},
		{"unsafe edit", "{calico_cni_name: k8s-pod-network}\n", []string{"unusual", "by hand"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := inventory(t, tc.in)
			_, _, err := KubesprayMTU(dir, 1350)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, filepath.Join(dir, varsPath)) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestKubesprayMTUMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inventory", "mycluster")
	_, _, err := KubesprayMTU(dir, 1350)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want fs.ErrNotExist", err)
	}
	for _, w := range []string{filepath.Join(dir, varsPath), "--kubespray-inventory", "holding group_vars/"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestKubesprayMTURange(t *testing.T) {
	if _, _, err := KubesprayMTU(inventory(t, sample(t)), 0); err == nil || !strings.Contains(err.Error(), "needs 576-9000") {
		t.Errorf("error %v", err)
	}
}
