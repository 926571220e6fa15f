//go:build !linux

package agent

import (
	"context"
	"errors"
)

// errProbing: the probes (DF echoes, path MTU, ICMP, TTL-limited
// location) use Linux's socket options. An agent elsewhere answers
// probes, serves its API and sinks transfers, and refuses to send probes.
var errProbing = errors.New("this agent cannot send probes: it runs on a system other than Linux (it still answers them)")

// run is never reached: the probe handler refuses first (errProbing).
func (a *Agent) run(context.Context, []Peer, *ProbeRequest) []TargetResult { return nil }
