// Package promtest gives tests Prometheus and promtool, built from their Go module by
// scripts/prom-tools.sh and cached: the chart's rule tests and the live alert test run them.
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BuildTimeout bounds building Prometheus and promtool on a fresh machine; later runs take
// them from the cache at once.
const BuildTimeout = 30 * time.Minute

// Tools builds (or finds in the cache) Prometheus and promtool and returns their directory.
// It skips in -short, off Linux and as a user other than root, who builds and caches them.
func Tools(t testing.TB) string {
	t.Helper()
	switch {
	case testing.Short():
		t.Skip("skipped in -short: builds Prometheus")
	case runtime.GOOS != "linux":
		t.Skip("skipped: scripts/prom-tools.sh builds for Linux")
	case os.Geteuid() != 0:
		t.Skip("skipped: Prometheus and promtool are built and cached by root (CI runs as root)")
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build Prometheus (scripts/prom-tools.sh): %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// findScript is scripts/prom-tools.sh above the working directory (a test's is its package's).
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "prom-tools.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no scripts/prom-tools.sh above the working directory")
		}
		dir = parent
	}
}
