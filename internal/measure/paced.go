package measure

import (
	"context"
	"fmt"
	"sort"
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
	// cutPerAgent and cutWave bound the depth rounds of pairs that no
	// echo crossed in the cheap check and its second look: no size
	// search, series or transfer follows on them (the agent sees them
	// unreachable), only timeouts, an ICMP echo and a TCP handshake.
	// An agent waits on agent.MaxParallel unreachable peers at once.
	cutPerAgent = agent.MaxParallel
	cutWave     = 4 * DeepWave
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
func (r *Runner) Paced(ctx context.Context, jobs []plan.Job, deep agent.ProbeRequest, pace Pace) model.Pairs {
	jobs = plan.Rotated(jobs)
	// The agents take their peers while the pairs' table is built.
	var before map[string]agent.Load
	var armed map[string]bool
	var refused map[string]error
	var arming sync.WaitGroup
	arming.Go(func() { before, armed, refused = r.arm(ctx, jobs) })
	t := newTable(jobs)
	arming.Wait()
	var live []work // the armed agents' jobs
	for j, job := range jobs {
		if err, ok := refused[job.From.Name()]; ok {
			for k := range job.Peers {
				p := t.pairs.At(t.base[j] + k)
				p.Unknown = fmt.Sprintf("the controller could not ask the agent on %s: %v", job.From.Name(), err)
				t.pairs.Set(t.base[j]+k, p)
			}
		}
		if armed[job.From.Name()] {
			live = append(live, work{job: job, base: t.base[j]})
		}
	}

	cheap := agent.ProbeRequest{Cheap: true, Parallel: cheapParallel}
	n := 0
	for _, w := range live {
		n += len(w.job.Peers)
	}
	pace.say("podpath doctor: checking %d pairs (reachability and a full-sized packet)…", n)
	r.runBatched(ctx, live, cheap, cheapBatch, cheapInFlight, t.pairs.Set)
	// cut: pairs that no echo crossed in the cheap check's quiet second
	// look either; once more in depth is their last.
	cut := map[int]bool{}
	if !pace.FullMesh {
		// A second cheap look, a few peers at a time, at what looked odd:
		// in the burst of the first, a responder late by a second reads as
		// a lost echo (a 100-node lab on 2 cores: a fifth of the pairs).
		look, _ := sample(t.odd(live), secondLookPerAgent*len(jobs))
		if len(look) > 0 {
			pace.say("podpath doctor: checking %d pairs that looked odd again, %d peers at a time…", len(look), secondLookParallel)
			// Pairs that nothing crossed hold an agent's slot for their
			// round only (then they wait): more of them at once, or a node
			// cut off from 99 peers took half a minute here, 4 at a time.
			var silent, rest []at
			for _, p := range look {
				if res := t.pairs.At(p.i); res.Measured() && !res.Reachable {
					silent = append(silent, p)
				} else {
					rest = append(rest, p)
				}
			}
			for _, set := range []struct {
				pairs    []at
				parallel int
			}{{rest, secondLookParallel}, {silent, silentLookParallel}} {
				again := cheap
				again.Parallel = set.parallel
				for k, got := range r.runPairs(ctx, plain(set.pairs), again) {
					if got.Measured() {
						t.pairs.Set(set.pairs[k].i, got)
						if !got.Reachable {
							cut[set.pairs[k].i] = true
						}
					}
				}
			}
		}
	}

	// In depth: the cover, and everything the cheap check found odd.
	var depth []at
	if pace.FullMesh {
		for _, w := range live {
			for k, to := range w.job.Peers {
				depth = append(depth, at{plan.Pair{Layer: w.job.Layer, From: w.job.From, To: to}, w.base + k})
			}
		}
	} else {
		class := pace.Class
		if class == nil {
			class = func(string) string { return "" }
		}
		in := map[int]bool{}
		take := func(p at) {
			if p.i >= 0 && armed[p.From.Name()] && !in[p.i] {
				in[p.i] = true
				depth = append(depth, p)
			}
		}
		for _, p := range t.find(plan.Cover(jobs, class)) {
			take(p)
		}
		odd := t.odd(live)
		picked, left := sample(odd, maxSuspects(len(jobs)))
		var back []plan.Pair
		for _, p := range picked {
			back = append(back, plan.Pair{Layer: p.Layer, From: p.To, To: p.From})
		}
		back2 := t.find(back)
		for k, p := range picked {
			take(p)
			take(back2[k])
		}
		if len(left) > 0 {
			pace.say("podpath doctor: %d pairs looked odd in the cheap check; measuring %d of them, spread over the senders, in depth…", len(odd), len(picked))
		}
		for _, p := range left {
			// Not confirmed, so no evidence: what one cheap look showed
			// on this many pairs at once is as likely the run's own load.
			res := t.pairs.At(p.i)
			res.Unknown = fmt.Sprintf("not confirmed: the cheap check showed %s, but %d pairs looked odd at once, over the %d measured again in depth (the run's load or a wide outage: see those)", suspect(res), len(odd), len(picked))
			t.pairs.Set(p.i, res)
		}
	}
	where := make(map[[3]string]int, len(depth))
	for _, p := range depth {
		where[p.Key()] = p.i
	}
	update := func(k [3]string, f func(*model.Pair)) {
		p := t.pairs.At(where[k])
		f(&p)
		t.pairs.Set(where[k], p)
	}
	pace.say("podpath doctor: measuring %d pairs in depth (path MTU, echo series, transfers)…", len(depth))
	light, heavy := deep, agent.ProbeRequest{TransferBytes: deep.TransferBytes}
	light.TransferBytes = 0
	// Pairs no echo crossed twice go in waves of their own, wider: each
	// waits out its timeouts (about 6 s) and sends a few small packets,
	// so sixteen at a time made a node cut off from 59 peers cost a
	// minute, the run's whole budget.
	var answering, dead []at
	for _, p := range depth {
		if cut[p.i] {
			dead = append(dead, p)
		} else {
			answering = append(answering, p)
		}
	}
	for _, set := range []struct {
		pairs     []at
		per, size int
	}{{answering, DeepPerAgent, DeepWave}, {dead, cutPerAgent, cutWave}} {
		for _, wave := range plan.Waves(plain(set.pairs), set.per, set.size) {
			for k, got := range r.runPairs(ctx, wave, light) {
				update(wave[k].Key(), func(p *model.Pair) { merge(p, got) })
			}
		}
	}
	if heavy.TransferBytes > 0 {
		var reachable []plan.Pair
		limited := map[string]int{}
		for _, p := range depth {
			res := t.pairs.At(p.i)
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
			reachable = append(reachable, p.Pair)
		}
		pace.say("podpath doctor: transfers on %d pairs, %d at a time…", len(reachable), transferWave)
		for _, wave := range plan.Waves(reachable, 1, transferWave) {
			for k, got := range r.runPairs(ctx, wave, heavy) {
				update(wave[k].Key(), func(p *model.Pair) { mergeTransfer(p, got) })
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
		res := t.pairs.At(p.i)
		if cut[p.i] && !res.Reachable && res.Measured() {
			// Unreachable three times, the second look and the depth
			// quiet ones: a fourth, alone, would only wait out the same
			// timeouts (about 4 s a pair: a node cut off from its 11
			// peers took the run past its timeout).
			continue
		}
		if why := suspect(res); why != "" && (lossLike(res) || res.PathMTUError != "") {
			again = append(again, p.Pair)
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
					got.Retried = "measured again alone; the first attempt, in the run's busiest round, showed " + reasons[wave[k].Key()]
					t.pairs.Set(where[wave[k].Key()], got)
				}
			}
			wave = wave[n:]
		}
	}
	r.blameLoad(ctx, jobs, before, t.pairs)
	return t.pairs
}

// table is a paced run's pairs, job by job in the order of its jobs.
type table struct {
	jobs  []plan.Job
	base  []int // base[j]: the index of jobs[j]'s first pair; base[len(jobs)]: how many
	pairs model.Pairs
}

func newTable(jobs []plan.Job) *table {
	t := &table{jobs: jobs, base: make([]int, len(jobs)+1)}
	for j, job := range jobs {
		t.base[j+1] = t.base[j] + len(job.Peers)
	}
	t.pairs = model.CompactPairs(t.base[len(jobs)], t.names)
	return t
}

// names is pair i's names.
func (t *table) names(i int) model.Pair {
	j := sort.Search(len(t.jobs), func(j int) bool { return t.base[j+1] > i })
	job := t.jobs[j]
	to := job.Peers[i-t.base[j]]
	return job.Pair(to)
}

// find returns ps with their indices in the table (-1: not there). Each
// job with pairs asked about is read once: finding every one of a
// 5,000-node cover's pairs in a map of all 25 million would cost more
// than the pairs themselves.
func (t *table) find(ps []plan.Pair) []at {
	out := make([]at, len(ps))
	wanted := map[[2]string]map[string][]int{} // sender → peer → positions in ps
	for k, p := range ps {
		out[k] = at{p, -1}
		s := [2]string{string(p.Layer), p.From.Name()}
		if wanted[s] == nil {
			wanted[s] = map[string][]int{}
		}
		wanted[s][p.To.Name()] = append(wanted[s][p.To.Name()], k)
	}
	for j, job := range t.jobs {
		w := wanted[[2]string{string(job.Layer), job.From.Name()}]
		if w == nil {
			continue
		}
		for k, to := range job.Peers {
			for _, pos := range w[to.Name()] {
				out[pos].i = t.base[j] + k
			}
		}
	}
	return out
}

// odd are the measured pairs of the work whose result looks like a fault.
func (t *table) odd(ws []work) []at {
	var odd []at
	for _, w := range ws {
		for k, to := range w.job.Peers {
			if res := t.pairs.At(w.base + k); res.Measured() && suspect(res) != "" {
				odd = append(odd, at{plan.Pair{Layer: w.job.Layer, From: w.job.From, To: to}, w.base + k})
			}
		}
	}
	return odd
}

// at is a pair and the index of its result.
type at struct {
	plan.Pair
	i int
}

func plain(ps []at) []plan.Pair {
	out := make([]plan.Pair, len(ps))
	for k, p := range ps {
		out[k] = p.Pair
	}
	return out
}

// arm gives every job's agent its peers, armInFlight at once, and
// returns their load counters, which agents took them, and why the
// others did not (their pairs are unknown, with the reason).
func (r *Runner) arm(ctx context.Context, jobs []plan.Job) (map[string]agent.Load, map[string]bool, map[string]error) {
	loads, armed, refused := map[string]agent.Load{}, map[string]bool{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, armInFlight)
	for _, j := range jobs {
		if err := r.unaskable(j.From.Name()); err != nil {
			refused[j.From.Name()] = err
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			peers := make([]agent.Peer, len(j.Peers))
			for i, p := range j.Peers {
				peers[i] = agent.Peer{Name: p.Name(), Address: p.ProbeAt()}
			}
			ans, err := r.client(j.From).PutPeers(ctx, peers)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused[j.From.Name()] = err
				r.markUnaskable(j.From.Name(), err)
				return
			}
			loads[j.From.Name()], armed[j.From.Name()] = ans.Load, true
		})
	}
	wg.Wait()
	return loads, armed, refused
}

