package measure

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"podpath/internal/agent"
	"podpath/internal/model"
	"podpath/internal/plan"
)

// Pacing of a doctor run. The run must never measure its own load: at a
// hundred nodes, every agent probing every peer in depth at once lost a
// third of its probes to itself (issue 18).
const (
	// cheapParallel is how many peers one agent checks at once in the
	// cheap round: a small and a full-sized probe per pair (agent.Cheap).
	cheapParallel = 8
	// cheapBatch and cheapInFlight bound the cheap check across the
	// cluster: requests of 128 targets, 64 requests at once (512 pairs). A
	// real cluster checks 1,000 nodes' million pairs in seconds so; on one
	// machine (a lab, the virtual cluster) every agent's 8 at once meant
	// 8,000 flows in flight, answers late by seconds and a third of the
	// pairs looking odd.
	cheapBatch    = 128
	cheapInFlight = 64
	// DeepPerAgent bounds, per round of expensive measurements, how many
	// peers an agent measures and by how many it is measured: a responder
	// meets at most this many size searches at once (16 × 16 probes per
	// search round, far inside its answer burst).
	DeepPerAgent = 16
	// DeepWave bounds how many pairs are measured in depth at once across
	// the cluster. A real cluster spreads them over its nodes; a lab (or
	// the virtual cluster) runs them all on one machine, where the run's
	// own load would read as latency and loss. At 1,000 nodes the deep
	// set is about 6,000 pairs: 47 rounds.
	DeepWave = 128
	// transferWave bounds the transfers at once: 300 KB each, the
	// heaviest part, run after the latency series so as not to load them.
	transferWave = 32
	// limitedTransfers bounds the transfers per agent over paths whose
	// size limit the search confirmed, when there are more than
	// limitedTransfersFrom jobs (a small lab transfers on every pair).
	limitedTransfers     = 3
	limitedTransfersFrom = 12
	// retryWave bounds how many suspect pairs are measured again at once,
	// each agent in at most one of them.
	retryWave = 32
)

// Pace is how a paced run is laid out.
type Pace struct {
	// FullMesh measures every pair in depth (today's behaviour before
	// pacing), in rounds of DeepPerAgent.
	FullMesh bool
	// Class names a node's link class (its subnet or zone): the covering
	// subset joins every pair of classes. Nil: one class.
	Class func(node string) string
	// Say, when set, hears what each step is about to do (progress).
	Say func(format string, a ...any)
}

func (p Pace) say(format string, a ...any) {
	if p.Say != nil {
		p.Say(format, a...)
	}
}

