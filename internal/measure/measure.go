// Package measure runs a plan through the agents and turns their answers
// into the report's pairs.
package measure

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/model"
	"podpath/internal/plan"
	"podpath/internal/probe"
)

// Runner runs probe requests on agents.
type Runner struct {
	Token string
	// Connect, when set, makes the client for an endpoint: through the API
	// server's Pod proxy on a cluster. Nil dials the agent directly.
	Connect func(e plan.Endpoint) *agent.Client

	mu sync.Mutex
	// clients: one per agent for the whole run, so its connections are
	// kept and used again (a client per request opened a connection per
	// request, and left it idle and open: at 1,000 nodes tens of
	// thousands).
	clients map[plan.Endpoint]*agent.Client
	// refused: agents that did not take their peers in an earlier Paced
	// of this run. A dual-stack run's IPv6 pass asks them at the same
	// control address, so it does not wait for them a second time.
	refused map[string]error
}

func (r *Runner) markUnaskable(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[string]error{}
	}
	r.refused[name] = err
}

// unaskable is why an earlier pass could not ask the agent called name,
// nil when it could.
func (r *Runner) unaskable(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err, ok := r.refused[name]; ok {
		return fmt.Errorf("%w (not asked again)", err)
	}
	return nil
}

func (r *Runner) client(e plan.Endpoint) *agent.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[e]; ok {
		return c
	}
	var c *agent.Client
	if r.Connect != nil {
		c = r.Connect(e)
	} else {
		c = agent.NewClient(e.Name(), e.Agent, r.Token, e.Netns)
	}
	if r.clients == nil {
		r.clients = map[plan.Endpoint]*agent.Client{}
	}
	r.clients[e] = c
	return c
}

// Close closes the idle connections of the run's clients.
func (r *Runner) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		c.CloseIdle()
	}
	r.clients = nil
}

// Run gives every job's agent its peers and the request, all jobs at once,
// and collects one Pair per job and peer. An agent the controller cannot
// ask, or whose answer does not arrive, leaves its pairs unknown with the
// reason (Pair.Unknown), never failed and never an error of Run: what the
// controller could not ask says nothing about the network between the
// agent and its peers.
func (r *Runner) Run(ctx context.Context, jobs []plan.Job, req agent.ProbeRequest) []model.Pair {
	out := make([][]model.Pair, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { out[i] = r.runJob(ctx, j, req) })
	}
	wg.Wait()
	var pairs []model.Pair
	for _, ps := range out {
		pairs = append(pairs, ps...)
	}
	return pairs
}

func (r *Runner) runJob(ctx context.Context, j plan.Job, req agent.ProbeRequest) []model.Pair {
	c := r.client(j.From)
	var peers []agent.Peer
	req.Targets = nil
	for _, p := range j.Peers {
		peers = append(peers, agent.Peer{Name: p.Name(), Address: p.ProbeAt()})
		req.Targets = append(req.Targets, p.Name())
	}
	pairs := make([]model.Pair, len(j.Peers))
	for i, p := range j.Peers {
		pairs[i] = j.Pair(p)
	}
	fail := func(err error) []model.Pair {
		for i := range pairs {
			pairs[i].Unknown = fmt.Sprintf("the controller could not ask the agent on %s: %v", j.From.Name(), err)
		}
		return pairs
	}
	if err := c.SetPeers(ctx, peers); err != nil {
		return fail(err)
	}
	return r.probe(ctx, c, j, req, pairs, fail)
}

// probeJob runs req from j's agent towards j's peers, which the agent
// already holds (arm).
func (r *Runner) probeJob(ctx context.Context, j plan.Job, req agent.ProbeRequest) []model.Pair {
	req.Targets = nil
	for _, p := range j.Peers {
		req.Targets = append(req.Targets, p.Name())
	}
	pairs := make([]model.Pair, len(j.Peers))
	for i, p := range j.Peers {
		pairs[i] = j.Pair(p)
	}
	fail := func(err error) []model.Pair {
		for i := range pairs {
			pairs[i].Unknown = fmt.Sprintf("the controller could not ask the agent on %s: %v", j.From.Name(), err)
		}
		return pairs
	}
	return r.probe(ctx, r.client(j.From), j, req, pairs, fail)
}

func (r *Runner) probe(ctx context.Context, c *agent.Client, j plan.Job, req agent.ProbeRequest, pairs []model.Pair, fail func(error) []model.Pair) []model.Pair {
	resp, err := c.Probe(ctx, req)
	if err != nil {
		return fail(err)
	}
	byPeer := map[string]agent.TargetResult{}
	for _, tr := range resp.Results {
		byPeer[tr.Peer] = tr
	}
	for i, p := range j.Peers {
		if tr, ok := byPeer[p.Name()]; ok {
			fill(&pairs[i], tr)
		} else {
			pairs[i].Unknown = fmt.Sprintf("the agent on %s answered without a result for %s", j.From.Name(), p.Name())
		}
	}
	return pairs
}

