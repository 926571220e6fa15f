package diagnose

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"podpath/internal/calico"
	"podpath/internal/hostfacts"
	"podpath/internal/model"
)

// Thresholds of the symptom rules.
const (
	// maxEvidence bounds a finding's evidence: every line a reader could
	// use on any real cluster, and no megabytes on a huge one (the pairs
	// themselves are in the finding's pairs). The text report shows fewer.
	maxEvidence = 100

	LossWarnPct        = 10  // % of echoes lost on a pair beyond which it is packet loss (10 echoes: 1 lost is noise)
	LatencyFactor      = 3.0 // a node's pairs this many times slower than the rest …
	LatencyMinExtraMs  = 5.0 // … and at least this much slower, is high latency on that node
	LatencyAbsoluteMs  = 50  // every pair slower than this in one cluster is high latency everywhere
	ConntrackFullRatio = 0.9
	WastefulMarginB    = 100 // a Pod MTU this far below what the path carries wastes it
)

// state carries what earlier (root-cause) rules explained, so later
// (symptom) rules stay quiet about it.
type state struct {
	ev        *Evidence
	findings  []model.Finding
	explained map[pairKey]string // pair → ID of the finding that explains it
	byNode    map[string][]string
}

func (s *state) add(f model.Finding, explains []model.Pair) {
	for _, p := range explains {
		if _, done := s.explained[keyOf(p)]; !done {
			s.explained[keyOf(p)] = f.ID
		}
	}
	s.findings = append(s.findings, f)
}

func (s *state) isExplained(p model.Pair) bool { _, ok := s.explained[keyOf(p)]; return ok }

func (s *state) pairs(layer model.Layer, pred func(model.Pair) bool) []model.Pair {
	var out []model.Pair
	for _, p := range s.ev.Pairs {
		if p.Layer == layer && pred(p) {
			out = append(out, p)
		}
	}
	return out
}

// Diagnose runs the catalogue over the evidence. Findings come sorted:
// errors first, root causes before the symptoms they explain; a healthy
// cluster gives none above info.
func Diagnose(ev Evidence) []model.Finding {
	s := &state{ev: &ev, explained: map[pairKey]string{}}
	for _, rule := range []func(*state){
		nodeNotReady, nodeUnreachable, firewallDrop, encapBlocked, encapMismatch, bgpSessionDown, ipForwardDisabled,
		rpFilterStrict, routeMissing, nodeNetworkPartition, mtuInconsistent, mtuBlackhole, underlayFragmentation, podNetworkPartition,
		kernelModuleMissing, calicoNodeUnhealthy, conntrackFull, packetLoss, highLatency,
		mtuWasteful, ipPoolMTUIgnored, icmpFiltered, resultsUnknown, nodeCordoned,
	} {
		rule(s)
	}
	sortFindings(s.findings)
	return s.findings
}

// Overhead is the bytes the backend's encapsulation adds to a Pod packet.
func Overhead(backend string) int {
	switch backend {
	case "vxlan":
		return 50
	case "ipip":
		return 20
	case "wireguard":
		return 60
	}
	return 0
}

// nodeNotReady: Kubernetes reports the node NotReady. Its kubelet, not the
// network, is the first suspect; podpath ran no agent there, so nothing
// about its network is claimed either way.
func nodeNotReady(s *state) {
	if len(s.ev.NotReady) == 0 {
		return
	}
	var ev []string
	nodes := slices.Sorted(maps.Keys(s.ev.NotReady))
	for _, n := range nodes {
		line := fmt.Sprintf("%s: Ready condition %s", n, s.ev.NotReady[n])
		if slices.Contains(s.ev.Cordoned, n) {
			line += "; cordoned (unschedulable)"
		}
		ev = append(ev, line)
	}
	s.add(model.Finding{
		ID: NodeNotReady, Severity: Warning, Title: "Node not ready, not probed: " + strings.Join(nodes, ", "),
		Summary:  "Kubernetes reports these nodes NotReady: podpath deployed no agent there and did not probe them. Their Pods' traffic is not judged; the kubelet is the first thing to check.",
		Nodes:    nodes,
		Evidence: ev,
		Remedy: &model.Remedy{Summary: "Check the node's kubelet and container runtime; once it is Ready, run podpath again.",
			Commands: []string{"kubectl describe node " + nodes[0], "journalctl -u kubelet --since -15m   # on the node"}},
	}, nil)
}

