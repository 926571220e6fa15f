package nsenter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// NetnsDir is where iproute2 (and so `ip netns list`) keeps named namespaces.
const NetnsDir = "/var/run/netns"

// ShareNetnsDir makes NetnsDir a shared mount, as `ip netns add` does
// before its first namespace (netns.NewNamed does not); call it before
// creating a named namespace. Two things go wrong without it:
//   - every `ip netns exec` runs in a slave copy of the machine's mounts,
//     holding a copy of each namespace file that existed when it started;
//     only through a shared mount does deleting the file's mount reach
//     those copies (EBUSY otherwise, while they run);
//   - the first `ip netns add` binds the directory onto itself, which
//     hides the namespace mounts made below it before: they can then be
//     neither unmounted nor removed by name (EBUSY for good).
//
// If the directory is no mount point yet but already holds namespace
// mounts (made by a tool that skipped this), it is left as it is: binding
// it now would hide them the same way.
func ShareNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point
		if mountsBelow(NetnsDir) {
			return nil
		}
		if err = unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", NetnsDir, err)
	}
	return nil
}

// mountsBelow says whether anything is mounted below dir.
func mountsBelow(dir string) bool {
	real, err := filepath.EvalSymlinks(dir) // /var/run is /run
	if err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // unknown: do not risk hiding anything
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], real+"/") {
			return true
		}
	}
	return false
}
