//go:build !linux

package kubetest

import (
	"os"
	"syscall"
)

// StartWith skips before any process starts here (the binaries are
// Linux's); these only keep the package building for vet.

func groupAttr() *syscall.SysProcAttr { return nil }

func signalGroup(p *os.Process, _ bool) { _ = p.Kill() }
