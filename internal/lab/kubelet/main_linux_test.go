package kubelet

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// podpathBin is a podpath built for this test run: the kubelet runs it as
// the agents' containers, some as another user. checkBin is this test
// binary, copied beside it: run with apiCheckEnv set, it is the in-cluster
// client of TestKubeletPodsReachAPIServer's Pods. Both empty when not root
// or in -short, where the tests that need them skip.
var podpathBin, checkBin string

func TestMain(m *testing.M) {
	if os.Getenv(apiCheckEnv) != "" {
		os.Exit(apiCheck(os.Args[1:]))
	}
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
			// go test's own directory is private to root.
			checkBin = filepath.Join(dir, "apicheck")
			if err := copyExecutable(checkBin); err != nil {
				fmt.Fprintf(os.Stderr, "copy the test binary: %v\n", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// copyExecutable copies the running executable to path.
func copyExecutable(path string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
