package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const envPrivateMounts = "PODPATH_TEST_PRIVATE_MOUNTS"

// On a machine where /run/netns is no shared mount (a fresh one: nothing
// has run `ip netns add` yet), createNetns makes it one, as iproute2 does:
// otherwise deleting a namespace does not reach the copies that other
// labs' `ip netns exec` processes hold, and `lab down` fails with EBUSY.
// Run in a mount namespace of its own, where /run/netns is first made a
// plain directory; nothing of it reaches the machine's mounts.
func TestCreateNetnsSharesTheDirectory(t *testing.T) {
	if os.Getenv(envPrivateMounts) == t.Name() {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatalf("make / private: %v", err)
		}
		for netnsIsMount() { // as on a fresh machine: a directory, no mount
			if err := unix.Unmount(netnsDir, unix.MNT_DETACH); err != nil {
				t.Fatalf("unmount %s: %v", netnsDir, err)
			}
		}
		name := fmt.Sprintf("pptest-share-%d", os.Getpid())
		if err := createNetns(name); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := deleteNetns(name); err != nil {
				t.Error(err)
			}
		}()
		if line := netnsMountLine(); !strings.Contains(line, " shared:") {
			t.Errorf("after createNetns, %s in mountinfo: %q; want a shared mount", netnsDir, line)
		}
		return
	}
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envPrivateMounts+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in a mount namespace of its own: %v\n%s", err, out)
	}
}

// netnsMountLine is /proc/self/mountinfo's line for the namespace
// directory, "" when it is no mount point.
func netnsMountLine() string {
	dir, err := filepath.EvalSymlinks(netnsDir) // /var/run is /run
	if err != nil {
		return ""
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	line := ""
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			line = l // the last one is the top of the stack
		}
	}
	return line
}

func netnsIsMount() bool { return netnsMountLine() != "" }
