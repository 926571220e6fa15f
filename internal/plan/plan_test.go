package plan

import (
	"testing"

	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
)

func TestMesh(t *testing.T) {
	inv := &inventory.Inventory{Nodes: []inventory.Node{
		{Name: "node1", Agent: "198.18.0.1:7946", Pods: []inventory.Pod{{Name: "p1", Agent: "10.233.64.1:7946"}}},
		{Name: "node2", Agent: "198.18.0.2:7946", Pods: []inventory.Pod{{Name: "p2", Agent: "10.233.64.65:7946"}}},
		{Name: "node3", Agent: "198.18.0.3:7946"}, // no Pod agent: node layer only
	}}
	jobs := Mesh(inv, model.LayerNode, model.LayerPod)
	pairs := map[model.Layer]int{}
	for _, j := range jobs {
		pairs[j.Layer] += len(j.Peers)
		for _, p := range j.Peers {
			if p.Node == j.From.Node {
				t.Errorf("%s probes itself", j.From.Node)
			}
		}
	}
	if pairs[model.LayerNode] != 6 || pairs[model.LayerPod] != 2 {
		t.Errorf("ordered pairs = %v; want 6 on the node layer, 2 on the Pod layer", pairs)
	}
	if jobs[3].From.Name() != "p1" || jobs[3].Peers[0].Name() != "p2" {
		t.Errorf("Pod job = %+v", jobs[3])
	}
}

// Mesh6: the same mesh between the IPv6 addresses, probed at the agents'
// ports, the control address kept; endpoints without one left out.
func TestMesh6(t *testing.T) {
	inv := &inventory.Inventory{Nodes: []inventory.Node{
		{Name: "node1", Agent: "198.18.0.1:7946", Address6: "fd00::1", Pods: []inventory.Pod{{Name: "p1", Agent: "10.233.64.1:7946", Address6: "fd85::1"}}},
		{Name: "node2", Agent: "198.18.0.2:7946", Address6: "fd00::2", Pods: []inventory.Pod{{Name: "p2", Agent: "10.233.64.65:7946", Address6: "fd85::41"}}},
		{Name: "node3", Agent: "198.18.0.3:7946"}, // IPv4 only
	}}
	jobs := Mesh6(inv, model.LayerNode, model.LayerPod)
	if len(jobs) != 4 {
		t.Fatalf("jobs = %+v; want node1 and node2 on each layer", jobs)
	}
	j := jobs[2] // p1 → p2
	if j.From.Agent != "10.233.64.1:7946" || j.Peers[0].ProbeAt() != "[fd85::41]:7946" || j.Peers[0].Agent != "10.233.64.65:7946" {
		t.Errorf("Pod job %+v: want the control address kept and the peer probed at its IPv6 address", j)
	}
	if p := j.Pair(j.Peers[0]); p.Family != model.FamilyIPv6 || p.From != "node1" || p.ToPod != "p2" {
		t.Errorf("pair %+v: want node1 → node2, family ipv6", p)
	}
	if Mesh6(&inventory.Inventory{Nodes: inv.Nodes[2:]}, model.LayerNode) != nil {
		t.Error("an IPv4-only inventory has IPv6 jobs")
	}
	if p := Mesh(inv, model.LayerNode)[0]; p.Peers[0].ProbeAt() != "198.18.0.2:7946" || p.Pair(p.Peers[0]).Family != "" {
		t.Errorf("Mesh's pairs are the first addresses': %+v", p)
	}
}
