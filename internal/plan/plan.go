// Package plan decides, without touching the network, which agent probes
// which: the pairs of a run, per layer.
package plan

import (
	"net/netip"

	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
)

// Endpoint is one agent: a node's host agent or a Pod-network agent.
type Endpoint struct {
	Node  string
	Pod   string // "" on the node layer
	Agent string // IP:port
	Netns string // namespace to reach the agent from; "" = here
	// Probe is the IP:port its peers probe when not Agent: its IPv6
	// address on a dual-stack cluster (Mesh6). The controller still asks
	// the agent at Agent, so a fault on IPv6 never cuts the control channel.
	Probe string
	// Family is model.FamilyIPv6 on Mesh6's endpoints: their pairs'.
	Family string
}

// ProbeAt is the IP:port the endpoint's peers probe.
func (e Endpoint) ProbeAt() string {
	if e.Probe != "" {
		return e.Probe
	}
	return e.Agent
}

// Name is how the endpoint is known to its peers.
func (e Endpoint) Name() string {
	if e.Pod != "" {
		return e.Pod
	}
	return e.Node
}

// Job is one agent's share of a run: probe every peer.
type Job struct {
	Layer model.Layer
	From  Endpoint
	Peers []Endpoint
}

// Pair is the names of the job's pair towards to, nothing measured yet.
func (j Job) Pair(to Endpoint) model.Pair {
	return model.Pair{From: j.From.Node, To: to.Node, Layer: j.Layer, FromPod: j.From.Pod, ToPod: to.Pod, Family: j.From.Family}
}

// Mesh plans a full mesh per layer: every node's agent probes every other
// node's agent; on the Pod layer the first Pod-network agent of each node
// stands for the node. Nodes without an agent on a layer are left out of
// that layer.
func Mesh(inv *inventory.Inventory, layers ...model.Layer) []Job { return mesh(inv, "", layers) }

// Mesh6 plans the same mesh between the IPv6 addresses of a dual-stack
// cluster's nodes and Pods (inventory address6), each probed at its
// agent's port. Endpoints without one are left out; nil when none has.
func Mesh6(inv *inventory.Inventory, layers ...model.Layer) []Job {
	return mesh(inv, model.FamilyIPv6, layers)
}

func mesh(inv *inventory.Inventory, family string, layers []model.Layer) []Job {
	var jobs []Job
	for _, layer := range layers {
		var eps []Endpoint
		add := func(e Endpoint, addr6 string) {
			if family == "" {
				eps = append(eps, e)
				return
			}
			a, err := netip.ParseAddr(addr6)
			ap, perr := netip.ParseAddrPort(e.Agent)
			if err != nil || perr != nil {
				return
			}
			e.Probe, e.Family = netip.AddrPortFrom(a, ap.Port()).String(), family
			eps = append(eps, e)
		}
		for _, n := range inv.Nodes {
			switch layer {
			case model.LayerNode:
				if n.Agent != "" {
					add(Endpoint{Node: n.Name, Agent: n.Agent, Netns: n.Netns}, n.Address6)
				}
			case model.LayerPod:
				if len(n.Pods) > 0 && n.Pods[0].Agent != "" {
					p := n.Pods[0]
					add(Endpoint{Node: n.Name, Pod: p.Name, Agent: p.Agent, Netns: p.Netns}, p.Address6)
				}
			}
		}
		for i, from := range eps {
			peers := make([]Endpoint, 0, len(eps)-1)
			for j, to := range eps {
				if i != j {
					peers = append(peers, to)
				}
			}
			if len(peers) > 0 {
				jobs = append(jobs, Job{Layer: layer, From: from, Peers: peers})
			}
		}
	}
	return jobs
}