// Paced measures every pair of jobs in three steps, each bounded so that
// no responder is overrun:
//
//  1. every pair, the cheap check: reachability, a full-sized
//     Don't-Fragment probe and one TCP handshake; what looked odd, once
//     more, one peer at a time;
//  2. in depth (deep: size search, echo series, transfer), a covering
//     subset (plan.Cover), every pair the cheap check found anything on
//     and its reverse, in rounds of DeepPerAgent;
//  3. a pair whose measurement looks like a fault is measured again alone,
//     slowly, and that answer is kept.
//
// Agents report what they dropped for load (agent.Load): a pair still
// looking lossy towards an agent that dropped peers' probes for load, or
// whose kernel overflowed its receive queue, is unknown, not a fault.
func (r *Runner) Paced(ctx context.Context, jobs []plan.Job, deep agent.ProbeRequest, pace Pace) []model.Pair {
	jobs = plan.Rotated(jobs)
	// The agents take their peers while the pairs' table is built (at a
	// million pairs, seconds of the controller's CPU either way).
	var before map[string]agent.Load
	var armed map[string]bool
	var refused map[string]error
	var arming sync.WaitGroup
	arming.Go(func() { before, armed, refused = r.arm(ctx, jobs) })
	all := plan.Pairs(jobs)
	// store holds every pair's result in all's order (one allocation, not
	// a million); results finds them by key.
	store := make([]model.Pair, len(all))
	results := make(map[[3]string]*model.Pair, len(all))
	for i, p := range all {
		store[i] = model.Pair{From: p.From.Node, To: p.To.Node, Layer: p.Layer, FromPod: p.From.Pod, ToPod: p.To.Pod}
		results[p.Key()] = &store[i]
	}
	arming.Wait()
	for _, j := range jobs {
		if err, ok := refused[j.From.Name()]; ok {
			for _, p := range j.Peers {
				results[plan.Pair{Layer: j.Layer, From: j.From, To: p}.Key()].Unknown = fmt.Sprintf("the controller could not ask the agent on %s: %v", j.From.Name(), err)
			}
		}
	}

	cheap := agent.ProbeRequest{Cheap: true, Parallel: cheapParallel}
	var live []plan.Pair
	var liveAt []*model.Pair // live's results, in its order
	for i, p := range all {
		if armed[p.From.Name()] {
			live = append(live, p)
			liveAt = append(liveAt, &store[i])
		}
	}
	pace.say("podpath doctor: checking %d pairs (reachability and a full-sized packet)…", len(live))
	r.runBatched(ctx, live, cheap, cheapBatch, cheapInFlight, func(i int, got model.Pair) { *liveAt[i] = got })
	if !pace.FullMesh {
		// A second cheap look, one peer at a time, at what looked odd: in
		// the burst of the first, a responder late by a second reads as a
		// lost echo (a 100-node lab on 2 cores: a fifth of the pairs).
		look, _ := sample(oddPairs(live, liveAt), secondLookPerAgent*len(jobs))
		if len(look) > 0 {
			pace.say("podpath doctor: checking %d pairs that looked odd again, one peer at a time…", len(look))
			again := cheap
			again.Parallel = 1
			for k, got := range r.runPairs(ctx, look, again) {
				if got.Measured() {
					*results[k] = got
				}
			}
		}
	}

	// In depth: the cover, and everything the cheap check found odd.
	var depth []plan.Pair
	if pace.FullMesh {
		depth = live
	} else {
		class := pace.Class
		if class == nil {
			class = func(string) string { return "" }
		}
		in := map[[3]string]bool{}
		take := func(p plan.Pair) {
			if armed[p.From.Name()] && !in[p.Key()] {
				in[p.Key()] = true
				depth = append(depth, p)
			}
		}
		for _, p := range plan.Cover(jobs, class) {
			take(p)
		}
		odd := oddPairs(live, liveAt)
		picked, left := sample(odd, maxSuspects(len(jobs)))
		for _, p := range picked {
			take(p)
			if _, ok := results[[3]string{string(p.Layer), p.To.Node, p.From.Node}]; ok {
				take(plan.Pair{Layer: p.Layer, From: p.To, To: p.From})
			}
		}
		if len(left) > 0 {
			pace.say("podpath doctor: %d pairs looked odd in the cheap check; measuring %d of them, spread over the senders, in depth…", len(odd), len(picked))
		}
		for _, p := range left {
			// Not confirmed, so no evidence: what one cheap look showed
			// on this many pairs at once is as likely the run's own load.
			res := results[p.Key()]
			res.Unknown = fmt.Sprintf("not confirmed: the cheap check showed %s, but %d pairs looked odd at once, over the %d measured again in depth (the run's load or a wide outage: see those)", suspect(*res), len(odd), len(picked))
		}
	}
	pace.say("podpath doctor: measuring %d pairs in depth (path MTU, echo series, transfers)…", len(depth))
	light, heavy := deep, agent.ProbeRequest{TransferBytes: deep.TransferBytes}
	light.TransferBytes = 0
	for _, wave := range plan.Waves(depth, DeepPerAgent, DeepWave) {
		for k, got := range r.runPairs(ctx, wave, light) {
			merge(results[k], got)
		}
	}
	if heavy.TransferBytes > 0 {
		var reachable []plan.Pair
		limited := map[string]int{}
		for _, p := range depth {
			res := results[p.Key()]
			if !res.Reachable {
				continue
			}
			if res.PathMTU > 0 && res.IfaceMTU > res.PathMTU && len(jobs) > limitedTransfersFrom {
				// A size limit the search confirmed: whether TCP gets past
				// it is the same on every pair of that path, and a transfer
				// that stalls waits out its stall timeout, one round each
				// (a node behind a 1,400-byte underlay has 400 such pairs
				// at 100 nodes: 20 minutes). A few per agent say it.
				from, to := string(p.Layer)+"/"+p.From.Name(), string(p.Layer)+"/"+p.To.Name()
				if limited[from] >= limitedTransfers || limited[to] >= limitedTransfers {
					continue
				}
				limited[from]++
				limited[to]++
			}
			reachable = append(reachable, p)
		}
		pace.say("podpath doctor: transfers on %d pairs, %d at a time…", len(reachable), transferWave)
		for _, wave := range plan.Waves(reachable, 1, transferWave) {
			for k, got := range r.runPairs(ctx, wave, heavy) {
				mergeTransfer(results[k], got)
			}
		}
	}

	// Again, alone: what looks like a fault must survive a quiet second
	// look. Not a size limit the search confirmed, nor what it explains (a
	// stalled transfer): the search has its own control probes, and each
	// stalled transfer again would wait out its stall timeout.
	var again []plan.Pair
	reasons := map[[3]string]string{}
	for _, p := range depth {
		res := results[p.Key()]
		if why := suspect(*res); why != "" && (lossLike(*res) || res.PathMTUError != "") {
			again = append(again, p)
			reasons[p.Key()] = why
		}
	}
	slow := deep
	slow.Parallel = 1
	if len(again) > 0 {
		pace.say("podpath doctor: measuring %d suspect pairs again, alone…", len(again))
	}
	for _, wave := range plan.Waves(again, 1, 0) {
		for len(wave) > 0 && ctx.Err() == nil {
			n := min(len(wave), retryWave)
			for k, got := range r.runPairs(ctx, wave[:n], slow) {
				if got.Measured() {
					got.Retried = "measured again alone; the first attempt, in the run's busiest round, showed " + reasons[k]
					*results[k] = got
				}
			}
			wave = wave[n:]
		}
	}
	r.blameLoad(ctx, jobs, before, results)
	return store
}

