// Package toolbuild runs the checkout's scripts that build the tools the
// tests need from their Go modules and cache them (scripts/kube-tools.sh,
// scripts/prom-tools.sh): a first run on a fresh machine builds them, later
// ones find them in the cache at once.
package toolbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Run runs scripts/<script> of the checkout above the test's working
// directory (a test's is its package's), bounded by timeout, and returns
// what it prints: the directory of the built tools.
func Run(t testing.TB, script string, timeout time.Duration) string {
	t.Helper()
	path, err := find(script)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build tools (scripts/%s): %v\n%s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func find(script string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find scripts/%s: %w", script, err)
	}
	for {
		p := filepath.Join(dir, "scripts", script)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no scripts/%s above the working directory", script)
		}
		dir = parent
	}
}