// nodeCordoned: a Ready node marked unschedulable. It was probed like any
// other (DaemonSets ignore cordons); said so the reader knows why new Pods
// avoid it.
func nodeCordoned(s *state) {
	var nodes []string
	for _, n := range s.ev.Cordoned {
		if _, down := s.ev.NotReady[n]; !down {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return
	}
	s.add(model.Finding{
		ID: NodeCordoned, Severity: Info, Title: "Node cordoned: " + strings.Join(nodes, ", "),
		Summary: "These nodes are marked unschedulable: new Pods avoid them. They are Ready and were probed like the others.",
		Nodes:   nodes,
	}, nil)
}

// nodeUnreachable: nothing of the node answers, on any layer: not its
// agents to the controller, and not the node to its peers' probes (no UDP
// echo, ICMP echo, TCP handshake, nor even a "port unreachable" from its
// host). Everything about the node is unknown, not broken. A node that
// answers anything is up: what the controller could not ask of it is
// results-unknown, not a network fault.
func nodeUnreachable(s *state) {
	for _, n := range s.ev.Nodes {
		var asked, tried []model.Pair // pairs from n (the controller asked n's agents), and peers' pairs to n
		answered := s.ev.Facts[n] != nil
		for _, p := range s.ev.Pairs {
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
				ev = append(ev, fmt.Sprintf("%s layer: no probe from %s reached it (UDP echoes, an ICMP echo and a TCP handshake, all unanswered, not even refused)", l, strings.Join(peers, ", ")))
			}
		}
		all := s.pairs(model.LayerNode, func(p model.Pair) bool { return p.From == n || p.To == n })
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
	for _, p := range s.ev.Pairs {
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
			addTo(fmt.Sprintf("%s:%s:to", p.Layer, p.To), fmt.Sprintf("%s layer: no agent answers on %s, though its host answers (ICMP port unreachable, an ICMP echo or a TCP handshake): the node is up, its agent is not running, is stopped, or a firewall drops the agent's port", p.Layer, p.To), p)
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
		remedy = &model.Remedy{Summary: "These could not be measured because of the error found on " + strings.Join(names, ", ") + " above: the controller's calls to the agents there cross the same broken path. Fix that, then run again."}
	default:
		// Healthy-looking nodes the controller could not reach: when it runs
		// on a node an error names, that node's trouble cuts its calls too.
		remedy.Summary = "If podpath runs on a node an error above names, that error cuts the controller's calls too: fix it first, or run podpath from another node. Otherwise check that podpath's agents run on these nodes and that the controller reaches their port; then run again."
	}
	s.add(model.Finding{
		ID: ResultsUnknown, Severity: Warning, Title: title + " (" + strings.Join(names, ", ") + ")",
		Summary:  "podpath could not measure these: the controller could not ask an agent or lost its answer, or no agent listens where one should. They are unknown, neither working nor broken, and no finding rests on them.",
		Nodes:    names,
		Pairs:    refs(unknown),
		Evidence: capLines(ev, maxEvidence),
		Remedy:   remedy,
	}, unknown)
}

// podPairsOf are the Pod-layer pairs with node n at either end.
func (s *state) podPairsOf(n string) []model.Pair {
	return s.pairs(model.LayerPod, func(p model.Pair) bool { return p.From == n || p.To == n })
}

func (s *state) failingPodPairsOf(n string) []model.Pair {
	return s.pairs(model.LayerPod, func(p model.Pair) bool { return (p.From == n || p.To == n) && (cut(p) || p.Stalled) })
}

// drops lists node n's firewall rules that drop traffic for need.
func (s *state) drops(n, need string) []hostfacts.FirewallDrop {
	f := s.ev.Facts[n]
	if f == nil {
		return nil
	}
	var out []hostfacts.FirewallDrop
	for _, d := range f.Firewall.Drops {
		if sure, perhaps := d.Stops(need); sure || perhaps {
			out = append(out, d)
		}
	}
	return out
}

// describe renders what drops need's traffic on node n: where, the rule
// or policy, whether only perhaps, and which of that traffic.
func describe(n string, ds []hostfacts.FirewallDrop, need string) []string {
	var out []string
	for _, d := range ds {
		cond := ""
		if sure, _ := d.Stops(need); !sure {
			cond = " (perhaps: it, or a rule before it, tests what podpath cannot know, such as the far end's address)"
		}
		where := fmt.Sprintf("%s %s chain %s", d.Family, d.Table, d.Chain)
		if d.Hook != "" {
			where += " (hook " + d.Hook + ")"
		}
		line := fmt.Sprintf("%s: nftables %s: %s%s", n, where, d.Rule, cond)
		if strings.HasPrefix(d.Family, "ip (iptables-legacy)") {
			line = fmt.Sprintf("%s: iptables-legacy table %s chain %s: %s%s", n, d.Table, d.Chain, d.Rule, cond)
		}
		var what []string
		for _, t := range d.Traffic {
			if rest, ok := strings.CutPrefix(t, need+": "); ok {
				what = append(what, strings.TrimSuffix(rest, " (perhaps)"))
			}
		}
		if len(what) > 0 {
			line += "; it stops " + needNames[need] + ": " + strings.Join(what, ", ")
		}
		out = append(out, line)
	}
	return out
}

// failingLine names n's failing Pod pairs.
func failingLine(failing []model.Pair, n string) string {
	var ps []string
	for _, p := range failing {
		ps = append(ps, p.From+" → "+p.To)
	}
	return fmt.Sprintf("Pod-network pairs with %s that fail (%d): %s", n, len(failing), strings.Join(capLines(ps, 6), ", "))
}

// peersIn are the nodes other than n at the ends of pairs.
func peersIn(pairs []model.Pair, n string) []string {
	var out []string
	for _, p := range pairs {
		for _, m := range []string{p.From, p.To} {
			if m != n && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}

// needNames say what each Need's traffic is, for people.
var needNames = map[string]string{
	hostfacts.NeedVXLAN: "VXLAN", hostfacts.NeedBGP: "BGP", hostfacts.NeedIPIP: "IPIP", hostfacts.NeedWireGuard: "WireGuard",
	hostfacts.NeedICMPFragNeeded: "ICMP fragmentation-needed", hostfacts.NeedICMP: "ICMP echoes", hostfacts.NeedPodTraffic: "Pod traffic",
}

// certain splits a node's drops for a need into those that stop it for
// sure and those that may. A possible drop is a finding only where the
// traffic it may stop fails.
func certain(ds []hostfacts.FirewallDrop, need string) (sure, maybe []hostfacts.FirewallDrop) {
	for _, d := range ds {
		if c, _ := d.Stops(need); c {
			sure = append(sure, d)
		} else {
			maybe = append(maybe, d)
		}
	}
	return sure, maybe
}

// firewallDrop: a rule or a chain's policy on a node drops what the
// backend's control plane or encapsulation needs, or the Pod traffic it
// forwards (VXLAN has its own, more specific finding).
func firewallDrop(s *state) {
	needs := []string{hostfacts.NeedPodTraffic}
	switch s.ev.Network.Backend {
	case "bgp":
		needs = append(needs, hostfacts.NeedBGP)
	case "ipip":
		needs = append(needs, hostfacts.NeedBGP, hostfacts.NeedIPIP)
	case "wireguard":
		needs = append(needs, hostfacts.NeedWireGuard)
	}
	what := map[string]string{hostfacts.NeedBGP: "BGP (TCP 179)", hostfacts.NeedIPIP: "IPIP (IP protocol 4)",
		hostfacts.NeedWireGuard: "WireGuard (UDP 51820/51821)", hostfacts.NeedPodTraffic: "Pod traffic between nodes"}
	for _, n := range s.ev.Nodes {
		for _, need := range needs {
			ds := s.drops(n, need)
			failing, explains := s.failingPodPairsOf(n), s.podPairsOf(n)
			if need == hostfacts.NeedBGP {
				// BIRD's sessions say which peers lost theirs: only the Pods
				// between n and those lost the routes.
				if down, known := s.bgpDownPeers(n); known {
					between := func(p model.Pair) bool {
						return (p.From == n && slices.Contains(down, p.To)) || (p.To == n && slices.Contains(down, p.From))
					}
					failing = slices.DeleteFunc(failing, func(p model.Pair) bool { return !between(p) })
					if len(down) > 0 {
						explains = slices.DeleteFunc(explains, func(p model.Pair) bool { return !between(p) })
					}
				}
			}
			if sure, _ := certain(ds, need); len(ds) == 0 || (len(sure) == 0 && len(failing) == 0) {
				continue
			}
			ev := describe(n, ds, need)
			if len(failing) > 0 {
				ev = append(ev, failingLine(failing, n))
			}
			title := fmt.Sprintf("A firewall rule on %s drops %s", n, what[need])
			summary := fmt.Sprintf("%s drops %s traffic that Calico's %s backend needs between nodes.", n, what[need], s.ev.Network.Backend)
			remedy := &model.Remedy{Summary: fmt.Sprintf("Allow %s between the cluster's nodes on %s (host firewall, and any cloud security group in front of it).", what[need], n),
				Commands: []string{"nft list ruleset   # on " + n + ": find the rule above and allow the port from the other nodes"}}
			if need == hostfacts.NeedPodTraffic {
				title, summary, remedy = podTrafficDrop(s, n, ds)
			}
			s.add(model.Finding{
				ID: FirewallDrop, Severity: Error, Title: title, Summary: summary,
				Nodes: []string{n}, Pairs: refs(failing), Evidence: ev, Remedy: remedy,
			}, explains)
		}
	}
}

// podTrafficDrop words a drop of forwarded Pod traffic: most often a
// FORWARD chain's policy (Docker sets it to drop) that nothing before it
// accepts the Pod network in.
func podTrafficDrop(s *state, n string, ds []hostfacts.FirewallDrop) (title, summary string, r *model.Remedy) {
	d := ds[0]
	cidr := s.ev.Network.PodCIDR
	if cidr == "" {
		cidr = "<Pod CIDR>"
	}
	if d.Policy {
		title = fmt.Sprintf("%s's %s %s chain %s drops Pod traffic by its policy", n, d.Family, d.Table, d.Chain)
		summary = fmt.Sprintf("Pod traffic that %s forwards, to its Pods from other nodes and back, reaches the end of %s %s %s, whose policy is drop: nothing before it accepts the Pod network. Docker sets FORWARD's policy to drop this way.", n, d.Family, d.Table, d.Chain)
	} else {
		title = fmt.Sprintf("A firewall rule on %s drops Pod traffic between nodes", n)
		summary = fmt.Sprintf("%s drops Pod traffic it forwards, to its Pods from other nodes and back: %s.", n, d.Rule)
	}
	r = &model.Remedy{
		Summary: fmt.Sprintf("Accept the Pod network (%s) in that chain before its policy, on %s: on a Docker host in DOCKER-USER, which Docker leaves for this; or give the chain an accept policy if nothing relies on it.", cidr, n),
		Commands: []string{
			fmt.Sprintf("iptables -I DOCKER-USER -s %s -j ACCEPT && iptables -I DOCKER-USER -d %s -j ACCEPT   # on %s, a Docker host", cidr, cidr, n),
			fmt.Sprintf("nft insert rule %s %s %s ip saddr %s accept; nft insert rule %s %s %s ip daddr %s accept   # on %s, any nftables host", d.Family, d.Table, d.Chain, cidr, d.Family, d.Table, d.Chain, cidr, n),
		},
	}
	if strings.Contains(d.Family, "iptables-legacy") {
		// The legacy tables are not nftables': neither nft nor the
		// iptables-nft that Debian's iptables runs can change them.
		r.Commands = []string{fmt.Sprintf("iptables-legacy -I %s 1 -s %s -j ACCEPT && iptables-legacy -I %s 1 -d %s -j ACCEPT   # on %s (DOCKER-USER instead of %s on a Docker host)", d.Chain, cidr, d.Chain, cidr, n, d.Chain)}
	}
	return title, summary, r
}

// encapBlocked: VXLAN (UDP 4789) is dropped at a node that otherwise answers.
func encapBlocked(s *state) {
	if s.ev.Network.Backend != "vxlan" && s.ev.Network.Backend != "" {
		return
	}
	for _, n := range s.ev.Nodes {
		ds := s.drops(n, hostfacts.NeedVXLAN)
		failing := s.failingPodPairsOf(n)
		if sure, _ := certain(ds, hostfacts.NeedVXLAN); len(ds) == 0 || (len(sure) == 0 && len(failing) == 0) {
			continue
		}
		nodePairs := s.pairs(model.LayerNode, func(p model.Pair) bool { return (p.From == n || p.To == n) && p.Known() })
		nodeOK := len(nodePairs) > 0 && !slices.ContainsFunc(nodePairs, func(p model.Pair) bool { return !p.Reachable })
		ev := describe(n, ds, hostfacts.NeedVXLAN)
		if len(failing) > 0 {
			ev = append(ev, failingLine(failing, n))
		}
		if nodeOK {
			ev = append(ev, n+" answers on the node network: only the encapsulation is blocked")
		}
		others := "other nodes"
		if peers, all := peersIn(failing, n), len(s.ev.Nodes)-1; len(peers) > 0 && len(peers) < all {
			others = nodesOrAll(peers)
		}
		s.add(model.Finding{
			ID: EncapBlocked, Severity: Error, Title: "VXLAN (UDP 4789) is blocked at " + n,
			Summary: fmt.Sprintf("A firewall rule on %s drops VXLAN, so Pods on %s cannot reach Pods on %s or be reached from them, while the nodes themselves talk.", n, n, others),
			Nodes:   []string{n}, Pairs: refs(failing), Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Allow UDP 4789 between the cluster's nodes on %s (host firewall and any cloud security group).", n),
				Commands: []string{"nft list ruleset   # on " + n + ": remove or narrow the rule above"}},
		}, s.podPairsOf(n))
	}
}

// addrNode maps underlay addresses to node names, from the node-layer facts.
func (s *state) addrNode() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for n, f := range s.ev.Facts {
		if f == nil {
			continue
		}
		for _, l := range f.Links {
			for _, a := range l.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
					out[p.Addr()] = n
				}
			}
		}
	}
	return out
}

