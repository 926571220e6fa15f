package probe

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// fakePath answers probes up to mtu bytes, loses each with probability
// loss, and may report "fragmentation needed" or a local limit.
type fakePath struct {
	mtu      int
	local    int // sender's interface MTU; 0 = none below mtu
	icmp     bool
	loss     float64
	rng      *rand.Rand
	rounds   int
	maxSizes int
	// confirmLoss loses every probe of the rounds that confirm the
	// boundary (a queue that overflows on their burst).
	confirmLoss bool
}

func (f *fakePath) Round(_ context.Context, sizes []int, attempts int) (RoundResult, error) {
	f.rounds++
	f.maxSizes = max(f.maxSizes, len(sizes))
	if f.confirmLoss && attempts == ConfirmAttempts {
		return RoundResult{Acked: map[int]bool{}, Sent: len(sizes) * attempts}, nil
	}
	rr := RoundResult{Acked: map[int]bool{}}
	for _, s := range sizes {
		for range attempts {
			rr.Sent++
			if f.local > 0 && s > f.local {
				rr.LocalMTU = f.local
				continue
			}
			if s > f.mtu {
				if f.icmp {
					rr.ICMPMTU = f.mtu
				}
				continue
			}
			if f.rng != nil && f.rng.Float64() < f.loss {
				continue
			}
			rr.Acked[s] = true
		}
	}
	return rr, nil
}

func TestSearchPMTU(t *testing.T) {
	tests := []struct {
		name      string
		path      fakePath
		lo, hi    int
		want      int
		wantLimit string
	}{
		{"silent_drop_1400", fakePath{mtu: 1400}, 52, 1500, 1400, "silent"},
		{"pod_layer_1350", fakePath{mtu: 1350}, 52, 1450, 1350, "silent"},
		{"healthy_full_mtu", fakePath{mtu: 1500}, 52, 1500, 1500, "none"},
		{"icmp_frag_needed", fakePath{mtu: 1400, icmp: true}, 52, 1500, 1400, "icmp"},
		{"local_limit", fakePath{mtu: 9000, local: 1500}, 52, 9000, 1500, "local"},
		{"jumbo", fakePath{mtu: 8972}, 52, 9000, 8972, "silent"},
		{"one_byte_over_floor", fakePath{mtu: 53}, 52, 1500, 53, "silent"},
		{"floor_is_the_limit", fakePath{mtu: 52}, 52, 1500, 52, "silent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path
			got, err := SearchPMTU(context.Background(), &p, tt.lo, tt.hi)
			if err != nil {
				t.Fatal(err)
			}
			if got.PathMTU != tt.want || got.Limit != tt.wantLimit {
				t.Errorf("PathMTU = %d (limit %s); want %d (%s)", got.PathMTU, got.Limit, tt.want, tt.wantLimit)
			}
			if p.maxSizes < 2 {
				t.Errorf("at most %d size per round; want several sizes probed concurrently", p.maxSizes)
			}
			if got.Rounds > 8 {
				t.Errorf("%d rounds; want at most 8 on a lossless path", got.Rounds)
			}
		})
	}
}

// With random loss the answer must still be exact: loss is told apart from
// the limit by retries and a confirmation of the boundary.
func TestSearchPMTUUnderLoss(t *testing.T) {
	for seed := range uint64(200) {
		p := fakePath{mtu: 1400, loss: 0.2, rng: rand.New(rand.NewPCG(seed, 1))}
		got, err := SearchPMTU(context.Background(), &p, 52, 1500)
		if err != nil {
			continue // an unreachable verdict at 20% loss is rare and honest
		}
		if got.PathMTU != 1400 {
			t.Errorf("seed %d: PathMTU %d with 20%% loss; want 1400", seed, got.PathMTU)
		}
	}
}

// A path that loses everything whenever the boundary is confirmed (its
// queue overflows on the confirmation's burst): the limit is never
// believed, and the search says why instead of naming one.
func TestSearchPMTUDoesNotConfirmThroughLoss(t *testing.T) {
	p := &fakePath{mtu: 1400, confirmLoss: true}
	got, err := SearchPMTU(context.Background(), p, 52, 1500)
	if err == nil || !strings.Contains(err.Error(), "loses too much to tell a limit from loss") {
		t.Errorf("SearchPMTU = %+v, %v; want no limit, and the loss said", got, err)
	}
}

func TestSearchPMTUUnreachable(t *testing.T) {
	p := fakePath{mtu: 0}
	_, err := SearchPMTU(context.Background(), &p, 52, 1500)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("error = %v; want ErrUnreachable", err)
	}
}

func TestSpread(t *testing.T) {
	got := spread(52, 1500, 8)
	if len(got) != 8 || got[7] != 1500 || got[0] <= 52 {
		t.Errorf("spread(52, 1500, 8) = %v", got)
	}
	if got := spread(1399, 1400, 8); len(got) != 1 || got[0] != 1400 {
		t.Errorf("spread(1399, 1400, 8) = %v; want [1400]", got)
	}
}
