package probe

import (
	"math"
	"slices"
	"time"
)

// Stats summarises a series of round trips.
type Stats struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	LossPct  float64 `json:"lossPct"`
	MinMs    float64 `json:"minMs"`
	MeanMs   float64 `json:"meanMs"`
	P50Ms    float64 `json:"p50Ms"`
	P90Ms    float64 `json:"p90Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
	JitterMs float64 `json:"jitterMs"` // mean difference between consecutive round trips (RFC 3550's idea, unsmoothed)
}

// Summarize computes Stats from the round trips that came back, in the
// order they were sent, out of sent probes.
func Summarize(rtts []time.Duration, sent int) Stats {
	s := Stats{Sent: sent, Received: len(rtts)}
	if sent > 0 {
		s.LossPct = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	if len(rtts) == 0 {
		return s
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var sum, jit float64
	for i, d := range rtts {
		sum += ms(d)
		if i > 0 {
			jit += math.Abs(ms(d) - ms(rtts[i-1]))
		}
	}
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	s.MinMs, s.MaxMs = ms(sorted[0]), ms(sorted[len(sorted)-1])
	s.MeanMs = sum / float64(len(rtts))
	s.P50Ms, s.P90Ms, s.P99Ms = ms(percentile(sorted, 50)), ms(percentile(sorted, 90)), ms(percentile(sorted, 99))
	if len(rtts) > 1 {
		s.JitterMs = jit / float64(len(rtts)-1)
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank-1, 0)]
}