// bgpDownPeers are the nodes whose BGP session with n is not Established,
// as n's BIRD or theirs reports it; known is false when no BIRD facts say.
func (s *state) bgpDownPeers(n string) (down []string, known bool) {
	byAddr := s.addrNode()
	add := func(m string) {
		if m != "" && m != n && !slices.Contains(down, m) {
			down = append(down, m)
		}
	}
	for _, m := range s.ev.Nodes {
		f := s.ev.Facts[m]
		if f == nil || f.Calico.BIRD.Error != "" {
			continue
		}
		for _, p := range f.Calico.BIRD.Protocols {
			if p.Proto != "BGP" {
				continue
			}
			for addr, peer := range byAddr {
				if calico.MeshPeerName(addr) != p.Name {
					continue
				}
				switch {
				case m == n:
					known = true
					if !p.Established() {
						add(peer)
					}
				case peer == n:
					known = true
					if !p.Established() {
						add(m)
					}
				}
			}
		}
	}
	sort.Strings(down)
	return down, known
}

// bgpSessionDown: a node's BIRD is not running or its mesh sessions are
// not Established; the routes and Pod pairs that depend on it are symptoms.
func bgpSessionDown(s *state) {
	if s.ev.Network.Backend != "bgp" {
		return
	}
	byAddr := s.addrNode()
	downFrom := map[string][]string{}   // node → peers that report their session to it down
	usedAddr := map[string]netip.Addr{} // node → the address its peers' sessions name
	birdDead := map[string]string{}
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil {
			continue
		}
		if f.Calico.BIRD.Error != "" {
			birdDead[n] = f.Calico.BIRD.Error
			continue
		}
		for _, p := range f.Calico.BIRD.Protocols {
			if p.Proto != "BGP" || p.Established() {
				continue
			}
			for addr, peer := range byAddr {
				if calico.MeshPeerName(addr) == p.Name {
					downFrom[peer] = append(downFrom[peer], fmt.Sprintf("%s: %s %s %s", n, p.Name, p.State, p.Info))
					usedAddr[peer] = addr
				}
			}
		}
	}
	for _, n := range s.ev.Nodes {
		reports := downFrom[n]
		_, dead := birdDead[n]
		others := 0
		for _, m := range s.ev.Nodes {
			if m != n && s.ev.Facts[m] != nil && birdDead[m] == "" {
				others++
			}
		}
		if !dead && (others == 0 || len(reports) < others) {
			continue
		}
		var ev []string
		if dead {
			ev = append(ev, fmt.Sprintf("%s: BIRD control socket unavailable: %s", n, birdDead[n]))
		}
		sort.Strings(reports)
		ev = append(ev, reports...)
		failing := s.failingPodPairsOf(n)
		if len(failing) > 0 {
			ev = append(ev, failingLine(failing, n)+": their routes went with the sessions")
		}
		summary := fmt.Sprintf("Every other node's BGP session to %s is down, so the routes to %s's Pod block are withdrawn.", n, n)
		if dead {
			summary = fmt.Sprintf("BIRD is not running on %s (calico-node's BGP daemon), so no node learns the route to its Pods.", n)
		}
		remedy := &model.Remedy{Summary: fmt.Sprintf("Check calico-node on %s (its bird container/process and logs) and that TCP 179 passes between the nodes.", n),
			Commands: []string{"kubectl -n kube-system logs -l k8s-app=calico-node --tail=50   # the Pod on " + n, "calicoctl node status   # on " + n}}
		// The sessions' names say which address the peers use for n: when
		// it is not n's node address, Calico's address auto-detection
		// picked another interface, and that is what to fix.
		if used, ok := usedAddr[n]; ok && !dead && s.ev.Addresses[n] != "" && used.String() != s.ev.Addresses[n] {
			iface := linkHolding(s.ev.Facts[n], used.String())
			on := ""
			if iface != "" {
				on = " (its " + iface + ")"
			}
			ev = append(ev, fmt.Sprintf("the peers' sessions name %s at %s%s, not at its node address %s: calico-node's address auto-detection picked another interface for BGP", n, used, on, s.ev.Addresses[n]))
			summary += fmt.Sprintf(" The peers try %s at %s%s, which is not its node address %s.", n, used, on, s.ev.Addresses[n])
			remedy = &model.Remedy{
				Summary: fmt.Sprintf("Make calico-node pick %s's node address: IP_AUTODETECTION_METHOD on calico-node (e.g. kubernetes-internal-ip, interface=<underlay interface> or cidr=<node network>); operator: the Installation's spec.calicoNetwork.nodeAddressAutodetectionV4; Kubespray: calico_ip_auto_method. Then restart calico-node on %s.", n, n),
				Commands: []string{
					"kubectl -n kube-system set env daemonset/calico-node IP_AUTODETECTION_METHOD=kubernetes-internal-ip",
					"kubectl get node " + n + " -o jsonpath='{.metadata.annotations.projectcalico\\.org/IPv4Address}'",
				},
			}
		}
		s.add(model.Finding{
			ID: BGPSessionDown, Severity: Error, Title: "BGP sessions with " + n + " are down",
			Summary: summary, Nodes: []string{n}, Pairs: refs(failing), Evidence: ev, Remedy: remedy,
		}, s.podPairsOf(n))
	}
}

