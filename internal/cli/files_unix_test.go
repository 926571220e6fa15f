//go:build !agentonly && unix

package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// /dev/zero and a FIFO without a writer, named by every flag that takes a
// file, are refused with exit 2 at once, reading nothing (issue 15: the
// inventory read 3.4 GB, the kubeconfig ran the machine out of memory, a
// FIFO hung for ever).
func TestFileFlagsRefuseDevicesAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(twoNodeInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ path, says string }{{"/dev/zero", "character device"}, {fifo, "FIFO"}} {
		for _, args := range [][]string{
			{"doctor", "--inventory", bad.path},
			{"perf", "--inventory", bad.path},
			{"doctor", "--inventory", inv, "--token-file", bad.path},
			{"preflight", "--inventory", inv, "--token-file", bad.path},
			{"doctor", "--kubeconfig", bad.path},
			{"cleanup", "--kubeconfig", bad.path},
			{"agent", "--token-file", bad.path, "--listen", "127.0.0.1:0"},
		} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			wantUsageError(t, bad.says, args...)
			runtime.ReadMemStats(&after)
			if el := time.Since(start); el > time.Second {
				t.Errorf("podpath %s: %s; want a refusal within a second", strings.Join(args, " "), el)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 50<<20 {
				t.Errorf("podpath %s: allocated %d MiB; want under 50", strings.Join(args, " "), alloc>>20)
			}
		}
	}
}
