package probe

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var rtts []time.Duration
	for i := 1; i <= 100; i++ {
		rtts = append(rtts, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(rtts, 125)
	if s.LossPct != 20 || s.P50Ms != 50 || s.P90Ms != 90 || s.P99Ms != 99 || s.MinMs != 1 || s.MaxMs != 100 || s.MeanMs != 50.5 || s.JitterMs != 1 {
		t.Errorf("Summarize = %+v", s)
	}
	if s := Summarize(nil, 3); s.LossPct != 100 || s.Received != 0 {
		t.Errorf("all lost: %+v", s)
	}
}