// RunOneByOne runs req for one pair at a time across the whole plan and
// merges the results into pairs (matched by layer, from and to). Throughput
// needs this: two transfers at once would share the link and the CPUs and
// each measure half.
func (r *Runner) RunOneByOne(ctx context.Context, jobs []plan.Job, req agent.ProbeRequest, pairs []model.Pair) {
	index := map[[3]string]int{}
	for i, p := range pairs {
		index[[3]string{string(p.Layer), p.From, p.To}] = i
	}
	for _, j := range jobs {
		for _, peer := range j.Peers {
			one := j
			one.Peers = []plan.Endpoint{peer}
			got := r.runJob(ctx, one, req)
			i, ok := index[[3]string{string(j.Layer), j.From.Node, peer.Node}]
			if !ok || len(got) != 1 {
				continue
			}
			pairs[i].ThroughputBps = got[0].ThroughputBps
			pairs[i].Errors = append(pairs[i].Errors, got[0].Errors...)
			if u := got[0].Unknown; u != "" {
				pairs[i].Errors = append(pairs[i].Errors, "throughput not measured: "+u)
			}
		}
	}
}

// fill copies an agent's measurements into a pair.
func fill(p *model.Pair, tr agent.TargetResult) {
	p.Reachable = tr.Reachable
	// The network delivered the probes: only the agent is missing. Host to
	// host, an ICMP echo or a TCP handshake answered by To's kernel says the
	// same; between Pods it may be a policy or the tunnel, so it counts there
	// as what it is, a failure of UDP.
	answered := tr.TCPConnect != nil && tr.TCPConnect.Received > 0 || tr.ICMP != nil && tr.ICMP.Received > 0
	p.NoAgent = !tr.Reachable && (tr.PeerRefused || (p.Layer == model.LayerNode && answered))
	p.Errors = append(p.Errors, tr.Errors...)
	for _, d := range tr.DNS {
		transport := "udp"
		if d.TCP {
			transport = "tcp"
		}
		p.DNS = append(p.DNS, model.DNSAnswer{Name: d.Name, Type: d.Type, Transport: transport, Bytes: d.Bytes,
			Records: d.Records, Rcode: d.Rcode, Truncated: d.Truncated, RTTMs: d.RTTMs, Error: d.Error})
	}
	for _, pr := range tr.Ports {
		p.Ports = append(p.Ports, model.PortState{Proto: pr.Proto, Port: pr.Port, State: pr.State, RTTMs: pr.RTTMs})
	}
	if m := tr.PathMTU; m != nil {
		p.PathMTU, p.PathMTULimit, p.ICMPMTU, p.ICMPFrom, p.PMTUProbes = m.PathMTU, m.Limit, m.ICMPMTU, m.ICMPFrom, m.Probes
		p.LocalMTU, p.IfaceMTU = m.LocalMTU, m.IfaceMTU
		p.PMTUMs = float64(m.Duration.Microseconds()) / 1000
		if w := m.Where; w != nil {
			p.Vanish = &model.Location{Size: w.Size, Hops: w.Hops, After: w.After, At: w.At, Gap: w.Gap, Silent: w.Silent}
		}
	}
	p.PathMTUError = tr.PathMTUError
	if f := tr.FullSize; f != nil && !f.Crossed {
		p.FullSizeLost = f.Size
	}
	if s := tr.RTT; s != nil {
		p.RTTMs = percentiles(s)
		p.LossPct = s.LossPct
		p.JitterMs = s.JitterMs
	}
	if s := tr.ICMP; s != nil {
		p.ICMPRTTMs = percentiles(s)
		loss := s.LossPct
		p.ICMPLossPct = &loss
	}
	if s := tr.TCPConnect; s != nil {
		p.TCPConnectMs, p.TCPConnectTried = percentiles(s), s.Sent
	}
	if h := tr.HTTP; h != nil {
		p.HTTPTotalMs = h.TotalMs
		if h.Error != "" {
			p.Errors = append(p.Errors, "HTTP: "+h.Error)
		}
	}
	if t := tr.Transfer; t != nil {
		p.TransferBytes, p.Stalled = t.Bytes, t.Stalled
		if t.Error != "" {
			p.Errors = append(p.Errors, "transfer: "+t.Error)
		}
	}
	if t := tr.Throughput; t != nil {
		p.ThroughputBps = t.BitsPerSec
		if t.Error != "" {
			p.Errors = append(p.Errors, "throughput: "+t.Error)
		}
	}
}

func percentiles(s *probe.Stats) *model.Percentiles {
	if s.Received == 0 {
		return nil
	}
	return &model.Percentiles{Min: s.MinMs, Mean: s.MeanMs, P50: s.P50Ms, P90: s.P90Ms, P99: s.P99Ms, Max: s.MaxMs}
}

// Facts asks every node's host agent for its host facts.
func (r *Runner) Facts(ctx context.Context, inv *inventory.Inventory) []model.NodeInfo {
	out := make([]model.NodeInfo, len(inv.Nodes))
	var wg sync.WaitGroup
	for i, n := range inv.Nodes {
		out[i] = model.NodeInfo{Name: n.Name, Address: n.Address}
		if n.Agent == "" {
			continue
		}
		wg.Go(func() {
			sent := time.Now()
			f, err := r.client(plan.Endpoint{Node: n.Name, Agent: n.Agent, Netns: n.Netns}).Facts(ctx)
			// The agent's clock is read between sending and receiving: the
			// midpoint is the controller's best guess of that moment.
			out[i].ReceivedAt = sent.Add(time.Since(sent) / 2)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			// Decoded once, here: the pipeline after this is typed.
			var facts model.Facts
			if err := json.Unmarshal(f, &facts); err != nil {
				out[i].Error = "unreadable host facts: " + err.Error()
				return
			}
			out[i].Facts = &facts
		})
	}
	wg.Wait()
	return out
}
