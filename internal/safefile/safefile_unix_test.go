//go:build unix

package safefile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadRefusesWhatIsNotAPlainFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "character device"},
		{fifo, "FIFO"},
		{dir, "directory"},
		{big, "more than the 1024"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		start := time.Now()
		_, err := Read(tc.path, 1024)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%s): %v; want an error saying %q", tc.path, err, tc.want)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Read(%s) took %s", tc.path, el)
		}
		if err := Check(tc.path, 1024); err == nil {
			t.Errorf("Check(%s): no error", tc.path)
		}
	}
}