// armInFlight bounds the peer lists being sent at once: at 5,000 nodes
// each is 300 KB to build, encode and send, and all at once were
// gigabytes in the controller.
const armInFlight = 64

// runPairs runs req on pairs, every sender at once, each sender's targets
// in requests of at most agent.MaxTargets, and returns the results in
// pairs' order.
func (r *Runner) runPairs(ctx context.Context, pairs []plan.Pair, req agent.ProbeRequest) []model.Pair {
	out := make([]model.Pair, len(pairs))
	var ws []work
	bySender := map[[2]string]int{}
	for i, p := range pairs {
		k := [2]string{string(p.Layer), p.From.Name()}
		w, ok := bySender[k]
		if !ok {
			w = len(ws)
			bySender[k] = w
			ws = append(ws, work{job: plan.Job{Layer: p.Layer, From: p.From}})
		}
		ws[w].job.Peers = append(ws[w].job.Peers, p.To)
		ws[w].idx = append(ws[w].idx, i)
	}
	r.runBatched(ctx, ws, req, agent.MaxTargets, 0, func(i int, got model.Pair) { out[i] = got })
	return out
}

// work is one sender's share of a run: job.Peers, whose results go to
// put's index base+k (or idx[k], when set).
type work struct {
	job  plan.Job
	base int
	idx  []int
}

