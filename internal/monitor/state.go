package monitor

import (
	"slices"
	"sync"
	"time"

	"podpath/internal/diagnose"

	"podpath/internal/model"
)

// Thresholds of the per-pair findings. A pair is probed once a period, so
// its window is short: these are about persistent trouble, not one lost
// echo.
const (
	window         = 10                     // outcomes kept per pair
	unreachableRun = 3                      // consecutive losses that make a peer unreachable
	lossLimit      = 2                      // more lost visits than this in the window is packet-loss
	highLatency    = 100 * time.Millisecond // median round trip above this is high-latency
	mtuStale       = 3                      // periods after which a measured path MTU is searched again
)

// Result is what one visit to a peer measured.
type Result struct {
	At       time.Time
	Answered bool          // the small echo came back
	RTT      time.Duration // its round trip, when answered
	// MTU is set when the path MTU was checked on this visit.
	MTU *MTUResult
	// Sent: the echo left. A visit that could not send (no socket, a bad
	// address) measured nothing about the network and is no loss.
	Sent bool
	Err  string // what went wrong, if anything
}

// MTUResult is a visit's path-MTU check.
type MTUResult struct {
	IfaceMTU int    `json:"ifaceMTU"` // the sender's interface MTU towards the peer
	PathMTU  int    `json:"pathMTU"`  // largest packet that crossed
	Limit    string `json:"limit"`    // as probe.PMTUResult: none, silent, icmp, local
	Searched bool   `json:"searched"` // a full search ran (the full-size echo was lost)
}

// Pair is this agent's view of one peer, as /debug/pairs shows it.
type Pair struct {
	Peer      string    `json:"peer"`
	Address   string    `json:"address"`
	Since     time.Time `json:"since"` // when the peer joined this agent's set
	Probes    int       `json:"probes"`
	LastProbe time.Time `json:"lastProbe,omitzero"`
	// Window is the last outcomes, oldest first: true = answered.
	Window     []bool        `json:"window"`
	LossRatio  float64       `json:"lossRatio"`
	LostInRow  int           `json:"lostInRow"`
	LastRTT    time.Duration `json:"lastRTTNs,omitempty"`
	MedianRTT  time.Duration `json:"medianRTTNs,omitempty"`
	MTU        *MTUResult    `json:"mtu,omitempty"`
	MTUChecked time.Time     `json:"mtuChecked,omitzero"`
	Findings   []string      `json:"findings,omitempty"`
	LastError  string        `json:"lastError,omitempty"`
	rtts       [window]time.Duration
	nrtt       int
}

// State holds every pair of one agent. Safe for concurrent use: probes
// record into it while the metrics read it.
type State struct {
	layer model.Layer // which unreachable finding applies
	mu    sync.Mutex
	pairs map[string]*Pair
}

// NewState makes an empty state for an agent of layer.
func NewState(layer model.Layer) *State {
	return &State{layer: layer, pairs: map[string]*Pair{}}
}

// Retain keeps exactly these peers: new ones start empty, gone ones are
// forgotten with everything measured about them (their metrics go too).
func (s *State) Retain(peers []Peer, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]bool{}
	for _, p := range peers {
		keep[p.Name] = true
		if cur, ok := s.pairs[p.Name]; ok {
			if cur.Address != p.Address {
				// A new agent Pod behind the name: what was measured was
				// measured to another Pod.
				s.pairs[p.Name] = &Pair{Peer: p.Name, Address: p.Address, Since: now}
			}
			continue
		}
		s.pairs[p.Name] = &Pair{Peer: p.Name, Address: p.Address, Since: now}
	}
	for name := range s.pairs {
		if !keep[name] {
			delete(s.pairs, name)
		}
	}
}

// Record adds a visit's result; a peer that left meanwhile is ignored.
func (s *State) Record(peer string, r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairs[peer]
	if !ok {
		return
	}
	p.Probes++
	p.LastProbe = r.At
	p.LastError = r.Err
	p.Window = append(p.Window, r.Answered)
	if len(p.Window) > window {
		p.Window = p.Window[len(p.Window)-window:]
	}
	if r.Answered {
		p.LostInRow = 0
		p.LastRTT = r.RTT
		p.rtts[p.nrtt%window] = r.RTT
		p.nrtt++
	} else {
		p.LostInRow++
	}
	if r.MTU != nil {
		p.MTU = r.MTU
		// Only a search or a full-size echo that crossed measures the
		// path; "the old limit still holds" must not put off the next
		// search, or a limit that rose would never be seen.
		if r.MTU.Searched || r.MTU.PathMTU == r.MTU.IfaceMTU {
			p.MTUChecked = r.At
		}
	}
	p.update(s.layer)
}

// NoteError keeps a visit that sent nothing: its error is shown, nothing
// is counted.
func (s *State) NoteError(peer, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pairs[peer]; ok {
		p.LastError = err
	}
}

// update recomputes a pair's derived values and findings.
func (p *Pair) update(layer model.Layer) {
	lost := 0
	for _, ok := range p.Window {
		if !ok {
			lost++
		}
	}
	p.LossRatio = float64(lost) / float64(len(p.Window))
	n := min(p.nrtt, window)
	if n > 0 {
		r := slices.Clone(p.rtts[:n])
		slices.Sort(r)
		p.MedianRTT = r[n/2]
	}
	p.Findings = p.Findings[:0]
	switch {
	case p.LostInRow >= unreachableRun:
		if layer == model.LayerPod {
			p.Findings = append(p.Findings, diagnose.PodNetworkPartition)
		} else {
			p.Findings = append(p.Findings, diagnose.NodeUnreachable)
		}
	case lost > lossLimit:
		// A count, not a ratio: one lost echo of a peer's first visit
		// is no loss rate.
		p.Findings = append(p.Findings, diagnose.PacketLoss)
	}
	if m := p.MTU; m != nil && m.PathMTU > 0 && m.PathMTU < m.IfaceMTU && m.Limit == "silent" {
		// As the doctor's rule: bigger packets vanish with no ICMP to
		// tell the sender, so the interface MTU is a lie for this path.
		p.Findings = append(p.Findings, diagnose.MTUBlackhole)
	}
	if p.nrtt > 0 && p.MedianRTT > highLatency {
		p.Findings = append(p.Findings, diagnose.HighLatency)
	}
}

// lastMTU is what the last path-MTU check of peer found, and when (nil:
// none yet). Every visit sends the full-size echo; the prober searches the
// bytes again only when the known limit no longer holds or is older than
// mtuStale periods.
func (s *State) lastMTU(peer string) (last *MTUResult, checked time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pairs[peer]; ok && p.MTU != nil {
		m := *p.MTU
		return &m, p.MTUChecked
	}
	return nil, time.Time{}
}

// clone is a copy of p that shares nothing with it.
func (p *Pair) clone() Pair {
	c := *p
	c.Window = slices.Clone(p.Window)
	c.Findings = slices.Clone(p.Findings)
	if p.MTU != nil {
		m := *p.MTU
		c.MTU = &m
	}
	return c
}

// Pairs is a copy of every pair, sorted by peer.
func (s *State) Pairs() []Pair {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Pair, 0, len(s.pairs))
	for _, p := range s.pairs {
		out = append(out, p.clone())
	}
	slices.SortFunc(out, func(a, b Pair) int {
		if a.Peer < b.Peer {
			return -1
		}
		if a.Peer > b.Peer {
			return 1
		}
		return 0
	})
	return out
}
