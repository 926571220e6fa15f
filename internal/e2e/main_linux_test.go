//go:build !agentonly

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"podpath/internal/lab"
)

// podpathBin is a podpath built for this test run: the lab starts it as
// agents and wires, and tests run it as another user. Empty when not root.
var podpathBin string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "podpath-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			_ = os.Chmod(dir, 0o755) // other users run it too
			podpathBin = filepath.Join(dir, "podpath")
			// Static: a Kubernetes lab serves it as the agents' image, FROM scratch.
			build := exec.Command("go", "build", "-o", podpathBin, "podpath/cmd/podpath")
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build podpath for the tests: %v\n%s", err, out)
				return 1
			}
			lab.Binary = podpathBin
		}
		return m.Run()
	}()
	os.Exit(code)
}
