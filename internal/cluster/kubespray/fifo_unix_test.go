//go:build unix

package kubespray

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO left in group_vars/ is refused at once, not read until a writer
// comes (for ever).
func TestLoadFIFO(t *testing.T) {
	dir := tree(t, map[string]string{"inventory.ini": "[kube_node]\nnode1\n", "group_vars/keep": ""})
	fifo := filepath.Join(dir, "group_vars", "all.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is a FIFO") {
			t.Errorf("a FIFO as group_vars/all.yml: %v; want it refused as a FIFO", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load hangs on a FIFO in group_vars/")
	}
}
