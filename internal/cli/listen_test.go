//go:build !agentonly

package cli

import (
	"testing"

	"podpath/internal/agent"
	"podpath/internal/netplan"
)

// Every port the preflight checks can be opened by an agent's temporary
// listener: the agent's list of privileged ports keeps up with netplan's.
func TestPreflightPortsAreListenable(t *testing.T) {
	for _, p := range netplan.Ports {
		if !agent.ListenAllowed(agent.PortCheck{Proto: p.Proto, Port: p.Port}) {
			t.Errorf("preflight checks %s %d (%s), which /v1/listen refuses", p.Proto, p.Port, p.What)
		}
	}
}