// ipForwardDisabled: a node with net.ipv4.ip_forward=0 forwards nothing to or from its Pods.
func ipForwardDisabled(s *state) {
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil || f.Sysctls.IPv4Forward == nil || *f.Sysctls.IPv4Forward != 0 {
			continue
		}
		failing := s.failingPodPairsOf(n)
		ev := []string{n + ": net.ipv4.ip_forward = 0"}
		if len(failing) > 0 {
			ev = append(ev, failingLine(failing, n))
		}
		s.add(model.Finding{
			ID: IPForwardDisabled, Severity: Error, Title: "IP forwarding is off on " + n,
			Summary: n + " does not forward packets, so nothing crosses between its Pods and the rest of the cluster.",
			Nodes:   []string{n}, Pairs: refs(failing), Evidence: ev,
			Remedy: &model.Remedy{Summary: "Turn forwarding on, and keep it on across reboots (Kubespray sets it; something reset it).",
				Commands: []string{"sysctl -w net.ipv4.ip_forward=1   # on " + n, "echo net.ipv4.ip_forward=1 > /etc/sysctl.d/99-ip-forward.conf"}},
		}, s.podPairsOf(n))
	}
}

// blocks are the Pod blocks a node owns: Calico blackholes each locally.
func blocks(f *hostfacts.Facts) []string {
	var out []string
	for _, r := range f.Routes {
		if r.Type == "blackhole" && r.Family == "ipv4" {
			out = append(out, r.Dst)
		}
	}
	return out
}

