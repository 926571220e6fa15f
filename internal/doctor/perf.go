package doctor

import (
	"fmt"
	"time"

	"podpath/internal/agent"
)

// Perf is what perf measures on every pair.
type Perf struct {
	Count      int           // UDP and ICMP echoes
	Interval   time.Duration // between echoes
	Transfer   int64         // bytes of the upload that must not stall; 0 none
	Throughput time.Duration // TCP throughput test per pair; 0 none
	Streams    int           // of the throughput test
	// StreamsGiven: Streams was asked for, which needs Throughput.
	StreamsGiven bool
}

// Request checks p against the agents' bounds and the run's timeout and
// is the probe perf asks of each pair: the echo series (ICMP beside UDP:
// ICMP filtered while UDP passes is its own finding), TCP handshakes, an
// HTTP GET, the upload and the throughput test.
func (p Perf) Request(timeout time.Duration) (agent.ProbeRequest, error) {
	minI, maxI := agent.MinIntervalMs*time.Millisecond, agent.MaxIntervalMs*time.Millisecond
	switch {
	case p.Streams < 1 || p.Streams > agent.MaxStreams:
		return agent.ProbeRequest{}, fmt.Errorf("--streams %d: must be 1-%d", p.Streams, agent.MaxStreams)
	case p.StreamsGiven && p.Throughput == 0:
		return agent.ProbeRequest{}, fmt.Errorf("--streams is for the throughput test: give --throughput too, e.g. --throughput 3s")
	case p.Count < 1 || p.Count > agent.MaxSeriesCount:
		return agent.ProbeRequest{}, fmt.Errorf("--count %d: must be 1-%d", p.Count, agent.MaxSeriesCount)
	case p.Interval < minI || p.Interval > maxI:
		return agent.ProbeRequest{}, fmt.Errorf("--interval %s: must be %s-%s", p.Interval, minI, maxI)
	case time.Duration(p.Count-1)*p.Interval >= timeout:
		// Every pair's series runs at once: the run needs one series' time.
		return agent.ProbeRequest{}, fmt.Errorf("--count %d × --interval %s takes %s, more than --timeout %s: raise --timeout or lower one of them",
			p.Count, p.Interval, time.Duration(p.Count-1)*p.Interval, timeout)
	case p.Transfer < 0 || p.Transfer > agent.MaxTransferBytes:
		return agent.ProbeRequest{}, fmt.Errorf("--transfer-bytes %d: must be 0-%d", p.Transfer, agent.MaxTransferBytes)
	case p.Throughput < 0 || p.Throughput > agent.MaxThroughputSecs*time.Second:
		return agent.ProbeRequest{}, fmt.Errorf("--throughput %s: must be 0 (none) or a length up to %ds", p.Throughput, agent.MaxThroughputSecs)
	}
	series := &agent.Series{Count: p.Count, IntervalMs: int(p.Interval / time.Millisecond)}
	req := agent.ProbeRequest{RTT: series, ICMP: series, TCPConnect: 5, HTTP: true, TransferBytes: p.Transfer}
	if p.Throughput > 0 {
		req.Throughput = &agent.ThroughputSpec{Seconds: p.Throughput.Seconds(), Streams: p.Streams}
	}
	return req, nil
}
