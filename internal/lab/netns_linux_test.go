package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
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
		// As on a fresh machine: a plain directory, nothing mounted in or
		// on it (in this private copy of the mounts only).
		for _, m := range netnsMounts() {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				t.Fatalf("unmount %s: %v", m, err)
			}
		}
		if len(netnsMounts()) > 0 {
			t.Fatalf("%s still has mounts: %v", netnsDir, netnsMounts())
		}
		// A namespace some tool made below the plain directory: making the
		// directory a mount point now would hide it for good, so createNetns
		// leaves the directory alone and both can still be deleted.
		early, later := fmt.Sprintf("pptest-early-%d", os.Getpid()), fmt.Sprintf("pptest-later-%d", os.Getpid())
		if err := nstestNamed(early); err != nil {
			t.Fatal(err)
		}
		if err := createNetns(later); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{early, later} {
			if err := deleteNetns(n); err != nil {
				t.Errorf("a namespace made before the directory was shared: %v", err)
			}
		}
		if netnsIsMount() {
			t.Errorf("createNetns bound %s over a namespace mount made before", netnsDir)
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
	if cmd.Process != nil { // a failed child leaves its empty namespace files behind
		left, _ := filepath.Glob(filepath.Join(netnsDir, fmt.Sprintf("pptest-*-%d", cmd.Process.Pid)))
		for _, f := range left {
			os.Remove(f)
		}
	}
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

// netnsMounts are the mount points in and on the namespace directory,
// deepest (latest) first.
func netnsMounts() []string {
	dir, err := filepath.EvalSymlinks(netnsDir)
	if err != nil {
		return nil
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}

// nstestNamed makes a named namespace as netns.NewNamed alone does, the
// way tools that skip iproute2's step leave it.
func nstestNamed(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread is left in the new namespace and dies with the goroutine
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		errc <- err
	}()
	return <-errc
}
