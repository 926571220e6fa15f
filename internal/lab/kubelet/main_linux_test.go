package kubelet

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// podpathBin is a podpath built for this test run: the kubelet runs it as
// the agents' containers, some as another user. Empty when not root or
// in -short, where the tests that need it skip.
var podpathBin string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse() // for testing.Short
		if os.Geteuid() == 0 && !testing.Short() {
			dir, err := os.MkdirTemp("", "podpath-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			_ = os.Chmod(dir, 0o755) // agents run as uid 65534 too
			podpathBin = filepath.Join(dir, "podpath")
			if out, err := exec.Command("go", "build", "-o", podpathBin, "podpath/cmd/podpath").CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build podpath for the tests: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}
