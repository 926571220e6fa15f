package doctor

import (
	"fmt"
	"net/netip"
	"testing"

	"podpath/internal/cluster"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kube"
	"podpath/internal/model"
)

// Every node's Pod agent asks the Service and each CoreDNS Pod, at their
// DNS port; no checks without the large name (the run could not create
// it) or without a cluster DNS.
func TestDNSJobs(t *testing.T) {
	s := &cluster.Session{Inventory: &inventory.Inventory{}}
	for i := range 4 {
		n := fmt.Sprintf("node%d", i)
		s.Inventory.Nodes = append(s.Inventory.Nodes, inventory.Node{Name: n, Agent: fmt.Sprintf("198.18.0.%d:7946", i),
			Pods: []inventory.Pod{{Name: "pod-" + n, Agent: fmt.Sprintf("10.0.0.%d:7946", i)}}})
	}
	if jobs := dnsJobs(s); len(jobs) != 0 {
		t.Errorf("no cluster DNS: %d jobs", len(jobs))
	}
	s.DNS = &kube.DNS{Service: "kube-system/coredns", Address: netip.MustParseAddr("10.233.0.3"), Port: 53, Domain: "cluster.local",
		Pods: []kube.DNSPod{{Name: "coredns-a", Node: "node1", Address: netip.MustParseAddr("10.0.1.5"), Ready: true},
			{Name: "coredns-c", Node: "node3", Address: netip.MustParseAddr("10.0.3.5")}, // not Ready: not asked
			{Name: "coredns-b", Node: "node2", Address: netip.MustParseAddr("10.0.2.5"), Ready: true}}}
	if jobs := dnsJobs(s); len(jobs) != 0 {
		t.Errorf("no large name: %d jobs", len(jobs))
	}
	s.DNSLarge = "dns-large.podpath-1.svc.cluster.local"
	jobs := dnsJobs(s)
	if len(jobs) != 4 {
		t.Fatalf("%d jobs; want one per node", len(jobs))
	}
	for _, j := range jobs {
		if j.Layer != model.LayerDNS || j.From.Pod != "pod-"+j.From.Node || len(j.Peers) != 3 ||
			j.Peers[0].Agent != "10.233.0.3:53" || j.Peers[0].Node != "" || j.Peers[1].Agent != "10.0.1.5:53" || j.Peers[2].Node != "node2" {
			t.Errorf("job %+v; want the node's Pod asking the Service, then coredns-a and coredns-b at port 53", j)
		}
	}
	// The names and what the answers should be.
	qs := dnsQuestions("cluster.local", s.DNSLarge)
	if len(qs) != 4 || qs[0].query.Name != "kubernetes.default.svc.cluster.local" || qs[0].query.TCP || !qs[3].query.TCP || qs[2].want < 2900 || qs[2].want > 4096 {
		t.Errorf("questions %+v", qs)
	}
	p := model.Pair{From: "node0", ToPod: "kube-system/coredns", Layer: model.LayerDNS, DNS: make([]model.DNSAnswer, 4)}
	nameDNS(&p, s, qs)
	if p.To != "" || p.ToPod != "" || p.Service != "kube-system/coredns 10.233.0.3:53" || p.DNS[2].Size != "large" || p.DNS[2].Want != qs[2].want {
		t.Errorf("the Service's check named %+v", p)
	}
}
