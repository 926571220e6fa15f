package measure

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"podpath/internal/model"
	"podpath/internal/plan"
)

// A pair picked for depth whose in-depth request got no answer is unknown,
// whatever the cheap check saw; an answered one replaces the cheap result.
func TestMerge(t *testing.T) {
	cheap := model.Pair{From: "a", To: "b", Reachable: true, FullSizeLost: 1500}
	lost := model.Pair{From: "a", To: "b", Unknown: "the controller could not ask the agent on a: connection refused"}

	p := cheap
	merge(&p, lost)
	if !strings.HasPrefix(p.Unknown, "measured only in part: ") || !strings.Contains(p.Unknown, "connection refused") {
		t.Errorf("deep request lost: Unknown %q; want it unknown with the reason", p.Unknown)
	}
	if p.FullSizeLost != 1500 {
		t.Errorf("the cheap check's evidence went: %+v", p)
	}

	p = model.Pair{Unknown: "no agent answered"}
	merge(&p, lost)
	if p.Unknown != "no agent answered" {
		t.Errorf("an unknown pair's first reason was replaced: %q", p.Unknown)
	}

	p = cheap
	deep := model.Pair{From: "a", To: "b", Reachable: true, PathMTU: 1400, IfaceMTU: 1500}
	merge(&p, deep)
	if !reflect.DeepEqual(p, deep) {
		t.Errorf("an answered deep request: %+v; want %+v", p, deep)
	}
}

// What the run's own load can cause, and what a confirmed size limit explains.
func TestLossLike(t *testing.T) {
	ms := 1.0
	for _, c := range []struct {
		name string
		p    model.Pair
		want bool
	}{
		{"healthy", model.Pair{Reachable: true, PathMTU: 1500, IfaceMTU: 1500, TCPConnectTried: 1, TCPConnectMs: &model.Percentiles{Mean: ms}}, false},
		{"unreachable", model.Pair{}, true},
		{"no agent", model.Pair{NoAgent: true}, true},
		{"echo loss", model.Pair{Reachable: true, LossPct: 20}, true},
		{"handshakes failing", model.Pair{Reachable: true, TCPConnectTried: 2}, true},
		{"full size lost, no size search", model.Pair{Reachable: true, FullSizeLost: 1500}, true},
		{"stalled, no size limit", model.Pair{Reachable: true, PathMTU: 1500, IfaceMTU: 1500, Stalled: true}, true},
		{"stalled under a confirmed limit", model.Pair{Reachable: true, PathMTU: 1400, IfaceMTU: 1500, Stalled: true, FullSizeLost: 1500}, false},
		{"loss under a confirmed limit", model.Pair{Reachable: true, PathMTU: 1400, IfaceMTU: 1500, LossPct: 10}, true},
		{"unknown", model.Pair{Unknown: "x"}, false},
	} {
		if got := lossLike(c.p); got != c.want {
			t.Errorf("%s: lossLike %v; want %v", c.name, got, c.want)
		}
	}
}

// Past the bound, the odd pairs measured in depth are spread over the
// senders, and none is lost or taken twice.
func TestSample(t *testing.T) {
	var pairs []at
	for from := range 10 {
		for to := range 10 {
			if from != to {
				pairs = append(pairs, at{plan.Pair{Layer: model.LayerNode,
					From: plan.Endpoint{Node: fmt.Sprint("n", from)}, To: plan.Endpoint{Node: fmt.Sprint("n", to)}}, len(pairs)})
			}
		}
	}
	picked, left := sample(pairs, 25)
	if len(picked) != 25 || len(left) != len(pairs)-25 {
		t.Fatalf("picked %d, left %d of %d; want 25 and the rest", len(picked), len(left), len(pairs))
	}
	per := map[string]int{}
	seen := map[[3]string]bool{}
	for _, p := range append(picked, left...) {
		if seen[p.Key()] {
			t.Errorf("%v twice", p.Key())
		}
		seen[p.Key()] = true
	}
	for _, p := range picked {
		per[p.From.Node]++
	}
	for n, c := range per {
		if c < 2 || c > 3 {
			t.Errorf("sender %s: %d picked; want 2 or 3 (25 spread over 10)", n, c)
		}
	}
	if all, rest := sample(pairs[:5], 25); len(all) != 5 || rest != nil {
		t.Errorf("under the bound: picked %d, left %d; want all, none", len(all), len(rest))
	}
}