// arm gives every job's agent its peers, all at once, and returns their
// load counters, which agents took them, and why the others did not
// (their pairs are unknown, with the reason).
func (r *Runner) arm(ctx context.Context, jobs []plan.Job) (map[string]agent.Load, map[string]bool, map[string]error) {
	loads, armed, refused := map[string]agent.Load{}, map[string]bool{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			peers := make([]agent.Peer, len(j.Peers))
			for i, p := range j.Peers {
				peers[i] = agent.Peer{Name: p.Name(), Address: p.Agent}
			}
			ans, err := r.client(j.From).PutPeers(ctx, peers)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused[j.From.Name()] = err
				return
			}
			loads[j.From.Name()], armed[j.From.Name()] = ans.Load, true
		})
	}
	wg.Wait()
	return loads, armed, refused
}

// runPairs runs req on pairs, every sender at once, each sender's targets
// in requests of at most agent.MaxTargets, and returns a pair per key.
func (r *Runner) runPairs(ctx context.Context, pairs []plan.Pair, req agent.ProbeRequest) map[[3]string]model.Pair {
	out := make(map[[3]string]model.Pair, len(pairs))
	r.runBatched(ctx, pairs, req, agent.MaxTargets, 0, func(i int, got model.Pair) { out[pairs[i].Key()] = got })
	return out
}

