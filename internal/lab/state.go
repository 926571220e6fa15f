package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"podpath/internal/cluster/inventory"
)

// StateRoot holds one directory per lab: state.json, the inventory, the agent
// token, and each node's BIRD files. Under /run so a reboot, which also
// forgets the namespaces, forgets the lab.
var StateRoot = "/run/podpath/lab"

// Phases of a lab's life, as recorded in its state file.
const (
	PhaseCreating = "creating"
	PhaseReady    = "ready"
)

// State is what state.json holds.
type State struct {
	Spec      Spec      `json:"spec"`
	Phase     string    `json:"phase"`
	Faults    []Fault   `json:"faults"`
	CreatedAt time.Time `json:"createdAt"`
	UpSeconds float64   `json:"upSeconds"`
	Inventory string    `json:"inventory"`
	// BIRDSockets maps node name to the BIRD control socket (backend bgp).
	BIRDSockets map[string]string `json:"birdSockets,omitempty"`
	// Kube is set on a Kubernetes lab.
	Kube *KubeState `json:"kube,omitempty"`
}

// ErrNotFound means there is no lab of that name.
var ErrNotFound = errors.New("lab not found")

// Dir is the lab's state directory.
func Dir(name string) string { return filepath.Join(StateRoot, name) }

func statePath(name string) string { return filepath.Join(Dir(name), "state.json") }

// LoadState reads a lab's state file.
func LoadState(name string) (*State, error) {
	data, err := os.ReadFile(statePath(name))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("%w: no lab %q (start one with `podpath lab up --name %s`)", ErrNotFound, name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse lab state %s: %w", statePath(name), err)
	}
	return &s, nil
}

func saveState(s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	tmp := statePath(s.Spec.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp, statePath(s.Spec.Name)); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// Inventory describes the lab in podpath's inventory format: node agents on
// the underlay address, Pod agents on the Pod address, both on AgentPort.
func (s *Spec) Inventory(tokenFile string) *inventory.Inventory {
	inv := &inventory.Inventory{
		APIVersion: inventory.APIVersion,
		Kind:       inventory.Kind,
		TokenFile:  tokenFile,
		Network: &inventory.Network{
			Backend: string(s.Backend),
			// As Calico without a configured MTU: each node auto-detects its
			// own from its interface (0 = auto). Only --pod-mtu sets one.
			PodMTU:      s.PodMTU,
			PodCIDR:     PodCIDR,
			ServiceCIDR: ServiceCIDR,
		},
	}
	if s.IPv6Only() {
		inv.Network.PodCIDR, inv.Network.ServiceCIDR = PodCIDRv6, ServiceCIDRv6
	}
	// An IPv6-only lab's nodes and Pods are known by their IPv6
	// addresses alone; a dual-stack lab's by both.
	second := func(a netip.Addr) string {
		if s.Dual() {
			return addrString(a)
		}
		return ""
	}
	from := func(own string) string { return own }
	if s.Controller != "" {
		ns := s.Name + "." + s.Controller
		from = func(string) string { return ns }
	}
	for _, n := range s.Nodes {
		a := s.Primary(n.Address, n.Address6)
		in := inventory.Node{Name: n.Name, Address: a.String(), Address6: second(n.Address6), Agent: agentAddr(a), Netns: from(n.Netns)}
		for _, p := range n.Pods {
			a := s.Primary(p.Address, p.Address6)
			in.Pods = append(in.Pods, inventory.Pod{Name: p.Name, Address: a.String(), Address6: second(p.Address6),
				Agent: agentAddr(a), Netns: from(p.Netns)})
		}
		inv.Nodes = append(inv.Nodes, in)
	}
	return inv
}

// addrString is a's text, empty for the zero address.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func agentAddr(a netip.Addr) string {
	return netip.AddrPortFrom(a, AgentPort).String()
}

// pidAlive reports whether pid runs and its command line mentions marker, so
// a recycled PID of someone else's process is never signalled.
func pidAlive(pid int, marker string) bool {
	if pid <= 0 {
		return false
	}
	// Around exec (ip netns exec → the program) the command line reads empty
	// for a moment: look again before deciding the process is not ours.
	for range 50 {
		cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			return false
		}
		if len(cmd) > 0 {
			return marker == "" || bytes.Contains(cmd, []byte(marker))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}
