package monitor

import (
	"fmt"
	"testing"
	"time"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%04d", i+1)
	}
	return out
}

// simulate runs one agent's schedule for rounds and checks what issue 8
// asks of it: every peer within the period (the first probe, and the gap
// between two probes of one peer), and no more than rate probes in any
// second.
func simulate(t *testing.T, self string, peers []string, period time.Duration, rate float64, probes int) (maxPerSecond int) {
	t.Helper()
	start := time.Unix(0, 0)
	s := NewSchedule(self, period, rate, start)
	s.SetPeers(peers, start)
	last := map[string]time.Time{}
	var window []time.Time
	prev := start
	for range probes {
		p, at, ok := s.Next()
		if !ok {
			t.Fatal("no peer")
		}
		if p == self {
			t.Fatal("probed itself")
		}
		if at.Before(prev) {
			t.Fatalf("probe times go backwards: %s after %s", at, prev)
		}
		prev = at
		if l, seen := last[p]; seen && at.Sub(l) > period {
			t.Fatalf("%s probed %s apart; period %s", p, at.Sub(l), period)
		} else if !seen && at.Sub(start) > period {
			t.Fatalf("%s first probed after %s; period %s", p, at.Sub(start), period)
		}
		last[p] = at
		window = append(window, at)
		for at.Sub(window[0]) >= time.Second {
			window = window[1:]
		}
		maxPerSecond = max(maxPerSecond, len(window))
	}
	return maxPerSecond
}

// The 5,000-node target: every ordered pair within 5 minutes at ≤ 20
// probes/s per agent. Every agent's schedule is its own; a sample of them
// is walked for two full rounds here (all 5,000 in the bench).
func TestScheduleCoversFiveThousandNodes(t *testing.T) {
	peers := names(5000)
	for _, self := range []string{"node0001", "node2500", "node5000"} {
		got := simulate(t, self, peers, 5*time.Minute, 20, 2*4999)
		if got > 20 {
			t.Errorf("%s: %d probes in one second; want at most 20", self, got)
		}
		t.Logf("%s: 2 rounds over 4,999 peers, at most %d probes in any second", self, got)
	}
	if _, err := Base(5000, time.Minute, 20); err == nil {
		t.Error("5,000 peers in a minute at 20/s: want ErrRate")
	}
}

// Two agents walk their peers in different orders: a target is not probed
// by everyone at once.
func TestScheduleOrdersDiffer(t *testing.T) {
	peers := names(100)
	first := func(self string) []string {
		s := NewSchedule(self, time.Minute, 20, time.Unix(0, 0))
		s.SetPeers(peers, time.Unix(0, 0))
		var out []string
		for range 5 {
			p, _, _ := s.Next()
			out = append(out, p)
		}
		return out
	}
	if a, b := first("node0001"), first("node0002"); fmt.Sprint(a) == fmt.Sprint(b) {
		t.Errorf("node0001 and node0002 start with the same peers %v", a)
	}
}

// A peer that leaves is not probed again; one that joins is within a
// period of joining.
func TestSchedulePeerChanges(t *testing.T) {
	period := 10 * time.Second
	s := NewSchedule("a", period, 20, time.Unix(0, 0))
	s.SetPeers([]string{"b", "c", "d"}, time.Unix(0, 0))
	s.Next()
	s.SetPeers([]string{"b", "d", "e"}, time.Unix(0, 0)) // c leaves, e joins
	joined := time.Unix(0, 0)
	seenE := false
	for range 12 {
		p, at, ok := s.Next()
		if !ok || p == "c" {
			t.Fatalf("next = %q %v: c left", p, ok)
		}
		if p == "e" && !seenE {
			seenE = true
			if at.Sub(joined) > 2*period {
				t.Errorf("e first probed %s after joining", at.Sub(joined))
			}
		}
	}
	if !seenE {
		t.Error("e never probed")
	}
	s.SetPeers(nil, time.Unix(5, 0))
	for range 4 {
		if p, _, ok := s.Next(); ok && p != "" {
			continue
		}
		return
	}
	t.Error("still probing with no peers")
}

// A schedule that sat idle starts its next round when peers come back, not
// where the last round ended: no burst to catch up.
func TestScheduleIdleRestart(t *testing.T) {
	s := NewSchedule("a", 10*time.Second, 20, time.Unix(0, 0))
	s.SetPeers(nil, time.Unix(0, 0))
	if _, _, ok := s.Next(); ok {
		t.Fatal("a peer without peers")
	}
	back := time.Unix(3600, 0)
	s.SetPeers([]string{"b", "c"}, back)
	for range 4 {
		_, at, ok := s.Next()
		if !ok || at.Before(back) {
			t.Fatalf("next at %s (ok %v); peers came back at %s", at, ok, back)
		}
	}
}