// runBatched runs req on pairs in requests of at most batch targets, each
// sender one request at a time; with inFlight > 0, at most that many
// requests across the cluster at once, every sender's first batch before
// anyone's second. Each result goes to put with its index in pairs, one
// call at a time.
func (r *Runner) runBatched(ctx context.Context, pairs []plan.Pair, req agent.ProbeRequest, batch, inFlight int, put func(i int, got model.Pair)) {
	// A sender's pairs, by index, in pairs' order.
	type sender struct {
		idx  []int
		busy sync.Mutex // one request at a time
	}
	var senders []*sender
	bySender := map[[2]string]*sender{}
	for i, p := range pairs {
		k := [2]string{string(p.Layer), p.From.Name()}
		s, ok := bySender[k]
		if !ok {
			s = &sender{}
			bySender[k] = s
			senders = append(senders, s)
		}
		s.idx = append(s.idx, i)
	}
	var mu sync.Mutex
	run := func(s *sender, idx []int) {
		s.busy.Lock()
		defer s.busy.Unlock()
		first := pairs[idx[0]]
		part := plan.Job{Layer: first.Layer, From: first.From, Peers: make([]plan.Endpoint, len(idx))}
		for k, i := range idx {
			part.Peers[k] = pairs[i].To
		}
		got := r.probeJob(ctx, part, req)
		mu.Lock()
		for k, i := range idx {
			put(i, got[k])
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	if inFlight <= 0 {
		for _, s := range senders {
			wg.Go(func() {
				for lo := 0; lo < len(s.idx); lo += batch {
					run(s, s.idx[lo:min(len(s.idx), lo+batch)])
				}
			})
		}
		wg.Wait()
		return
	}
	type chunk struct {
		s   *sender
		idx []int
	}
	next := make(chan chunk)
	for range inFlight {
		wg.Go(func() {
			for c := range next {
				run(c.s, c.idx)
			}
		})
	}
	for lo := 0; ; lo += batch {
		sent := false
		for _, s := range senders {
			if lo < len(s.idx) {
				next <- chunk{s, s.idx[lo:min(len(s.idx), lo+batch)]}
				sent = true
			}
		}
		if !sent {
			break
		}
	}
	close(next)
	wg.Wait()
}

// oddPairs are the measured pairs of ps whose result (at, in ps's order)
// looks like a fault.
func oddPairs(ps []plan.Pair, at []*model.Pair) []plan.Pair {
	var odd []plan.Pair
	for i, p := range ps {
		if res := at[i]; res.Measured() && suspect(*res) != "" {
			odd = append(odd, p)
		}
	}
	return odd
}

// secondLookPerAgent bounds the odd pairs of the cheap check looked at
// again, per agent: 32 × 1,000 agents is 32,000 cheap checks, seconds.
const secondLookPerAgent = 32

// maxSuspects bounds how many pairs the cheap check found odd are
// measured in depth: eight per agent, at least four rounds' worth. When
// far more look odd, it is the run's own load or an outage wide enough
// that a sample names it; measuring all of them would take hours at a
// thousand nodes.
func maxSuspects(agents int) int { return max(4*DeepWave, 8*agents) }

// sample takes up to n of pairs, one sender at a time in turn, so every
// sender's trouble is looked at; it returns the rest too.
func sample(pairs []plan.Pair, n int) (picked, left []plan.Pair) {
	if len(pairs) <= n {
		return pairs, nil
	}
	var order [][2]string
	by := map[[2]string][]plan.Pair{}
	for _, p := range pairs {
		k := [2]string{string(p.Layer), p.From.Name()}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], p)
	}
	for i := 0; len(picked) < n; i++ {
		for _, k := range order {
			if i < len(by[k]) && len(picked) < n {
				picked = append(picked, by[k][i])
			}
		}
	}
	in := make(map[[3]string]bool, len(picked))
	for _, p := range picked {
		in[p.Key()] = true
	}
	for _, p := range pairs {
		if !in[p.Key()] {
			left = append(left, p)
		}
	}
	return picked, left
}

// merge puts an in-depth measurement over the cheap one. When the deep
// request got no answer (the agent died, or the controller lost its
// call), the pair is unknown: the verdict on a pair rests on its in-depth
// measurement, and half of one would be a guess. What the cheap check saw
// stays in the pair for the reader.
func merge(dst *model.Pair, got model.Pair) {
	if got.Measured() {
		*dst = got
		return
	}
	if dst.Measured() {
		dst.Unknown = "measured only in part: " + got.Unknown
	}
}

// mergeTransfer adds a transfer's outcome to a pair measured otherwise.
// A transfer the controller could not ask for is said, not guessed.
func mergeTransfer(dst *model.Pair, got model.Pair) {
	if !got.Measured() {
		dst.Errors = append(dst.Errors, "transfer not measured: "+got.Unknown)
		return
	}
	dst.TransferBytes, dst.Stalled = got.TransferBytes, got.Stalled
	for _, e := range got.Errors {
		if strings.HasPrefix(e, "transfer: ") {
			dst.Errors = append(dst.Errors, e)
		}
	}
}

