package plan

import (
	"fmt"
	"testing"

	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
)

func meshOf(n int) []Job {
	inv := &inventory.Inventory{}
	for i := range n {
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: fmt.Sprintf("n%d", i), Address: fmt.Sprintf("10.0.%d.%d", i%4, i), Agent: fmt.Sprintf("10.0.%d.%d:7946", i%4, i)})
	}
	return Mesh(inv, model.LayerNode)
}

func TestCoverIsEveryPairOnSmallLayers(t *testing.T) {
	jobs := meshOf(FullMeshUpTo)
	if got, want := len(Cover(jobs, func(string) string { return "" })), FullMeshUpTo*(FullMeshUpTo-1); got != want {
		t.Fatalf("cover of %d agents: %d pairs, want every one of %d", FullMeshUpTo, got, want)
	}
}

// Above FullMeshUpTo the cover grows with the agents, not their square,
// and still has every agent send and receive CoverDegree times and every
// ordered pair of link classes joined.
func TestCoverGrowsLinearlyAndCoversClasses(t *testing.T) {
	for _, n := range []int{11, 100, 1000} {
		jobs := meshOf(n)
		class := func(node string) string {
			var i int
			fmt.Sscanf(node, "n%d", &i)
			return fmt.Sprint(i % 4)
		}
		cover := Cover(jobs, class)
		out, in := map[string]int{}, map[string]int{}
		joined := map[[2]string]bool{}
		for _, p := range cover {
			if p.From.Node == p.To.Node {
				t.Fatalf("n=%d: a pair from %s to itself", n, p.From.Node)
			}
			out[p.From.Node]++
			in[p.To.Node]++
			joined[[2]string{class(p.From.Node), class(p.To.Node)}] = true
		}
		if len(cover) > CoverDegree*n+16 {
			t.Errorf("n=%d: %d pairs in the cover, want about %d", n, len(cover), CoverDegree*n)
		}
		for _, j := range jobs {
			if out[j.From.Node] < CoverDegree || in[j.From.Node] < CoverDegree {
				t.Errorf("n=%d: %s sends %d and receives %d, want at least %d each", n, j.From.Node, out[j.From.Node], in[j.From.Node], CoverDegree)
			}
		}
		if len(joined) != 16 {
			t.Errorf("n=%d: %d of 16 ordered class pairs joined", n, len(joined))
		}
	}
}

func TestWavesBoundEachAgentAndTheRound(t *testing.T) {
	pairs := Pairs(meshOf(30))
	waves := Waves(pairs, 2, 25)
	total := 0
	for i, w := range waves {
		if len(w) > 25 {
			t.Errorf("wave %d holds %d pairs, bound 25", i, len(w))
		}
		out, in := map[string]int{}, map[string]int{}
		for _, p := range w {
			out[p.From.Node]++
			in[p.To.Node]++
			if out[p.From.Node] > 2 || in[p.To.Node] > 2 {
				t.Fatalf("wave %d: %s → %s over the bound of 2 per agent", i, p.From.Node, p.To.Node)
			}
		}
		total += len(w)
	}
	if total != len(pairs) {
		t.Fatalf("waves hold %d pairs, want all %d", total, len(pairs))
	}
}

func TestRotatedStartsAfterItself(t *testing.T) {
	for _, j := range Rotated(meshOf(5)) {
		var i, k int
		fmt.Sscanf(j.From.Node, "n%d", &i)
		fmt.Sscanf(j.Peers[0].Node, "n%d", &k)
		if k != (i+1)%5 || len(j.Peers) != 4 {
			t.Errorf("%s starts on %s (of %d peers), want n%d", j.From.Node, j.Peers[0].Node, len(j.Peers), (i+1)%5)
		}
	}
	if got := Group(Pairs(meshOf(4))); len(got) != 4 || len(got[0].Peers) != 3 {
		t.Errorf("Group of a 4-agent mesh: %d jobs", len(got))
	}
}
