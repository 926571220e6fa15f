package doctor

import (
	"fmt"
	"strconv"
	"testing"

	"podpath/internal/cluster"
	"podpath/internal/cluster/inventory"
	"podpath/internal/deploy"
	"podpath/internal/model"
	"podpath/internal/plan"
)

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Every node's Pod agent goes through the Services of ServiceTargets
// other nodes (fewer when there are fewer), never its own, and every
// backend is reached from more than one sender.
func TestServiceJobs(t *testing.T) {
	for _, tc := range []struct{ nodes, services, perSender int }{{2, 2, 1}, {3, 3, 2}, {10, 10, 3}, {40, 16, 3}} {
		t.Run(fmt.Sprintf("%d_nodes_%d_services", tc.nodes, tc.services), func(t *testing.T) {
			s := &cluster.Session{Inventory: &inventory.Inventory{}}
			for i := range tc.nodes {
				n := fmt.Sprintf("node%d", i)
				s.Inventory.Nodes = append(s.Inventory.Nodes, inventory.Node{Name: n, Address: fmt.Sprintf("198.18.0.%d", i), Agent: fmt.Sprintf("198.18.0.%d:7946", i),
					Pods: []inventory.Pod{{Name: "pod-" + n, Address: fmt.Sprintf("10.0.0.%d", i), Agent: fmt.Sprintf("10.0.0.%d:7946", i)}}})
				if i < tc.services {
					s.Services = append(s.Services, deploy.ServiceOf{Backend: deploy.Backend{Node: n, Pod: "pod-" + n}, Address: fmt.Sprintf("10.96.0.%d:7946", i), NodePort: 30000 + i})
				}
			}
			jobs := serviceJobs(s)
			if len(jobs) != 2*tc.nodes {
				t.Fatalf("%d jobs; want two per node (%d): its Pod's and its host's", len(jobs), 2*tc.nodes)
			}
			reached := map[string]int{}
			for _, j := range jobs {
				if j.Layer == model.LayerNodePort {
					for _, p := range j.Peers {
						if want := fmt.Sprintf("198.18.0.%s:%d", p.Node[4:], 30000+atoi(p.Node[4:])); p.Agent != want || p.Node == j.From.Node || p.Pod != "pod-"+p.Node {
							t.Errorf("%s's host → %+v; want another node's address and its backend's NodePort %s", j.From.Node, p, want)
						}
					}
					continue
				}
				if len(j.Peers) != tc.perSender {
					t.Errorf("%s goes through %d Services; want %d", j.From.Node, len(j.Peers), tc.perSender)
				}
				for _, p := range j.Peers {
					if p.Node == j.From.Node {
						t.Errorf("%s goes through its own Service", p.Node)
					}
					if p.Pod != "pod-"+p.Node || p.Agent[:6] != "10.96." {
						t.Errorf("peer %+v: want the backend's Pod name at the Service's address", p)
					}
					reached[p.Node]++
				}
			}
			for _, svc := range s.Services {
				if want := min(2, tc.nodes-1); reached[svc.Node] < want {
					t.Errorf("backend %s reached from %d senders; want at least %d", svc.Node, reached[svc.Node], want)
				}
			}
		})
	}
}

// A check whose direct path failed in the mesh is not made: it would fail
// too, and cost the run a timeout; it is in the report as not checked.
func TestWithDirectPath(t *testing.T) {
	jobs := []plan.Job{
		{Layer: model.LayerService, From: plan.Endpoint{Node: "node1", Pod: "p1"}, Peers: []plan.Endpoint{{Node: "node2", Pod: "p2"}, {Node: "node3", Pod: "p3"}}},
		{Layer: model.LayerNodePort, From: plan.Endpoint{Node: "node1"}, Peers: []plan.Endpoint{{Node: "node2", Pod: "p2"}}},
	}
	mesh := model.PairsOf([]model.Pair{
		{From: "node1", To: "node2", Layer: model.LayerPod, Reachable: true},
		{From: "node1", To: "node3", Layer: model.LayerPod, Reachable: true, Stalled: true},
		{From: "node1", To: "node2", Layer: model.LayerNode, Reachable: true},
	})
	keep, skipped := withDirectPath(jobs, mesh)
	if len(keep) != 2 || len(keep[0].Peers) != 1 || keep[0].Peers[0].Node != "node2" || len(keep[1].Peers) != 1 {
		t.Errorf("kept %+v; want node1's Pod → node2 and node1's host → node2", keep)
	}
	if len(skipped) != 1 || skipped[0].To != "node3" || skipped[0].Layer != model.LayerService || skipped[0].Measured() {
		t.Errorf("skipped %+v; want node1 → node3 (its direct upload stalled), not measured", skipped)
	}
}