func (w work) index(k int) int {
	if w.idx != nil {
		return w.idx[k]
	}
	return w.base + k
}

// runBatched runs req on every work's peers in requests of at most batch
// targets, each sender one request at a time; with inFlight > 0, at most
// that many requests across the cluster at once, every sender's first
// batch before anyone's second. Each result goes to put with its index,
// one call at a time.
func (r *Runner) runBatched(ctx context.Context, ws []work, req agent.ProbeRequest, batch, inFlight int, put func(i int, got model.Pair)) {
	var mu sync.Mutex
	run := func(w work, lo int) {
		part := w.job
		part.Peers = w.job.Peers[lo:min(len(w.job.Peers), lo+batch)]
		got := r.probeJob(ctx, part, req)
		mu.Lock()
		defer mu.Unlock()
		for k := range part.Peers {
			put(w.index(lo+k), got[k])
		}
	}
	var wg sync.WaitGroup
	if inFlight <= 0 {
		for _, w := range ws {
			wg.Go(func() {
				for lo := 0; lo < len(w.job.Peers); lo += batch {
					run(w, lo)
				}
			})
		}
		wg.Wait()
		return
	}
	// One request at a time per sender: a sender whose batch is in flight
	// waits for it (busy), in chunk-major order across the senders.
	busy := make([]sync.Mutex, len(ws))
	type chunk struct{ w, lo int }
	next := make(chan chunk)
	for range inFlight {
		wg.Go(func() {
			for c := range next {
				busy[c.w].Lock()
				run(ws[c.w], c.lo)
				busy[c.w].Unlock()
			}
		})
	}
	for lo := 0; ; lo += batch {
		sent := false
		for w := range ws {
			if lo < len(ws[w].job.Peers) {
				next <- chunk{w, lo}
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

// secondLookPerAgent bounds the odd pairs of the cheap check looked at
// again, per agent: 32 × 1,000 agents is 32,000 cheap checks, seconds.
// secondLookParallel is how many of them an agent checks at once: one at
// a time, a node whose Pod network is cut off (a dead peer costs about 5
// s of timeouts) took 11 × 5 s on a 12-node cluster, past the run's
// minute.
const (
	secondLookPerAgent = 32
	secondLookParallel = 4
	// silentLookParallel is secondLookParallel for the pairs that nothing
	// crossed in the first look: each holds its slot for one round (a
	// second at most, a few small packets), then only waits.
	silentLookParallel = 16
)

// maxSuspects bounds how many pairs the cheap check found odd are
// measured in depth: eight per agent, at least four rounds' worth. When
// far more look odd, it is the run's own load or an outage wide enough
// that a sample names it; measuring all of them would take hours at a
// thousand nodes.
func maxSuspects(agents int) int { return max(4*DeepWave, 8*agents) }

// sample takes up to n of pairs, one sender at a time in turn, so every
// sender's trouble is looked at; it returns the rest too.
func sample(pairs []at, n int) (picked, left []at) {
	if len(pairs) <= n {
		return pairs, nil
	}
	var order [][2]string
	by := map[[2]string][]at{}
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
	in := make(map[int]bool, len(picked))
	for _, p := range picked {
		in[p.i] = true
	}
	for _, p := range pairs {
		if !in[p.i] {
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
func (r *Runner) blameLoad(ctx context.Context, jobs []plan.Job, before map[string]agent.Load, pairs model.Pairs) {
	victims := map[string][]int{}
	for i, p := range pairs.All() {
		if lossLike(p) {
			to := p.To
			if p.ToPod != "" {
				to = p.ToPod
			}
			victims[to] = append(victims[to], i)
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
				peers[i] = agent.Peer{Name: p.Name(), Address: p.ProbeAt()}
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
			for _, i := range ps {
				p := pairs.At(i)
				p.Unknown = why
				pairs.Set(i, p)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
}
