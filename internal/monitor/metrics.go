package monitor

import (
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"podpath/internal/diagnose"

	"podpath/internal/model"
)

// TopK is how many worst peers each agent exports by name: enough to name
// the culprit on a dashboard, few enough that series stay O(nodes).
const TopK = 3

// rttBuckets cover a LAN round trip (0.5 ms) up to a congested or
// cross-zone path; anything slower is a finding anyway.
var rttBuckets = []float64{0.0005, 0.001, 0.005, 0.025, 0.1}

// FindingIDs are the findings an agent of layer counts, every one always
// exported (0 when no peer has it), so alerts see a value rather than
// nothing.
func FindingIDs(layer model.Layer) []string {
	if layer == model.LayerPod {
		return []string{diagnose.MTUBlackhole, diagnose.PodNetworkPartition, diagnose.PacketLoss, diagnose.HighLatency}
	}
	return []string{diagnose.MTUBlackhole, diagnose.NodeUnreachable, diagnose.PacketLoss, diagnose.HighLatency,
		diagnose.BGPSessionDown, diagnose.CalicoNodeUnhealthy}
}

// metrics are one agent's monitor metrics. Counters and the histogram are
// updated per probe; everything else is computed from the state when
// Prometheus scrapes, so a peer that leaves takes its series with it.
type metrics struct {
	reg    prometheus.Registerer
	rtt    prometheus.Histogram
	probes *prometheus.CounterVec
	view   *view
}

func newMetrics(reg prometheus.Registerer, node string, layer model.Layer, st *State, facts *factsState) *metrics {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": node, "layer": string(layer)}, reg)
	return &metrics{
		reg: reg,
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podpath_monitor_rtt_seconds", Help: "Round trip of the small echo to a peer agent.", Buckets: rttBuckets,
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podpath_monitor_probes_total", Help: "Peer visits by outcome of their small echo: answered or lost.",
		}, []string{"result"}),
		view: &view{layer: layer, st: st, facts: facts,
			peers:     prometheus.NewDesc("podpath_monitor_peers", "Peers this agent probes.", nil, nil),
			reachable: prometheus.NewDesc("podpath_monitor_peers_reachable_ratio", "Fraction of the probed peers that answer (not lost three visits in a row).", nil, nil),
			mtuMin:    prometheus.NewDesc("podpath_monitor_path_mtu_min_bytes", "Smallest path MTU measured to any peer (the interface MTU when nothing limits it).", nil, nil),
			findings:  prometheus.NewDesc("podpath_monitor_findings", "Peers with the finding now; bgp-session-down counts BGP sessions not Established, calico-node-unhealthy is 1 when Felix is not ready.", []string{"id"}, nil),
			worstLoss: prometheus.NewDesc("podpath_monitor_worst_peer_loss_ratio", "The peers with the highest echo loss over their last visits (at most 3).", []string{"peer"}, nil),
			worstMTU:  prometheus.NewDesc("podpath_monitor_worst_peer_path_mtu_bytes", "The peers with the lowest path MTU below the interface MTU (at most 3).", []string{"peer"}, nil),
		},
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.rtt, m.probes, m.view}
}

func (m *metrics) register() error {
	for i, c := range m.collectors() {
		if err := m.reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				m.reg.Unregister(done)
			}
			return err
		}
	}
	// Both results exist from the start: rate() needs the zero.
	m.probes.WithLabelValues("answered")
	m.probes.WithLabelValues("lost")
	return nil
}

func (m *metrics) unregister() {
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

func (m *metrics) observe(r Result) {
	if r.Answered {
		m.probes.WithLabelValues("answered").Inc()
		m.rtt.Observe(r.RTT.Seconds())
	} else {
		m.probes.WithLabelValues("lost").Inc()
	}
}

// view computes the gauges from the state at scrape time.
type view struct {
	layer model.Layer
	st    *State
	facts *factsState

	peers, reachable, mtuMin, findings, worstLoss, worstMTU *prometheus.Desc
}

func (v *view) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{v.peers, v.reachable, v.mtuMin, v.findings, v.worstLoss, v.worstMTU} {
		ch <- d
	}
}

