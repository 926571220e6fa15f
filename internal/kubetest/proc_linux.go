package kubetest

import (
	"os"
	"syscall"
)

// groupAttr starts a control-plane process in a group of its own, killed
// with the test binary.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup asks p's group to stop (SIGTERM), or kills it.
func signalGroup(p *os.Process, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-p.Pid, sig)
}
