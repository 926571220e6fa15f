package doctor

import (
	"context"
	"fmt"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/plan"
)

// MeshOptions is an mtu or perf run: every planned pair probed at once.
type MeshOptions struct {
	Layers []model.Layer
	// Probe is what each pair gets; its Throughput, if any, runs after the
	// rest, one pair at a time, and must fit in Timeout.
	Probe   agent.ProbeRequest
	Timeout time.Duration
	Say     func(format string, a ...any)
}

// Mesh probes every planned pair of the session's agents and returns the
// measurements, without diagnosing them. It refuses, before measuring, a
// throughput test that cannot finish within o.Timeout.
func Mesh(ctx context.Context, s *cluster.Session, o MeshOptions) (*model.Report, error) {
	jobs, jobs6 := plan.Mesh(s.Inventory, o.Layers...), plan.Mesh6(s.Inventory, o.Layers...)
	if len(jobs) == 0 {
		return nil, fmt.Errorf("nothing to measure: fewer than two agents on the %s layer(s)", layerList(o.Layers))
	}
	req, throughput := o.Probe, o.Probe.Throughput
	req.Throughput = nil
	if throughput != nil {
		// One pair at a time: what does not fit would be reported missing
		// after a long wait. Say so before measuring.
		pairs := 0
		for _, j := range append(jobs6, jobs...) {
			pairs += len(j.Peers)
		}
		if need := time.Duration(float64(pairs) * throughput.Seconds * float64(time.Second)); need > o.Timeout {
			return nil, fmt.Errorf("--throughput %gs one pair at a time over %d pairs takes %s, more than --timeout %s: raise --timeout, shorten --throughput or measure one layer (--layers)",
				throughput.Seconds, pairs, need, o.Timeout)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	if o.Say != nil {
		o.Say("podpath: measuring %d agents' pairs…", len(jobs))
	}
	r := &measure.Runner{Token: s.Token, Connect: s.Connect}
	defer r.Close()
	pairs := r.Run(ctx, jobs, req)
	if throughput != nil {
		r.RunOneByOne(ctx, jobs, agent.ProbeRequest{Throughput: throughput}, pairs)
	}
	// A dual-stack cluster's IPv6 addresses after: the agents take them
	// as their peers in place of the first ones.
	if len(jobs6) > 0 {
		if o.Say != nil {
			o.Say("podpath: measuring %d agents' pairs over IPv6…", len(jobs6))
		}
		pairs6 := r.Run(ctx, jobs6, req)
		if throughput != nil {
			r.RunOneByOne(ctx, jobs6, agent.ProbeRequest{Throughput: throughput}, pairs6)
		}
		pairs = append(pairs, pairs6...)
	}
	rep := &model.Report{Pairs: model.PairsOf(pairs)}
	rep.DurationMs = float64(time.Since(start)) / float64(time.Millisecond)
	if !AnyAnswer(rep.Pairs) {
		return nil, fmt.Errorf("no agent answered (first error: %s)", FirstError(rep.Pairs))
	}
	rep.Config = s.Config()
	return rep, nil
}

func layerList(layers []model.Layer) string {
	s := ""
	for i, l := range layers {
		if i > 0 {
			s += ","
		}
		s += string(l)
	}
	return s
}
