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
