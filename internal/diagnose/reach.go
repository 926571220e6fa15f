package diagnose

import (
	"fmt"
	"maps"
	"slices"

	"podpath/internal/model"
)

// nodeUnreachable: nothing of the node answers, on any layer: not its
// agents to the controller, and not the node to its peers' probes (no UDP
// echo, ICMP echo, TCP handshake, nor even a "port unreachable" from its
// host). Everything about the node is unknown, not broken. A node that
// answers anything is up: what the controller could not ask of it is
// results-unknown, not a network fault.
func nodeUnreachable(s *state) {
	for _, n := range s.ev.Nodes {
		var asked, tried []model.Pair // pairs from n (the controller asked n's agents), and peers' pairs to n
		if s.ev.Facts[n] != nil {
			continue // its host agent answered
		}
		answered := false
		for _, p := range s.pairsOf("", n, anyPair) {
			switch {
			case p.From == n:
				asked = append(asked, p)
				answered = answered || p.Measured()
			case p.To == n && p.Measured():
				tried = append(tried, p)
			}
		}
		if answered || len(tried) == 0 || slices.ContainsFunc(tried, answers) {
			continue
		}
		var ev []string
		if e := s.ev.FactErrors[n]; e != "" {
			ev = append(ev, "host facts: "+e)
		}
		for _, l := range []model.Layer{model.LayerNode, model.LayerPod} {
			if i := slices.IndexFunc(asked, func(p model.Pair) bool { return p.Layer == l }); i >= 0 {
				ev = append(ev, fmt.Sprintf("%s layer: %s", l, asked[i].Unknown))
			}
			var peers []string
			for _, p := range tried {
				if p.Layer == l && !slices.Contains(peers, p.From) {
					peers = append(peers, p.From)
				}
			}
			if len(peers) > 0 {
				ev = append(ev, fmt.Sprintf("%s layer: no probe from %s reached it (UDP echoes, an ICMP echo and a TCP handshake, all unanswered, not even refused)", l, joinNames(peers)))
			}
		}
		all := s.pairsOf(model.LayerNode, n, anyPair)
		all = append(all, s.podPairsOf(n)...)
		addr := s.ev.Addresses[n]
		if addr == "" {
			addr = "<" + n + " address>"
		}
		s.add(model.Finding{
			ID: NodeUnreachable, Severity: Error, Title: "Node " + n + " is unreachable",
			Summary:  fmt.Sprintf("Nothing of %s answers: not its agents to the controller, not the node to its peers' probes on any layer. It is down, cut off, or a firewall drops everything arriving there. Its results are unknown, not failures.", n),
			Nodes:    []string{n},
			Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Check that %s is up and reachable on its node address (a firewall in front of it or on it), then run again.", n),
				Commands: []string{"kubectl get node " + n + " -o wide", "ping -c 3 " + addr}},
		}, all)
	}
}

// answers reports whether a measured pair got anything back from its
// destination: a UDP echo, a TCP handshake, an ICMP echo, or a refusal.
func answers(p model.Pair) bool {
	return p.Reachable || p.NoAgent || p.TCPConnectMs != nil || (p.ICMPLossPct != nil && *p.ICMPLossPct < 100)
}

// resultsUnknown: pairs podpath could not measure, and nodes whose host
// facts it could not read, beyond an unreachable node's. Not a network
// fault: the controller could not ask an agent, lost its answer, or found
// no agent listening. Said, so that a clean report is not read as a clean
// bill for what was never checked.
func resultsUnknown(s *state) {
	type group struct {
		pairs  []model.Pair
		reason string
	}
	groups := map[string]*group{} // by what went unmeasured
	var keys, ev []string
	addTo := func(key, reason string, p model.Pair) {
		g, ok := groups[key]
		if !ok {
			g = &group{reason: reason}
			groups[key] = g
			keys = append(keys, key)
		}
		g.pairs = append(g.pairs, p)
	}
	var unknown []model.Pair
	nodes := map[string]bool{}
	for _, p := range s.ev.Pairs.All() {
		if p.Known() && p.Reachable && p.PathMTU == 0 && p.PathMTUError != "" && !s.isExplained(p) {
			unknown = append(unknown, p)
			nodes[p.From], nodes[p.To] = true, true
			addTo(string(p.Layer)+":pmtu", fmt.Sprintf("%s layer: the path MTU is not known (%s → %s: %s)", p.Layer, p.From, p.To, p.PathMTUError), p)
			continue
		}
		if p.Known() || s.explained[keyOf(p)] == NodeUnreachable {
			continue
		}
		unknown = append(unknown, p)
		if p.NoAgent {
			nodes[p.To] = true
			addTo(fmt.Sprintf("%s:%s:to", p.Layer, p.To), fmt.Sprintf("%s layer: no agent answers on %s, though its host answers (ICMP port unreachable, an ICMP echo or a TCP handshake): the node is up, its agent is not running, is stopped, or a firewall drops the agent's port (or the path loses nearly every datagram)", p.Layer, p.To), p)
			continue
		}
		nodes[p.From] = true
		addTo(fmt.Sprintf("%s:%s:from", p.Layer, p.From), fmt.Sprintf("%s layer: %s", p.Layer, p.Unknown), p)
	}
	for _, k := range keys {
		g := groups[k]
		ev = append(ev, fmt.Sprintf("%s (%s)", g.reason, count(len(g.pairs), "pair")))
	}
	for _, n := range s.ev.Nodes {
		if e, ok := s.ev.FactErrors[n]; ok && s.ev.Facts[n] == nil && !s.explainedBy(n, NodeUnreachable) {
			nodes[n] = true
			ev = append(ev, fmt.Sprintf("host facts of %s not read: %s: its firewall, routes, sysctls and Calico state were not checked", n, e))
		}
	}
	if len(ev) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(nodes))
	title := "Not measured: " + count(len(unknown), "pair")
	if len(unknown) == 0 {
		title = "Host facts not read"
	}
	remedy := &model.Remedy{Summary: "Check that podpath's agents run on these nodes and that the controller reaches their port; then run again.",
		Commands: []string{"podpath doctor ...   # again, once the agents answer"}}
	switch {
	case !slices.ContainsFunc(s.findings, func(f model.Finding) bool { return f.Severity == Error }):
	case !slices.ContainsFunc(names, func(n string) bool { return !s.namedByError(n) }):
		// The controller's calls to those agents cross the very path an
		// error above is about.
		remedy = &model.Remedy{Summary: "These could not be measured because of the error found on " + joinNames(names) + " above: the controller's calls to the agents there cross the same broken path. Fix that, then run again."}
	default:
		// Healthy-looking nodes the controller could not reach: when it runs
		// on a node an error names, that node's trouble cuts its calls too.
		remedy.Summary = "If podpath runs on a node an error above names, that error cuts the controller's calls too: fix it first, or run podpath from another node. Otherwise check that podpath's agents run on these nodes and that the controller reaches their port; then run again."
	}
	s.add(model.Finding{
		ID: ResultsUnknown, Severity: Warning, Title: title + " (" + joinNames(names) + ")",
		Summary:  "podpath could not measure these: the controller could not ask an agent or lost its answer, or no agent listens where one should. They are unknown, neither working nor broken, and no finding rests on them.",
		Nodes:    names,
		Pairs:    refs(unknown),
		Evidence: capLines(ev, maxEvidence),
		Remedy:   remedy,
	}, unknown)
}
