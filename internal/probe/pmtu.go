package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Rounder sends one round of probes: every size in sizes, each a few times,
// all at once, and reports which sizes got through. A real one is a UDP
// socket with DF set (Conn); tests use a fake path.
type Rounder interface {
	Round(ctx context.Context, sizes []int, attempts int) (RoundResult, error)
}

// RoundResult is what one round learned.
type RoundResult struct {
	Acked    map[int]bool // size → at least one probe of that size was answered
	LocalMTU int          // the local interface refused larger sends (EMSGSIZE); 0 if not
	ICMPMTU  int          // a router said "fragmentation needed" with this MTU; 0 if none came
	ICMPFrom netip.Addr   // the router that said so
	Sent     int
}

// PMTUResult is a path-MTU search's answer for one direction.
type PMTUResult struct {
	PathMTU  int    `json:"pathMTU"`            // largest IP packet that crossed, bytes, headers included
	IfaceMTU int    `json:"ifaceMTU"`           // the sender's interface MTU towards the peer: the most it could try
	LocalMTU int    `json:"localMTU,omitempty"` // the sender's own limit, when it was the limit
	ICMPMTU  int    `json:"icmpMTU,omitempty"`  // MTU a router reported; 0 when ICMP never came (blocked or silent drop)
	ICMPFrom string `json:"icmpFrom,omitempty"` // the address of the router that reported ICMPMTU
	Limit    string `json:"limit"`              // "local" (own interface), "icmp" (router said so), "silent" (packets vanished), "none" (max tested size crossed)
	// Where says where larger packets vanish, when they do silently
	// (Locate); nil when not looked for.
	Where    *Location     `json:"where,omitempty"`
	Rounds   int           `json:"rounds"`
	Probes   int           `json:"probes"`
	Duration time.Duration `json:"durationNs"`
}

// Search parameters. Sizes per round trades probes for rounds: 8 sizes cut
// a 1500-byte range to one byte in 4 rounds.
const (
	SizesPerRound   = 8
	AttemptsInRound = 2 // a size is "lost" only if every attempt in its round is
	ConfirmAttempts = 4 // the boundary is re-tested this often before it is believed
	MaxRounds       = 24
	maxInconclusive = 3 // confirmation rounds that may lose their control before the search gives up
)

// ErrUnreachable means not even the smallest probe got an answer.
var ErrUnreachable = errors.New("no answer to the smallest probe")

