package monitor

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podpath/internal/model"
)

// SimOptions shape a scale simulation: one agent's schedule, state and
// metrics driven through virtual time against simulated peers (no
// network), to show what issue 8 asks at 5,000 nodes.
type SimOptions struct {
	Nodes   int // agents in the cluster, this one included
	Period  time.Duration
	Rate    float64
	Periods int     // how long to run, in periods
	Bad     float64 // fraction of peers behind a silent MTU limit
	Lossy   float64 // fraction of peers losing a third of the echoes
	Layer   model.Layer
}

// SimResult is what the simulation observed.
type SimResult struct {
	Visits         int
	Covered        int           // peers visited at least once
	FirstCoverage  time.Duration // when the last peer had its first visit
	MaxGap         time.Duration // longest time between two visits of one peer
	MaxPerSecond   int           // most visits in any one-second window
	Series         int           // series the agent exports (histogram buckets count each)
	BlackholeCount int           // the mtu-blackhole gauge at the end
	WorstMTUPeers  int           // named in the worst-peer path-MTU gauges
	WorstLossPeers int           // named in the worst-peer loss gauges
	CPUPerVisit    time.Duration // wall time of the schedule, state and metric work per visit (no probe)
}

// Simulate runs the simulation.
func Simulate(o SimOptions) (SimResult, error) {
	var res SimResult
	if o.Layer == "" {
		o.Layer = model.LayerPod
	}
	self := simName(0)
	start := time.Unix(1_700_000_000, 0)
	sched := NewSchedule(self, o.Period, o.Rate, start)
	st := NewState(o.Layer)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, self, o.Layer, st, nil)
	if err := m.register(); err != nil {
		return res, err
	}
	peers := make([]Peer, 0, o.Nodes-1)
	names := make([]string, 0, o.Nodes-1)
	bad, lossy := map[string]bool{}, map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 1; i < o.Nodes; i++ {
		n := simName(i)
		peers = append(peers, Peer{Name: n, Address: fmt.Sprintf("10.%d.%d.%d:7946", i>>16&255, i>>8&255, i&255)})
		names = append(names, n)
		bad[n], lossy[n] = rng.Float64() < o.Bad, rng.Float64() < o.Lossy
	}
	sched.SetPeers(names, start)
	st.Retain(peers, start)
	last := map[string]time.Time{}
	var window []time.Time
	end := start.Add(time.Duration(o.Periods) * o.Period)
	var work time.Duration
	for {
		p, at, ok := sched.Next()
		if !ok || at.After(end) {
			break
		}
		t0 := time.Now()
		r := Result{At: at, Sent: true, Answered: true, RTT: time.Duration(200+rng.IntN(800)) * time.Microsecond,
			MTU: &MTUResult{IfaceMTU: 1450, PathMTU: 1450, Limit: "none"}}
		if bad[p] {
			r.MTU = &MTUResult{IfaceMTU: 1450, PathMTU: 1350, Limit: "silent", Searched: true}
		}
		if lossy[p] && rng.IntN(3) == 0 {
			r = Result{At: at, Sent: true}
		}
		m.observe(r)
		st.Record(p, r)
		work += time.Since(t0)
		res.Visits++
		if l, seen := last[p]; seen {
			res.MaxGap = max(res.MaxGap, at.Sub(l))
		} else {
			res.FirstCoverage = max(res.FirstCoverage, at.Sub(start))
		}
		last[p] = at
		window = append(window, at)
		for at.Sub(window[0]) >= time.Second {
			window = window[1:]
		}
		res.MaxPerSecond = max(res.MaxPerSecond, len(window))
	}
	res.Covered = len(last)
	if res.Visits > 0 {
		res.CPUPerVisit = work / time.Duration(res.Visits)
	}
	fams, err := reg.Gather()
	if err != nil {
		return res, fmt.Errorf("gather: %w", err)
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				res.Series += len(h.GetBucket()) + 3 // the buckets, +Inf, _sum, _count
				continue
			}
			res.Series++
			switch f.GetName() {
			case "podpath_monitor_findings":
				for _, l := range mt.GetLabel() {
					if l.GetName() == "id" && l.GetValue() == "mtu-blackhole" {
						res.BlackholeCount = int(mt.GetGauge().GetValue())
					}
				}
			case "podpath_monitor_worst_peer_path_mtu_bytes":
				res.WorstMTUPeers++
			case "podpath_monitor_worst_peer_loss_ratio":
				res.WorstLossPeers++
			}
		}
	}
	return res, nil
}

func simName(i int) string { return fmt.Sprintf("node%05d", i) }
