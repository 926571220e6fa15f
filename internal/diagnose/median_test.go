package diagnose

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// medianWithout agrees with removing the values and taking the median,
// duplicates included.
func TestMedianWithout(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		all := make([]float64, 2+r.IntN(40))
		for i := range all {
			all[i] = float64(r.IntN(8)) // few values: many duplicates
		}
		idx := r.Perm(len(all))[:1+r.IntN(len(all)-1)]
		var in, rest []float64
		for i, v := range all {
			if slices.Contains(idx, i) {
				in = append(in, v)
			} else {
				rest = append(rest, v)
			}
		}
		slices.Sort(all)
		slices.Sort(in)
		if got, want := medianWithout(all, in), median(rest); got != want {
			t.Fatalf("all %v without %v: %v; want %v", all, in, got, want)
		}
	}
}