func (v *view) Collect(ch chan<- prometheus.Metric) {
	g := v.st.Aggregate()
	ch <- prometheus.MustNewConstMetric(v.peers, prometheus.GaugeValue, float64(g.Peers))
	if g.Probed > 0 {
		// Nobody probed yet (no peers, or the watch not synced) is no
		// "all reachable": the series is absent until there is a ratio.
		ch <- prometheus.MustNewConstMetric(v.reachable, prometheus.GaugeValue, g.ReachableRatio)
	}
	if g.PathMTUMin > 0 {
		ch <- prometheus.MustNewConstMetric(v.mtuMin, prometheus.GaugeValue, float64(g.PathMTUMin))
	}
	counts := g.Findings
	if v.facts != nil {
		for id, n := range v.facts.findings() {
			counts[id] = n
		}
	}
	for _, id := range FindingIDs(v.layer) {
		ch <- prometheus.MustNewConstMetric(v.findings, prometheus.GaugeValue, float64(counts[id]), id)
	}
	for _, p := range g.WorstLoss {
		ch <- prometheus.MustNewConstMetric(v.worstLoss, prometheus.GaugeValue, p.LossRatio, p.Peer)
	}
	for _, p := range g.WorstMTU {
		ch <- prometheus.MustNewConstMetric(v.worstMTU, prometheus.GaugeValue, float64(p.MTU.PathMTU), p.Peer)
	}
}

// Aggregate is an agent's summary over its peers, what its gauges show.
type Aggregate struct {
	Peers          int
	Probed         int // peers visited at least once
	ReachableRatio float64
	PathMTUMin     int // 0: not measured yet
	Findings       map[string]int
	WorstLoss      []Pair // highest loss first, loss > 0 only, at most TopK
	WorstMTU       []Pair // lowest path MTU first, below the interface MTU only, at most TopK
}

// Aggregate summarises the pairs. Top-K selection keeps a K-long list, so
// a scrape costs O(peers), not a sort of every pair.
func (s *State) Aggregate() Aggregate {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := Aggregate{Peers: len(s.pairs), Findings: map[string]int{}}
	reachable := 0
	var loss, mtu []*Pair
	for _, p := range s.pairs {
		for _, f := range p.Findings {
			g.Findings[f]++
		}
		if p.Probes == 0 {
			continue
		}
		g.Probed++
		if p.LostInRow < unreachableRun {
			reachable++
		}
		if p.LossRatio > 0 {
			loss = insertTop(loss, p, func(a, b *Pair) int {
				return cmp.Or(cmp.Compare(b.LossRatio, a.LossRatio), cmp.Compare(a.Peer, b.Peer))
			})
		}
		if m := p.MTU; m != nil && m.PathMTU > 0 {
			if g.PathMTUMin == 0 || m.PathMTU < g.PathMTUMin {
				g.PathMTUMin = m.PathMTU
			}
			if m.PathMTU < m.IfaceMTU {
				mtu = insertTop(mtu, p, func(a, b *Pair) int {
					return cmp.Or(cmp.Compare(a.MTU.PathMTU, b.MTU.PathMTU), cmp.Compare(a.Peer, b.Peer))
				})
			}
		}
	}
	g.ReachableRatio = 1
	if g.Probed > 0 {
		g.ReachableRatio = float64(reachable) / float64(g.Probed)
	}
	for _, p := range loss {
		g.WorstLoss = append(g.WorstLoss, p.clone())
	}
	for _, p := range mtu {
		g.WorstMTU = append(g.WorstMTU, p.clone())
	}
	return g
}

// insertTop keeps the TopK smallest by less, in order.
func insertTop(top []*Pair, p *Pair, less func(a, b *Pair) int) []*Pair {
	i, _ := slices.BinarySearchFunc(top, p, less)
	if i >= TopK {
		return top
	}
	top = slices.Insert(top, i, p)
	if len(top) > TopK {
		top = top[:TopK]
	}
	return top
}
