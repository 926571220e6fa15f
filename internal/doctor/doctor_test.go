package doctor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
)

const token = "0123456789abcdef0123456789abcdef"

// agents starts n real agents on loopback and returns their inventory.
func agents(t *testing.T, n int) *inventory.Inventory {
	t.Helper()
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind}
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan struct{}
	t.Cleanup(func() {
		cancel()
		for _, d := range done {
			<-d
		}
	})
	for i := range n {
		name := string(rune('a' + i))
		a, err := agent.New(agent.Config{Name: name, Role: "host", Token: token,
			Facts: func(context.Context) (any, error) { return model.Facts{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ln, pc, err := agent.ListenPair("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d := make(chan struct{})
		done = append(done, d)
		go func() { _ = a.Serve(ctx, ln, pc); close(d) }()
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: name, Address: "127.0.0.1", Agent: ln.Addr().String()})
	}
	return inv
}

// The pipeline without the command: three agents answering real probes,
// every pair measured in depth (three is a full mesh), nothing wrong.
func TestRunThreeAgents(t *testing.T) {
	inv := agents(t, 3)
	var said []string
	rep, err := Run(t.Context(), &cluster.Session{Inventory: inv, Token: token}, Options{Layers: []model.Layer{model.LayerNode},
		Timeout: 30 * time.Second, Say: func(f string, a ...any) { said = append(said, f) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pairs.Len() != 6 {
		t.Fatalf("%d pairs; want 6 (3 agents, ordered pairs)", rep.Pairs.Len())
	}
	for _, p := range rep.Pairs.All() {
		if !p.Measured() || !p.Reachable || p.PathMTU == 0 || p.RTTMs == nil {
			t.Errorf("%s → %s: %+v; want reachable, path MTU and RTT measured", p.From, p.To, p)
		}
	}
	for _, f := range rep.Findings {
		if f.Severity == model.SeverityError {
			t.Errorf("error finding %s (%s) on healthy loopback agents", f.ID, f.Title)
		}
	}
	if len(rep.Nodes) != 3 || rep.DurationMs <= 0 || len(said) < 3 {
		t.Errorf("nodes %d, duration %.0f ms, progress %q", len(rep.Nodes), rep.DurationMs, said)
	}
}

// One agent is no mesh: said before anything is sent.
func TestRunNothingToDiagnose(t *testing.T) {
	inv := agents(t, 1)
	if _, err := Run(t.Context(), &cluster.Session{Inventory: inv, Token: token}, Options{Layers: []model.Layer{model.LayerNode}, Timeout: time.Second}); !errors.Is(err, ErrNothingToDiagnose) {
		t.Errorf("one agent: %v; want ErrNothingToDiagnose", err)
	}
}

// Agents that answer nobody (the wrong token): no report to invent, an
// error that says why.
func TestRunNoAgentAnswers(t *testing.T) {
	inv := agents(t, 2)
	_, err := Run(t.Context(), &cluster.Session{Inventory: inv, Token: "another-token-another-token-1234"}, Options{Layers: []model.Layer{model.LayerNode}, Timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "no agent answered") || !strings.Contains(err.Error(), "wrong token") {
		t.Fatalf("a run no agent answered: %v; want no report, and why", err)
	}
}
