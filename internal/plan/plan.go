// Package plan decides, without touching the network, which agent probes
// which: the pairs of a run, per layer.
package plan

import (
	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
)

// Endpoint is one agent: a node's host agent or a Pod-network agent.
type Endpoint struct {
	Node  string
	Pod   string // "" on the node layer
	Agent string // IP:port
	Netns string // namespace to reach the agent from; "" = here
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

// Mesh plans a full mesh per layer: every node's agent probes every other
// node's agent; on the Pod layer the first Pod-network agent of each node
// stands for the node. Nodes without an agent on a layer are left out of
// that layer.
func Mesh(inv *inventory.Inventory, layers ...model.Layer) []Job {
	var jobs []Job
	for _, layer := range layers {
		var eps []Endpoint
		for _, n := range inv.Nodes {
			switch layer {
			case model.LayerNode:
				if n.Agent != "" {
					eps = append(eps, Endpoint{Node: n.Name, Agent: n.Agent, Netns: n.Netns})
				}
			case model.LayerPod:
				if len(n.Pods) > 0 && n.Pods[0].Agent != "" {
					p := n.Pods[0]
					eps = append(eps, Endpoint{Node: n.Name, Pod: p.Name, Agent: p.Agent, Netns: p.Netns})
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