// routeMissing: a node has no route to another node's Pod block.
func routeMissing(s *state) {
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil {
			continue
		}
		have := map[string]bool{}
		for _, r := range f.Routes {
			if r.Type != "blackhole" {
				have[r.Dst] = true
			}
		}
		var missing []string
		var owners []string
		for _, m := range s.ev.Nodes {
			if m == n || s.ev.Facts[m] == nil {
				continue
			}
			for _, b := range blocks(s.ev.Facts[m]) {
				if !have[b] {
					missing = append(missing, fmt.Sprintf("%s has no route to %s (%s's block)", n, b, m))
					owners = append(owners, m)
				}
			}
		}
		if len(missing) == 0 || s.explainedBy(n, BGPSessionDown) {
			continue // a node whose own BGP is down has lost every learned route: a symptom
		}
		// A firewall that stops BGP at either end explains the routes that
		// session would have carried.
		down, _ := s.bgpDownPeers(n)
		bgpBlocked := func(m string) bool {
			return s.ev.Network.Backend == "bgp" && slices.Contains(down, m) &&
				((s.explainedBy(m, FirewallDrop) && len(s.drops(m, hostfacts.NeedBGP)) > 0) || (s.explainedBy(n, FirewallDrop) && len(s.drops(n, hostfacts.NeedBGP)) > 0))
		}
		// Owners whose BGP session is down explain these: fold them.
		var unexplained []string
		var pairs []model.Pair
		for i, m := range owners {
			if s.explainedBy(m, BGPSessionDown) || bgpBlocked(m) {
				continue
			}
			unexplained = append(unexplained, missing[i])
			// Both directions: without the route, n's replies cannot return either.
			pairs = append(pairs, s.pairs(model.LayerPod, func(p model.Pair) bool {
				return (p.From == n && p.To == m) || (p.From == m && p.To == n)
			})...)
		}
		if len(unexplained) == 0 {
			continue
		}
		remedy := "Felix programs these routes for VXLAN (check calico-node on " + n + "); BIRD for BGP (check its sessions)."
		if s.ev.Network.Backend == "none" {
			remedy = "With no encapsulation and no BGP, the underlay must route every node's Pod block to that node: add the routes there, or enable VXLAN or BGP in Calico."
		}
		s.add(model.Finding{
			ID: RouteMissing, Severity: Error, Title: "Routes to other nodes' Pods are missing on " + n,
			Summary: fmt.Sprintf("%s cannot send to some Pod blocks: %s missing.", n, count(len(unexplained), "route")),
			Nodes:   []string{n}, Pairs: refs(pairs), Evidence: unexplained,
			Remedy: &model.Remedy{Summary: remedy, Commands: []string{"ip route   # on " + n}},
		}, pairs)
	}
}