// SearchPMTU finds the largest IP packet size in [lo, hi] that crosses the
// path, exact to the byte. lo must cross (it is checked first); hi is the
// largest size worth trying (the sender's interface MTU).
//
// Each round probes several sizes at once. A size that is answered raises
// the floor; the smallest size above the floor that is not answered lowers
// the ceiling. A bigger size answered while a smaller one was not means the
// smaller one was lost, not limited, so it is tried again. ICMP
// "fragmentation needed" and local EMSGSIZE lower the ceiling at once when
// they come, and are not needed when they do not. The boundary is confirmed
// with extra attempts before it is reported.
func SearchPMTU(ctx context.Context, r Rounder, lo, hi int) (PMTUResult, error) {
	start := time.Now()
	res := PMTUResult{IfaceMTU: hi}
	if hi < lo {
		return res, fmt.Errorf("path MTU search: upper bound %d below lower bound %d", hi, lo)
	}
	ceiling := hi
	confirmed := map[int]bool{} // sizes whose loss survived a confirmation round
	inconclusive := 0           // confirmation rounds that lost their control probes too
	round := func(sizes []int, attempts int) (RoundResult, error) {
		res.Rounds++
		rr, err := r.Round(ctx, sizes, attempts)
		res.Probes += rr.Sent
		if rr.LocalMTU > 0 && (res.LocalMTU == 0 || rr.LocalMTU < res.LocalMTU) {
			res.LocalMTU = rr.LocalMTU
		}
		if rr.ICMPMTU > 0 && (res.ICMPMTU == 0 || rr.ICMPMTU < res.ICMPMTU) {
			res.ICMPMTU, res.ICMPFrom = rr.ICMPMTU, ""
			if rr.ICMPFrom.IsValid() {
				res.ICMPFrom = rr.ICMPFrom.String()
			}
		}
		return rr, err
	}

	// The floor must cross, or the peer is not there at all.
	first := append([]int{lo}, spread(lo, hi, SizesPerRound)...)
	rr, err := round(first, AttemptsInRound)
	if err != nil {
		return res, err
	}
	if !rr.Acked[lo] {
		if rr, err = round([]int{lo}, ConfirmAttempts); err != nil {
			return res, err
		}
		if !rr.Acked[lo] {
			res.Duration = time.Since(start)
			return res, ErrUnreachable
		}
	}
	floor := lo
	// apply moves the floor up to the largest answered size and the ceiling
	// down below the smallest unanswered one above the floor.
	apply := func(sizes []int, rr RoundResult) {
		for _, s := range sizes {
			if rr.Acked[s] && s > floor {
				floor = s
			}
		}
		if res.LocalMTU > 0 {
			ceiling = min(ceiling, res.LocalMTU)
		}
		if res.ICMPMTU >= floor {
			ceiling = min(ceiling, res.ICMPMTU)
		}
		for _, s := range sizes {
			if !rr.Acked[s] && s > floor {
				ceiling = min(ceiling, s-1)
			}
		}
		if floor > ceiling {
			// A size above the ceiling crossed after all: the loss that set
			// the ceiling was chance. Reopen up to the next confirmed loss.
			ceiling = hi
			if res.LocalMTU > 0 {
				ceiling = min(ceiling, res.LocalMTU)
			}
			for c := range confirmed {
				if c > floor {
					ceiling = min(ceiling, c-1)
				}
			}
		}
	}
	apply(first, rr)

	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if res.Rounds >= MaxRounds {
			return res, fmt.Errorf("path MTU search did not settle in %d rounds (between %d and %d bytes): the path loses too many probes", MaxRounds, floor, ceiling)
		}
		sizes, attempts := spread(floor, ceiling, SizesPerRound), AttemptsInRound
		confirming := floor == ceiling
		if confirming {
			if ceiling == hi || confirmed[ceiling+1] {
				break
			}
			// Settled: confirm the byte above is really lost, not unlucky,
			// beside the floor as a control: a round that loses the floor
			// too lost probes to something else (congestion, a shaper's
			// full queue) and confirms nothing.
			sizes, attempts = []int{ceiling + 1, floor}, ConfirmAttempts
		}
		rr, err := round(sizes, attempts)
		if err != nil {
			return res, err
		}
		if confirming {
			switch {
			case rr.Acked[ceiling+1]:
			case rr.Acked[floor]:
				confirmed[ceiling+1] = true
			default:
				if inconclusive++; inconclusive >= maxInconclusive {
					return res, fmt.Errorf("path MTU search: %d-byte probes cross, %d-byte ones do not, but the path also lost the %d-byte control probes %d times: it loses too much to tell a limit from loss", floor, ceiling+1, floor, inconclusive)
				}
				continue
			}
		}
		apply(sizes, rr)
	}
	res.PathMTU = floor
	switch {
	case floor == hi:
		res.Limit = "none"
	case res.LocalMTU == floor:
		res.Limit = "local"
	case res.ICMPMTU == floor:
		res.Limit = "icmp"
	default:
		res.Limit = "silent"
	}
	res.Duration = time.Since(start)
	return res, nil
}

// spread picks up to n sizes in (lo, hi], evenly, always including hi.
func spread(lo, hi, n int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		s := lo + ((hi-lo)*i+n-1)/n
		if s > lo && s <= hi && (len(out) == 0 || out[len(out)-1] != s) {
			out = append(out, s)
		}
	}
	return slices.Compact(out)
}

// Location is where on a path packets of some size stop, found as
// traceroute finds routers: probes with a limited TTL, each router on the
// way answering "time exceeded" when the TTL runs out there.
type Location struct {
	Size int `json:"size"` // the probe size that does not cross
	// Hops is how many hops away the peer is, as small probes found: 1 when
	// nothing routes between (the same link), 0 when not found.
	Hops int `json:"hops,omitempty"`
	// After is the last hop that large probes still reach (0: not even the
	// first); At is that hop's address, as it answered.
	After int    `json:"after"`
	At    string `json:"at,omitempty"`
	// Gap: the hop after After answered no probe at all, not even a small
	// one, so the large ones vanish there or further on.
	Gap bool `json:"gap,omitempty"`
	// Silent: no hop before the peer said "time exceeded" to any probe, so
	// where on the way large packets vanish is not known.
	Silent bool `json:"silent,omitempty"`
}
