package plan

import (
	"slices"

	"podpath/internal/model"
)

// Pair is one ordered pair of a layer: From's agent probes To's.
type Pair struct {
	Layer    model.Layer
	From, To Endpoint
}

// Key names a pair within a run: layer, from node, to node.
func (p Pair) Key() [3]string { return [3]string{string(p.Layer), p.From.Node, p.To.Node} }

// Pairs lists every pair of jobs, job by job.
func Pairs(jobs []Job) []Pair {
	n := 0
	for _, j := range jobs {
		n += len(j.Peers)
	}
	out := make([]Pair, 0, n)
	for _, j := range jobs {
		for _, to := range j.Peers {
			out = append(out, Pair{Layer: j.Layer, From: j.From, To: to})
		}
	}
	return out
}

// Rotated is jobs with every job's peers starting after its own agent
// (the peers that follow it in the inventory, then those before): when
// every agent works down its list, they do not all start on the same peer.
// The peers are reordered in place.
func Rotated(jobs []Job) []Job {
	out := make([]Job, len(jobs))
	positions := map[model.Layer]map[string]int{}
	for i, j := range jobs {
		// Peers are in inventory order without From: the first peer past
		// From is the first whose position in the layer is after From's.
		pos, ok := positions[j.Layer]
		if !ok {
			pos = layerPositions(jobs, j.Layer)
			positions[j.Layer] = pos
		}
		me := pos[j.From.Name()]
		cut := len(j.Peers)
		for k, p := range j.Peers {
			if pos[p.Name()] > me {
				cut = k
				break
			}
		}
		// In place (three reversals): at 5,000 nodes a copy of every
		// job's peers is 1.6 GB.
		slices.Reverse(j.Peers[:cut])
		slices.Reverse(j.Peers[cut:])
		slices.Reverse(j.Peers)
		out[i] = j
	}
	return out
}

func layerPositions(jobs []Job, layer model.Layer) map[string]int {
	pos := map[string]int{}
	for _, j := range jobs {
		if j.Layer == layer {
			pos[j.From.Name()] = len(pos)
		}
	}
	return pos
}

// FullMeshUpTo is the largest layer (in agents) whose every pair gets the
// expensive measurements: 90 pairs, a few seconds' work.
const FullMeshUpTo = 10

// CoverDegree is how many peers each agent measures in depth, and by how
// many it is measured, on a layer larger than FullMeshUpTo.
const CoverDegree = 3

// Cover picks the pairs the expensive measurements (size search, echo
// series, transfer) run on. Up to FullMeshUpTo agents on a layer, every
// pair. Above, a covering subset that grows with the cluster, not with
// its square: every agent sends to CoverDegree peers spread over the
// layer (offsets 1, about N/3 and 2N/3 in inventory order) and so is
// measured by as many; then, for every ordered pair of link classes
// (class, e.g. the node's subnet or zone) that no pair joins yet, one
// pair that does. The rest of the pairs get the cheap check only, and
// join the expensive ones when it finds anything (the caller's part).
func Cover(jobs []Job, class func(node string) string) []Pair {
	var out []Pair
	for _, layer := range layersOf(jobs) {
		var eps []Endpoint
		for _, j := range jobs {
			if j.Layer == layer {
				eps = append(eps, j.From)
			}
		}
		n := len(eps)
		if n <= FullMeshUpTo {
			for _, j := range jobs {
				if j.Layer == layer {
					out = append(out, Pairs([]Job{j})...)
				}
			}
			continue
		}
		seen := map[[2]string]bool{}
		joined := map[[2]string]bool{}
		add := func(a, b Endpoint) {
			k := [2]string{a.Name(), b.Name()}
			if a.Name() == b.Name() || seen[k] {
				return
			}
			seen[k] = true
			joined[[2]string{class(a.Node), class(b.Node)}] = true
			out = append(out, Pair{Layer: layer, From: a, To: b})
		}
		for d := 0; d < CoverDegree; d++ {
			off := 1 + d*(n-1)/CoverDegree
			for i := range eps {
				add(eps[i], eps[(i+off)%n])
			}
		}
		// Link classes: members in inventory order, a pair per missing
		// (from class, to class), taking members in turn so no one agent
		// carries them all.
		var classes []string
		members := map[string][]Endpoint{}
		for _, e := range eps {
			c := class(e.Node)
			if _, ok := members[c]; !ok {
				classes = append(classes, c)
			}
			members[c] = append(members[c], e)
		}
		turn := 0
		for _, ca := range classes {
			for _, cb := range classes {
				if joined[[2]string{ca, cb}] {
					continue
				}
				as, bs := members[ca], members[cb]
				for t := range len(as) * len(bs) {
					a, b := as[(turn+t)%len(as)], bs[(turn+t/len(as)+1)%len(bs)]
					if a.Name() != b.Name() {
						add(a, b)
						break
					}
				}
				turn++
			}
		}
	}
	return out
}

func layersOf(jobs []Job) []model.Layer {
	var ls []model.Layer
	for _, j := range jobs {
		if !slices.Contains(ls, j.Layer) {
			ls = append(ls, j.Layer)
		}
	}
	return ls
}

// Waves splits pairs into rounds in which no agent sends more than per of
// them and none is probed by more than per, and no round holds more than
// size pairs (0: no bound): a responder then answers a bounded number of
// senders at once whatever the cluster's size, and the machine that runs
// them all (a lab) a bounded load. Pairs keep their order; each goes into
// the first round with room.
func Waves(pairs []Pair, per, size int) [][]Pair {
	per = max(per, 1)
	var waves [][]Pair
	var out, in []map[string]int
	for _, p := range pairs {
		from, to := string(p.Layer)+"/"+p.From.Name(), string(p.Layer)+"/"+p.To.Name()
		w := 0
		for w < len(waves) && (out[w][from] >= per || in[w][to] >= per || size > 0 && len(waves[w]) >= size) {
			w++
		}
		if w == len(waves) {
			waves = append(waves, nil)
			out, in = append(out, map[string]int{}), append(in, map[string]int{})
		}
		waves[w] = append(waves[w], p)
		out[w][from]++
		in[w][to]++
	}
	return waves
}

// Group turns pairs back into jobs: one per layer and sender, peers in the
// pairs' order.
func Group(pairs []Pair) []Job {
	var jobs []Job
	index := map[[2]string]int{}
	for _, p := range pairs {
		k := [2]string{string(p.Layer), p.From.Name()}
		i, ok := index[k]
		if !ok {
			i = len(jobs)
			index[k] = i
			jobs = append(jobs, Job{Layer: p.Layer, From: p.From})
		}
		jobs[i].Peers = append(jobs[i].Peers, p.To)
	}
	return jobs
}
