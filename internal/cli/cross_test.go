//go:build !agentonly

package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubectl runs on macOS and Windows: podpath builds there, and a
// darwin/arm64 binary carries every cluster command (its help text is in
// the binary), with the Linux-only ones refusing in one line.
func TestClusterCommandsBuildForDarwin(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: cross-compiles podpath")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: no go command")
	}
	bin := filepath.Join(t.TempDir(), "podpath")
	build := exec.Command("go", "build", "-o", bin, "podpath/cmd/podpath")
	build.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("skipped: the go command cannot build here as this user (its caches are root's): %v", err)
		}
		t.Fatalf("GOOS=darwin GOARCH=arm64 go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0xcf, 0xfa, 0xed, 0xfe}) { // MH_MAGIC_64, little-endian
		t.Fatalf("not a 64-bit Mach-O binary: % x", data[:4])
	}
	cluster := map[string]bool{"doctor": true, "mtu": true, "perf": true, "fix": true, "cleanup": true, "plan": true, "preflight": true, "version": true}
	seen := 0
	for _, c := range commands(Streams{}) {
		name := strings.Fields(c.Use)[0]
		if !cluster[name] {
			continue
		}
		seen++
		if !bytes.Contains(data, []byte(c.Short)) {
			t.Errorf("the darwin binary lacks %s (%q)", name, c.Short)
		}
	}
	if seen != len(cluster) {
		t.Errorf("%d of the %d cluster commands found in the Linux table", seen, len(cluster))
	}
	for _, refusal := range []string{"podpath lab needs Linux", "podpath agent needs Linux", "host facts need Linux"} {
		if !bytes.Contains(data, []byte(refusal)) {
			t.Errorf("the darwin binary lacks the refusal %q", refusal)
		}
	}
}
