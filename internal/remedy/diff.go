// Package remedy plans fixes as reviewable edits: each change carries the old and new content and
// a unified diff, so a person sees exactly what would be written before anything is.
package remedy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"podpath/internal/cluster/kubespray"
	"podpath/internal/safefile"
)

// FileChange is one file edit: the path, the old and new content, and a unified diff.
// Old == New (and an empty Diff) means the file already says what we want.
type FileChange struct {
	Path     string
	Old, New []byte
	Diff     string // unified diff (---/+++ with the path, @@ hunks, 3 lines of context)
}

// ErrChanged is returned by Apply when the file no longer holds Old: someone edited it after the
// change was planned, and writing New would silently throw their edit away.
var ErrChanged = errors.New("the file changed since the change was planned; plan it again")

// Apply writes the change, keeping the file's mode, atomically (a temp file in the same directory,
// then rename) so Ansible or an editor never reads a half-written file. It refuses with ErrChanged
// if the file no longer holds Old. A symlink is followed so the link stays a link. The owner is
// not kept: the new file belongs to whoever runs Apply.
func (c *FileChange) Apply() error {
	if bytes.Equal(c.Old, c.New) {
		return nil
	}
	if err := replaceFile(c.Path, c.Old, c.New); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	return nil
}

func replaceFile(path string, old, new []byte) (err error) {
	path, err = filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	// Compare-then-rename leaves a small window for a concurrent writer; it still catches the
	// usual case, an edit made between planning (a dry run) and applying.
	cur, err := safefile.Read(path, kubespray.MaxFileBytes)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, old) {
		return ErrChanged
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".podpath-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(new); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; give it the original's mode before it takes the name.
	if err = tmp.Chmod(info.Mode().Perm()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// UnifiedDiff renders a unified diff of two texts labelled with name (used for objects too).
// Equal texts give "".
func UnifiedDiff(name string, old, new []byte) string {
	if bytes.Equal(old, new) {
		return ""
	}
	// Writing into a bytes.Buffer cannot fail, so the error is always nil.
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: diffLines(old), B: diffLines(new), FromFile: name, ToFile: name, Context: 3,
	})
	return d
}

// diffLines splits text into lines that keep their endings. difflib.SplitLines would add a
// newline to a last line that has none, hiding that change; instead such a line carries diff's
// own "\ No newline at end of file" marker, so it also compares unequal to the same line with a
// newline, as in diff and git.
func diffLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	last := len(lines) - 1
	if lines[last] == "" {
		return lines[:last]
	}
	lines[last] += "\n\\ No newline at end of file\n"
	return lines
}
