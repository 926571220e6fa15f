//go:build unix

package agent

import "golang.org/x/sys/unix"

// openFileLimit is how many files this process may open (RLIMIT_NOFILE).
func openFileLimit() (uint64, bool) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return rl.Cur, true
}
