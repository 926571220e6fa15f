package monitor

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// Schedule walks an agent's peers in rounds: each round probes every peer
// once, in an order of this agent's own (so the agents' probes of one
// target are spread out), one peer per slot of Base. Each probe falls at a
// random point of its slot (stratified jitter): probes never bunch up more
// than two per slot, and a peer's two consecutive probes are never more
// than a round and a slot apart, which the round is sized to keep within
// the period.
type Schedule struct {
	self   string
	period time.Duration
	rate   float64
	rng    *rand.Rand

	peers      []string // this round's order
	next       []string // set by SetPeers: the next round's
	gone       map[string]bool
	slot       int
	roundStart time.Time
	base       time.Duration
	now        time.Time // the latest SetPeers: a round never starts before it
}

// ErrRate: the period cannot cover every peer at the allowed rate.
var ErrRate = errors.New("period too short for the peers at this probe rate")

// NewSchedule starts a schedule at start.
func NewSchedule(self string, period time.Duration, maxRate float64, start time.Time) *Schedule {
	h := fnv.New64a()
	_, _ = h.Write([]byte(self))
	seed := h.Sum64()
	return &Schedule{self: self, period: period, rate: maxRate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		gone: map[string]bool{}, roundStart: start}
}

// SetPeers replaces the peer set at now. Peers that left are skipped at
// once; the new set is walked from the next round on, or from now when the
// schedule had nobody to probe (an idle schedule must not catch up on the
// rounds it had no peers for in one burst).
func (s *Schedule) SetPeers(peers []string, now time.Time) {
	s.now = now
	next := slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == s.self })
	order := map[string]uint64{}
	for _, p := range next {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s.self + "\x00" + p))
		order[p] = h.Sum64()
	}
	slices.SortFunc(next, func(a, b string) int {
		if order[a] < order[b] {
			return -1
		}
		if order[a] > order[b] {
			return 1
		}
		return 0
	})
	s.next = next
	keep := map[string]bool{}
	for _, p := range next {
		keep[p] = true
	}
	s.gone = map[string]bool{}
	for _, p := range s.peers {
		if !keep[p] {
			s.gone[p] = true
		}
	}
	if len(s.peers) == 0 {
		s.startRound(s.roundStart)
	}
}

// Base is the slot length: the period shared by the peers and one spare
// slot, but never shorter than the rate allows.
func Base(peers int, period time.Duration, maxRate float64) (time.Duration, error) {
	if peers == 0 {
		return period, nil
	}
	base := period / time.Duration(peers+1)
	// At most two probes fall in one slot: keep 1/base below the rate by one.
	if min := time.Duration(float64(time.Second) / max(maxRate-1, 1)); base < min {
		return min, ErrRate
	}
	return base, nil
}

func (s *Schedule) startRound(at time.Time) {
	if at.Before(s.now) {
		at = s.now
	}
	s.peers, s.slot, s.roundStart = s.next, 0, at
	s.gone = map[string]bool{}
	s.base, _ = Base(len(s.peers), s.period, s.rate)
}

// Next returns the next peer to probe and when; ok is false without peers.
func (s *Schedule) Next() (peer string, at time.Time, ok bool) {
	for {
		if s.slot >= len(s.peers) {
			end := s.roundStart.Add(time.Duration(len(s.peers)) * s.base)
			if len(s.next) == 0 {
				return "", end, false
			}
			s.startRound(end)
		}
		p := s.peers[s.slot]
		at := s.roundStart.Add(time.Duration(s.slot)*s.base + time.Duration(s.rng.Int64N(int64(s.base))))
		s.slot++
		if !s.gone[p] {
			return p, at, true
		}
	}
}
