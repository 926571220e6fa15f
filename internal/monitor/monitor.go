// Package monitor is the agent's continuous mode: it probes every peer
// agent of its own DaemonSet once per period at a bounded rate (Schedule),
// keeps what each visit measured (State), and exports per-node aggregates
// and the few worst peers as Prometheus metrics, so the series grow with
// the nodes, not with the pairs.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"podpath/internal/model"
)

// Bounds of the monitor's work.
const (
	visitTimeout = 15 * time.Second // one peer visit: echo, full-size echo, and a path-MTU search (rounds of ≤ 1 s)
	maxInFlight  = 64               // visits at once: a slow or silent peer must not hold up the schedule
)

// Peer is an agent to probe.
type Peer struct {
	Name    string `json:"name"`    // its node
	Address string `json:"address"` // IP:port of its UDP responder
}

// Prober visits one peer. last is what the previous visit learned of the
// path MTU (nil: nothing); search asks for a byte-exact search even when
// the last limit still holds.
type Prober interface {
	Probe(ctx context.Context, p Peer, last *MTUResult, search bool) Result
}

// Config is a monitor's setup.
type Config struct {
	Node   string      // this agent's node
	Layer  model.Layer // model.LayerPod or model.LayerNode
	Period time.Duration
	Rate   float64 // visits per second at most
	Prober Prober
	// Peers delivers the whole peer set each time it changes (the latest
	// one counts); the monitor never probes anyone else.
	Peers <-chan []Peer
	// Facts, for the host agent, reads the node's Calico state every
	// FactsInterval (BIRD's BGP sessions and Felix's readiness).
	Facts         func(context.Context) model.Calico
	FactsInterval time.Duration
	Registerer    prometheus.Registerer // the metrics go here while Run runs
	Logger        *slog.Logger
}

// Monitor is a configured continuous prober.
type Monitor struct {
	cfg     Config
	state   *State
	facts   *factsState
	metrics *metrics
}

// New checks cfg and makes a monitor.
func New(cfg Config) (*Monitor, error) {
	switch {
	case cfg.Layer != model.LayerPod && cfg.Layer != model.LayerNode:
		return nil, fmt.Errorf("monitor layer %q: use %s or %s", cfg.Layer, model.LayerPod, model.LayerNode)
	case cfg.Period <= 0:
		return nil, errors.New("monitor period must be positive")
	case cfg.Rate <= 0:
		return nil, errors.New("monitor rate must be positive")
	case cfg.Prober == nil || cfg.Peers == nil || cfg.Registerer == nil:
		return nil, errors.New("monitor needs a prober, a peer source and a metrics registry")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Monitor{cfg: cfg, state: NewState(cfg.Layer)}
	if cfg.Facts != nil {
		m.facts = &factsState{}
	}
	m.metrics = newMetrics(cfg.Registerer, cfg.Node, cfg.Layer, m.state, m.facts)
	return m, nil
}

// State is the monitor's per-peer view.
func (m *Monitor) State() *State { return m.state }

// Run probes until ctx ends, then waits for the visits in flight and
// removes its metrics.
func (m *Monitor) Run(ctx context.Context) error {
	if err := m.metrics.register(); err != nil {
		return fmt.Errorf("register monitor metrics: %w", err)
	}
	defer m.metrics.unregister()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: visits end at once

	if m.facts != nil {
		wg.Go(func() { m.readFacts(ctx) })
	}
	sched := NewSchedule(m.cfg.Node, m.cfg.Period, m.cfg.Rate, time.Now())
	// The schedule spaces visits; the limiter makes the rate a hard cap
	// even when visits fall behind and their times are all in the past.
	limiter := rate.NewLimiter(rate.Limit(m.cfg.Rate), 1)
	sem := make(chan struct{}, maxInFlight)
	peers := map[string]Peer{}
	var (
		next    string
		nextAt  time.Time
		pending bool
	)
	for {
		if !pending {
			next, nextAt, pending = sched.Next()
		}
		var due <-chan time.Time
		if pending {
			due = time.After(nextAt.Sub(time.Now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case set := <-m.cfg.Peers:
			now := time.Now()
			peers = map[string]Peer{}
			names := make([]string, 0, len(set))
			for _, p := range set {
				if p.Name == m.cfg.Node {
					continue
				}
				peers[p.Name] = p
				names = append(names, p.Name)
			}
			sched.SetPeers(names, now)
			if _, err := Base(len(names), m.cfg.Period, m.cfg.Rate); err != nil {
				m.cfg.Logger.Warn("peers will not all be visited within the period: raise --rate or --period",
					"peers", len(names), "period", m.cfg.Period, "rate", m.cfg.Rate)
			}
			m.state.Retain(slices.Collect(maps.Values(peers)), now)
			if _, ok := peers[next]; pending && !ok {
				pending = false // left while waiting for its slot
			}
		case <-due:
			pending = false
			p, ok := peers[next]
			if !ok {
				continue
			}
			if err := limiter.Wait(ctx); err != nil {
				return nil
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Go(func() {
				defer func() { <-sem }()
				m.visit(ctx, p)
			})
		}
	}
}

// visit probes one peer and records what came back.
func (m *Monitor) visit(ctx context.Context, p Peer) {
	ctx, cancel := context.WithTimeout(ctx, visitTimeout)
	defer cancel()
	last, checked := m.state.lastMTU(p.Name)
	search := !checked.IsZero() && time.Now().Sub(checked) > mtuStale*m.cfg.Period
	r := m.cfg.Prober.Probe(ctx, p, last, search)
	if ctx.Err() != nil && !r.Answered && errors.Is(context.Cause(ctx), context.Canceled) {
		return // shutting down: not a loss
	}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	if !r.Sent {
		m.cfg.Logger.Warn("visit sent nothing", "peer", p.Name, "err", r.Err)
		m.state.NoteError(p.Name, r.Err)
		return
	}
	m.metrics.observe(r)
	m.state.Record(p.Name, r)
}

// readFacts reads the host facts at start and every FactsInterval.
func (m *Monitor) readFacts(ctx context.Context) {
	interval := m.cfg.FactsInterval
	if interval <= 0 {
		interval = m.cfg.Period
	}
	for {
		m.facts.update(ctx, m.cfg.Facts)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// PairsHandler serves GET /debug/pairs: every pair this agent watches,
// with its window, path MTU and findings.
func (m *Monitor) PairsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Node  string      `json:"node"`
			Layer model.Layer `json:"layer"`
			Pairs []Pair      `json:"pairs"`
		}{m.cfg.Node, m.cfg.Layer, m.state.Pairs()})
	})
}