// lossy: more of the pair's echoes were lost than noise explains.
func lossy(p model.Pair) bool { return p.LossPct > LossWarnPct }

// count says "1 route", "2 routes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// namedByError reports whether an error finding so far names node.
func (s *state) namedByError(node string) bool {
	return slices.ContainsFunc(s.findings, func(f model.Finding) bool { return f.Severity == Error && slices.Contains(f.Nodes, node) })
}

func (s *state) explainedBy(node, id string) bool {
	for _, f := range s.findings {
		if f.ID == id && slices.Contains(f.Nodes, node) {
			return true
		}
	}
	return false
}

// vtep is a node's VXLAN endpoint, from its facts.
type vtep struct {
	node      string
	port, vni int
	mac, addr string // the device's MAC and its IPv4 address (the VTEP IP)
	vx        *hostfacts.VXLAN
}

func vtepOf(n string, f *hostfacts.Facts) *vtep {
	for _, l := range f.Links {
		if l.Name != "vxlan.calico" || l.VXLAN == nil {
			continue
		}
		v := &vtep{node: n, port: l.VXLAN.Port, vni: l.VXLAN.VNI, mac: strings.ToLower(l.MAC), vx: l.VXLAN}
		for _, a := range l.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
				v.addr = p.Addr().String()
			}
		}
		return v
	}
	return nil
}

