// Package promtest gives tests Prometheus and promtool, built from their Go module by
// scripts/prom-tools.sh and cached: the chart's rule tests and the live alert test run them.
package promtest

import (
	"os"
	"runtime"
	"testing"
	"time"

	"podpath/internal/toolbuild"
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
	return toolbuild.Run(t, "prom-tools.sh", BuildTimeout)
}
