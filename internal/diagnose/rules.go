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
	LossWarnPct        = 10  // % of echoes lost on a pair before it is packet loss (10 echoes: 1 lost is noise)
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
		nodeNotReady, nodeUnreachable, firewallDrop, encapBlocked, bgpSessionDown, ipForwardDisabled,
		routeMissing, mtuInconsistent, mtuBlackhole, podNetworkPartition, rpFilterStrict,
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
		s.add(model.Finding{
			ID: NodeUnreachable, Severity: Error, Title: "Node " + n + " is unreachable",
			Summary:  fmt.Sprintf("Nothing of %s answers: not its agents to the controller, not the node to its peers' probes on any layer. It is down, cut off, or a firewall drops everything arriving there. Its results are unknown, not failures.", n),
			Nodes:    []string{n},
			Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Check that %s is up and reachable on its node address (a firewall in front of it or on it), then run again.", n),
				Commands: []string{"kubectl get node " + n + " -o wide", "ping -c 3 <" + n + " address>"}},
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
			addTo(fmt.Sprintf("%s:%s:to", p.Layer, p.To), fmt.Sprintf("%s layer: no agent answers on %s: its host replied ICMP port unreachable to the probes, so the node is up and the agent is not running", p.Layer, p.To), p)
			continue
		}
		nodes[p.From] = true
		addTo(fmt.Sprintf("%s:%s:from", p.Layer, p.From), fmt.Sprintf("%s layer: %s", p.Layer, p.Unknown), p)
	}
	for _, k := range keys {
		g := groups[k]
		ev = append(ev, fmt.Sprintf("%s (%d pair%s)", g.reason, len(g.pairs), map[bool]string{true: "", false: "s"}[len(g.pairs) == 1]))
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
	title := fmt.Sprintf("Not measured: %d pair%s", len(unknown), map[bool]string{true: "", false: "s"}[len(unknown) == 1])
	if len(unknown) == 0 {
		title = "Host facts not read"
	}
	s.add(model.Finding{
		ID: ResultsUnknown, Severity: Warning, Title: title + " (" + strings.Join(names, ", ") + ")",
		Summary:  "podpath could not measure these: the controller could not ask an agent or lost its answer, or no agent listens where one should. They are unknown, neither working nor broken, and no finding rests on them.",
		Nodes:    names,
		Pairs:    refs(unknown),
		Evidence: capLines(ev, 12),
		Remedy: &model.Remedy{Summary: "Check that podpath's agents run on these nodes and that the controller reaches their port; then run again.",
			Commands: []string{"podpath doctor ...   # again, once the agents answer"}},
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
		if slices.Contains(d.Needs, need) {
			out = append(out, d)
		}
	}
	return out
}

func describe(n string, ds []hostfacts.FirewallDrop) []string {
	var out []string
	for _, d := range ds {
		cond := ""
		if d.Conditional {
			cond = " (with conditions podpath did not evaluate)"
		}
		out = append(out, fmt.Sprintf("%s: nftables %s %s chain %s: %s%s", n, d.Family, d.Table, d.Chain, d.Rule, cond))
	}
	return out
}

// firewallDrop: a rule on a node drops what the CNI's control plane or
// encapsulation needs (VXLAN has its own, more specific finding).
func firewallDrop(s *state) {
	var needs []string
	switch s.ev.Network.Backend {
	case "bgp":
		needs = []string{hostfacts.NeedBGP}
	case "ipip":
		needs = []string{hostfacts.NeedBGP, hostfacts.NeedIPIP}
	case "wireguard":
		needs = []string{hostfacts.NeedWireGuard}
	}
	for _, n := range s.ev.Nodes {
		for _, need := range needs {
			ds := s.drops(n, need)
			if len(ds) == 0 {
				continue
			}
			what := map[string]string{hostfacts.NeedBGP: "BGP (TCP 179)", hostfacts.NeedIPIP: "IPIP (IP protocol 4)", hostfacts.NeedWireGuard: "WireGuard (UDP 51820/51821)"}[need]
			failing := s.failingPodPairsOf(n)
			ev := describe(n, ds)
			if len(failing) > 0 {
				ev = append(ev, fmt.Sprintf("%d Pod-network pairs with %s fail", len(failing), n))
			}
			s.add(model.Finding{
				ID: FirewallDrop, Severity: Error, Title: fmt.Sprintf("A firewall rule on %s drops %s", n, what),
				Summary:  fmt.Sprintf("%s drops %s traffic that Calico's %s backend needs between nodes.", n, what, s.ev.Network.Backend),
				Nodes:    []string{n},
				Pairs:    refs(failing),
				Evidence: ev,
				Remedy: &model.Remedy{Summary: fmt.Sprintf("Allow %s between the cluster's nodes on %s (host firewall, and any cloud security group in front of it).", what, n),
					Commands: []string{"nft list ruleset   # on " + n + ": find the rule above and allow the port from the other nodes"}},
			}, s.podPairsOf(n))
		}
	}
}

// encapBlocked: VXLAN (UDP 4789) is dropped at a node that otherwise answers.
func encapBlocked(s *state) {
	if s.ev.Network.Backend != "vxlan" && s.ev.Network.Backend != "" {
		return
	}
	for _, n := range s.ev.Nodes {
		ds := s.drops(n, hostfacts.NeedVXLAN)
		if len(ds) == 0 {
			continue
		}
		failing := s.failingPodPairsOf(n)
		nodeOK := len(s.pairs(model.LayerNode, func(p model.Pair) bool { return (p.From == n || p.To == n) && p.Reachable })) > 0
		ev := describe(n, ds)
		if len(failing) > 0 {
			ev = append(ev, fmt.Sprintf("%d Pod-network pairs with %s fail", len(failing), n))
		}
		if nodeOK {
			ev = append(ev, n+" answers on the node network: only the encapsulation is blocked")
		}
		s.add(model.Finding{
			ID: EncapBlocked, Severity: Error, Title: "VXLAN (UDP 4789) is blocked at " + n,
			Summary: fmt.Sprintf("A firewall rule on %s drops VXLAN, so Pods on %s cannot reach Pods on other nodes or be reached from them, while the nodes themselves talk.", n, n),
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
				if p, err := netip.ParsePrefix(a); err == nil && !p.Addr().IsLoopback() && p.Bits() < 32 {
					out[p.Addr()] = n
				}
			}
		}
	}
	return out
}

// bgpSessionDown: a node's BIRD is not running or its mesh sessions are
// not Established; the routes and Pod pairs that depend on it are symptoms.
func bgpSessionDown(s *state) {
	if s.ev.Network.Backend != "bgp" {
		return
	}
	byAddr := s.addrNode()
	downFrom := map[string][]string{} // node → peers that report their session to it down
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
			ev = append(ev, fmt.Sprintf("%d Pod-network pairs with %s fail: their routes went with the sessions", len(failing), n))
		}
		summary := fmt.Sprintf("Every other node's BGP session to %s is down, so the routes to %s's Pod block are withdrawn.", n, n)
		if dead {
			summary = fmt.Sprintf("BIRD is not running on %s (calico-node's BGP daemon), so no node learns the route to its Pods.", n)
		}
		s.add(model.Finding{
			ID: BGPSessionDown, Severity: Error, Title: "BGP sessions with " + n + " are down",
			Summary: summary, Nodes: []string{n}, Pairs: refs(failing), Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Check calico-node on %s (its bird container/process and logs) and that TCP 179 passes between the nodes.", n),
				Commands: []string{"kubectl -n kube-system logs -l k8s-app=calico-node --tail=50   # the Pod on " + n, "calicoctl node status   # on " + n}},
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
			ev = append(ev, fmt.Sprintf("%d Pod-network pairs with %s fail", len(failing), n))
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
		// Owners whose BGP session is down explain these: fold them.
		var unexplained []string
		var pairs []model.Pair
		for i, m := range owners {
			if s.explainedBy(m, BGPSessionDown) {
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
			Summary: fmt.Sprintf("%s cannot send to some Pod blocks: %d route(s) missing.", n, len(unexplained)),
			Nodes:   []string{n}, Pairs: refs(pairs), Evidence: unexplained,
			Remedy: &model.Remedy{Summary: remedy, Commands: []string{"ip route   # on " + n}},
		}, pairs)
	}
}

func (s *state) explainedBy(node, id string) bool {
	for _, f := range s.findings {
		if f.ID == id && slices.Contains(f.Nodes, node) {
			return true
		}
	}
	return false
}
