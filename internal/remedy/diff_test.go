package remedy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one line", "a\nb\nc\n", "a\nB\nc\n", "--- x\n+++ x\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"from empty", "", "a\n", "--- x\n+++ x\n@@ -0,0 +1 @@\n+a\n"},
		// Only the final newline differs: diff and git show that, and so must we.
		{"final newline", "a\nb", "a\nb\n", "--- x\n+++ x\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnifiedDiff("x", []byte(tc.old), []byte(tc.new)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// change writes old to a file of the given mode in a new directory and plans old → new.
func change(t *testing.T, mode os.FileMode, old, new string) *FileChange {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k8s-net-calico.yml")
	if err := os.WriteFile(path, []byte(old), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return &FileChange{Path: path, Old: []byte(old), New: []byte(new)}
}

func TestApplyKeepsModeAndReplacesAtomically(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o600} {
		c := change(t, mode, "calico_mtu: 1500\n", "calico_mtu: 1350\n")
		before, err := os.Stat(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(); err != nil {
			t.Fatal(err)
		}
		after, err := os.Stat(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(c.Path); string(got) != "calico_mtu: 1350\n" {
			t.Errorf("content %q", got)
		}
		if after.Mode() != mode {
			t.Errorf("mode %v, want %v", after.Mode(), mode)
		}
		// A new file renamed over the old one, not the old one rewritten in place.
		if os.SameFile(before, after) {
			t.Error("the file was rewritten in place, not replaced")
		}
		if entries, _ := os.ReadDir(filepath.Dir(c.Path)); len(entries) != 1 {
			t.Errorf("the directory holds %d files, want only the edited one (no temp file left)", len(entries))
		}
	}
}

func TestApplyRefusesAChangedFile(t *testing.T) {
	c := change(t, 0o644, "calico_mtu: 1500\n", "calico_mtu: 1350\n")
	if err := os.WriteFile(c.Path, []byte("calico_mtu: 1400\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(); !errors.Is(err, ErrChanged) {
		t.Fatalf("error %v, want ErrChanged", err)
	}
	if got, _ := os.ReadFile(c.Path); string(got) != "calico_mtu: 1400\n" {
		t.Errorf("the other edit was overwritten: %q", got)
	}
}

func TestApplyNoOpLeavesTheFile(t *testing.T) {
	c := change(t, 0o644, "calico_mtu: 1350\n", "calico_mtu: 1350\n")
	before, _ := os.Stat(c.Path)
	if err := c.Apply(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(c.Path); !os.SameFile(before, after) {
		t.Error("a no-op replaced the file")
	}
}

// Inventories often link group_vars to a shared copy: the link must stay a link.
func TestApplyFollowsASymlink(t *testing.T) {
	c := change(t, 0o644, "calico_mtu: 1500\n", "calico_mtu: 1350\n")
	link := filepath.Join(t.TempDir(), "link.yml")
	if err := os.Symlink(c.Path, link); err != nil {
		t.Fatal(err)
	}
	target := c.Path
	c.Path = link
	if err := c.Apply(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is gone: %v %v", info, err)
	}
	if got, _ := os.ReadFile(target); string(got) != "calico_mtu: 1350\n" {
		t.Errorf("target content %q", got)
	}
}
