//go:build !linux

package monitor

import (
	"context"
	"errors"
)

// errProber: the monitor's probes are Linux's (DF echoes, path MTU); the
// daemon refuses to start elsewhere rather than report paths it cannot
// measure.
var errProber = errors.New("the monitor probes with Linux's socket options: run it on Linux nodes")

// UDPProber is never asked: Daemon refuses first (errProber).
type UDPProber struct{}

// Probe reports nothing measured.
func (UDPProber) Probe(context.Context, Peer, *MTUResult, bool) Result { return Result{} }
