package doctor

import (
	"fmt"
	"testing"

	"podpath/internal/cluster"
	"podpath/internal/cluster/inventory"
	"podpath/internal/deploy"
)

// Every node's Pod agent goes through the Services of ServiceTargets
// other nodes (fewer when there are fewer), never its own, and every
// backend is reached from more than one sender.
func TestServiceJobs(t *testing.T) {
	for _, tc := range []struct{ nodes, services, perSender int }{{2, 2, 1}, {3, 3, 2}, {10, 10, 3}, {40, 16, 3}} {
		t.Run(fmt.Sprintf("%d_nodes_%d_services", tc.nodes, tc.services), func(t *testing.T) {
			s := &cluster.Session{Inventory: &inventory.Inventory{}}
			for i := range tc.nodes {
				n := fmt.Sprintf("node%d", i)
				s.Inventory.Nodes = append(s.Inventory.Nodes, inventory.Node{Name: n,
					Pods: []inventory.Pod{{Name: "pod-" + n, Address: fmt.Sprintf("10.0.0.%d", i), Agent: fmt.Sprintf("10.0.0.%d:7946", i)}}})
				if i < tc.services {
					s.Services = append(s.Services, deploy.ServiceOf{Backend: deploy.Backend{Node: n, Pod: "pod-" + n}, Address: fmt.Sprintf("10.96.0.%d:7946", i)})
				}
			}
			jobs := serviceJobs(s)
			if len(jobs) != tc.nodes {
				t.Fatalf("%d jobs; want one per node (%d)", len(jobs), tc.nodes)
			}
			reached := map[string]int{}
			for _, j := range jobs {
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