// ownsAddress reports whether a is one of f's addresses.
func ownsAddress(f *hostfacts.Facts, a string) bool {
	for _, l := range f.Links {
		for _, c := range l.Addresses {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().String() == a {
				return true
			}
		}
	}
	return false
}

// encapMismatch: VXLAN settings that must agree between nodes do not. A
// node on another UDP port or VNI drops what the others send it, and they
// drop what it sends; an FDB entry or neighbour another node holds for a
// VTEP that is not that VTEP's sends its frames nowhere.
func encapMismatch(s *state) {
	if s.ev.Network.Backend != "vxlan" && s.ev.Network.Backend != "" {
		return
	}
	var vteps []*vtep
	for _, n := range s.ev.Nodes {
		if f := s.ev.Facts[n]; f != nil {
			if v := vtepOf(n, f); v != nil {
				vteps = append(vteps, v)
			}
		}
	}
	if len(vteps) < 2 {
		return
	}
	bad := map[string][]string{} // node → what is wrong with it
	odd := func(setting string, val func(*vtep) int) {
		count := map[int]int{}
		for _, v := range vteps {
			count[val(v)]++
		}
		if len(count) < 2 {
			return
		}
		mode, best := 0, 0
		for x, c := range count {
			if c > best || (c == best && x < mode) {
				mode, best = x, c
			}
		}
		for _, v := range vteps {
			if x := val(v); x != mode && 2*best > len(vteps) {
				bad[v.node] = append(bad[v.node], fmt.Sprintf("%s: vxlan.calico uses %s %d, the other nodes %d", v.node, setting, x, mode))
			} else if 2*best <= len(vteps) {
				bad[v.node] = append(bad[v.node], fmt.Sprintf("%s: vxlan.calico uses %s %d; the nodes do not agree on one", v.node, setting, x))
			}
		}
	}
	odd("UDP port", func(v *vtep) int { return v.port })
	odd("VNI", func(v *vtep) int { return v.vni })
	// What every other node holds for each VTEP: its own entries, Felix's
	// to keep. A wrong one is the holder's fault, not the VTEP's.
	stale := map[string][]string{}   // holder → its wrong entries
	victims := map[string][]string{} // holder → the nodes whose VTEPs it gets wrong
	note := func(holder, victim, line string) {
		stale[holder] = append(stale[holder], line)
		if !slices.Contains(victims[holder], victim) {
			victims[holder] = append(victims[holder], victim)
		}
	}
	for _, v := range vteps {
		for _, m := range vteps {
			if m == v || v.mac == "" {
				continue
			}
			fdb := ""
			for _, e := range m.vx.FDB {
				if strings.EqualFold(e.MAC, v.mac) {
					fdb = e.Dst
				}
			}
			switch {
			case fdb == "":
				note(m.node, v.node, fmt.Sprintf("%s has no FDB entry for %s's VTEP MAC %s: it cannot address VXLAN frames to %s", m.node, v.node, v.mac, v.node))
			case !ownsAddress(s.ev.Facts[v.node], fdb):
				note(m.node, v.node, fmt.Sprintf("%s sends frames for %s's VTEP MAC %s to %s, which is not an address of %s", m.node, v.node, v.mac, fdb, v.node))
			}
			if v.addr == "" {
				continue
			}
			for _, nb := range m.vx.Neighbors {
				if nb.IP == v.addr && !strings.EqualFold(nb.MAC, v.mac) {
					note(m.node, v.node, fmt.Sprintf("%s resolves %s's VTEP %s to MAC %s; %s's vxlan.calico has MAC %s", m.node, v.node, v.addr, nb.MAC, v.node, v.mac))
				}
			}
		}
	}
	restart := func(n string) string {
		return "kubectl -n kube-system delete pod -l k8s-app=calico-node --field-selector spec.nodeName=" + n
	}
	for _, n := range s.ev.Nodes {
		if ev := bad[n]; len(ev) > 0 {
			failing := s.failingPodPairsOf(n)
			if len(failing) > 0 {
				ev = append(ev, failingLine(failing, n))
			}
			s.add(model.Finding{
				ID: EncapMismatch, Severity: Error, Title: "VXLAN settings of " + n + " do not match the other nodes'",
				Summary: fmt.Sprintf("%s's VXLAN endpoint is not what the other nodes send to: its frames and theirs are dropped on arrival, so Pods on %s cannot reach Pods on other nodes, while the nodes themselves talk.", n, n),
				Nodes:   []string{n}, Pairs: refs(failing), Evidence: capLines(ev, maxEvidence),
				Remedy: &model.Remedy{Summary: fmt.Sprintf("Give %s the cluster's VXLAN port and VNI (FelixConfiguration vxlanPort and vxlanVNI, the same for every node; Kubespray calico_vxlan_port and calico_vxlan_vni) and restart calico-node there so Felix programs the device and the other nodes' FDB entries again.", n),
					Commands: []string{"ip -d link show vxlan.calico; bridge fdb show dev vxlan.calico; ip neigh show dev vxlan.calico   # on " + n + " and one other node",
						"kubectl get felixconfiguration default -o yaml", restart(n)}},
			}, s.podPairsOf(n))
		}
		if ev := stale[n]; len(ev) > 0 {
			pairs := s.pairs(model.LayerPod, func(p model.Pair) bool {
				return (p.From == n && slices.Contains(victims[n], p.To)) || (p.To == n && slices.Contains(victims[n], p.From))
			})
			failing := slices.DeleteFunc(slices.Clone(pairs), func(p model.Pair) bool { return !cut(p) && !p.Stalled })
			if len(failing) > 0 {
				ev = append(ev, failingLine(failing, n))
			}
			s.add(model.Finding{
				ID: EncapMismatch, Severity: Error, Title: fmt.Sprintf("%s's VXLAN entries for %s are wrong", n, nodesOrAll(victims[n])),
				Summary: fmt.Sprintf("%s sends VXLAN for %s where that node is not, or to a MAC it does not have: Felix programs these entries from each node's address and VTEP, and on %s they are stale or were changed by hand, so Pods on %s cannot reach Pods there.", n, nodesOrAll(victims[n]), n, n),
				Nodes:   []string{n}, Pairs: refs(failing), Evidence: capLines(ev, maxEvidence),
				Remedy: &model.Remedy{Summary: fmt.Sprintf("Restart calico-node on %s so Felix programs its FDB and neighbour entries again from the nodes' current addresses; if they come back wrong, the other nodes' Calico addresses (projectcalico.org/IPv4Address, IPv4VXLANTunnelAddr, VXLANTunnelMACAddr) are what is stale.", n),
					Commands: []string{"bridge fdb show dev vxlan.calico; ip neigh show dev vxlan.calico   # on " + n, restart(n)}},
			}, pairs)
		}
	}
}