// suspect says what in a measured pair would be evidence of a fault; ""
// when nothing. These are the pairs measured again before they count.
func suspect(p model.Pair) string {
	var what []string
	switch {
	case !p.Measured():
		return ""
	case p.NoAgent:
		what = append(what, "no agent answering")
	case !p.Reachable:
		what = append(what, "no echo answered")
	}
	if p.LossPct > 0 {
		what = append(what, fmt.Sprintf("%.0f%% echo loss", p.LossPct))
	}
	if p.ICMPLossPct != nil && *p.ICMPLossPct > 0 && p.Reachable {
		what = append(what, fmt.Sprintf("%.0f%% ICMP echo loss", *p.ICMPLossPct))
	}
	if p.FullSizeLost > 0 {
		what = append(what, fmt.Sprintf("%d-byte packets not crossing", p.FullSizeLost))
	}
	if p.PathMTU > 0 && p.IfaceMTU > p.PathMTU {
		what = append(what, fmt.Sprintf("a path MTU of %d below the interface's %d", p.PathMTU, p.IfaceMTU))
	}
	if p.PathMTUError != "" {
		what = append(what, "no path MTU ("+p.PathMTUError+")")
	}
	if p.Reachable && p.TCPConnectTried > 0 && p.TCPConnectMs == nil {
		what = append(what, "TCP handshakes failing")
	}
	if p.Stalled {
		what = append(what, "a stalled transfer")
	}
	return strings.Join(what, ", ")
}

// lossLike: what load alone could cause. A size limit the size search
// confirmed is not (it has its own control probes), and neither is what
// such a limit explains: full-sized packets lost, a stalled transfer.
func lossLike(p model.Pair) bool {
	if !p.Measured() {
		return false
	}
	sizeLimit := p.PathMTU > 0 && p.IfaceMTU > p.PathMTU
	return !p.Reachable || p.NoAgent || p.LossPct > 0 ||
		(p.TCPConnectTried > 0 && p.TCPConnectMs == nil) ||
		!sizeLimit && (p.Stalled || p.FullSizeLost > 0)
}

// blameLoad reads, for every agent that still looks lossy from some peer,
// its load counters once more: if it dropped peers' probes for its rate,
// or its kernel dropped datagrams for a full receive queue, since the
// run began, those pairs are unknown: the run's load, not the network's.
func (r *Runner) blameLoad(ctx context.Context, jobs []plan.Job, before map[string]agent.Load, results map[[3]string]*model.Pair) {
	victims := map[string][]*model.Pair{}
	for _, p := range results {
		if lossLike(*p) {
			to := p.To
			if p.ToPod != "" {
				to = p.ToPod
			}
			victims[to] = append(victims[to], p)
		}
	}
	if len(victims) == 0 {
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		name := j.From.Name()
		ps, ok := victims[name]
		was, armed := before[name]
		if !ok || !armed {
			continue
		}
		wg.Go(func() {
			peers := make([]agent.Peer, len(j.Peers))
			for i, p := range j.Peers {
				peers[i] = agent.Peer{Name: p.Name(), Address: p.Agent}
			}
			ans, err := r.client(j.From).PutPeers(ctx, peers) // the same peers: only the counters change
			if err != nil {
				return
			}
			over := ans.Load.OverRate - was.OverRate
			var rcvbuf uint64
			if !ans.Load.RcvbufUnknown && !was.RcvbufUnknown {
				rcvbuf = ans.Load.RcvbufErrors - was.RcvbufErrors
			}
			if over == 0 && rcvbuf == 0 {
				return
			}
			why := fmt.Sprintf("inconclusive: during the run the agent on %s left %d of its peers' probes unanswered for its rate and its kernel dropped %d datagrams for a full receive queue: load on that agent (podpath's own, or other traffic to it), not a verdict on the path", name, over, rcvbuf)
			mu.Lock()
			for _, p := range ps {
				p.Unknown = why
			}
			mu.Unlock()
		})
	}
	wg.Wait()
}
