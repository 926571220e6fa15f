package diagnose

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"podpath/internal/calico"
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
	// byNode indexes ev.Pairs by layer ("": any) and node at either end,
	// in their order; built on first use (pairsOf).
	byNode map[layerNode][]int32
	// six: the pass is IPv6's (v6), worked out once from the addresses:
	// rules ask it inside loops over node pairs.
	six bool
}

type layerNode struct {
	layer model.Layer
	node  string
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
	for _, p := range s.ev.Pairs.All() {
		if (layer == "" || p.Layer == layer) && pred(p) {
			out = append(out, p)
		}
	}
	return out
}

// pairsOf is pairs(layer, pred) for the pairs with node n at either end
// (layer "": both layers), in the evidence's order. Rules that ask about
// each node in turn read that node's pairs, not the cluster's: at 1,000
// nodes there are a million pairs, and asking each node of all of them
// took the diagnosis minutes.
func (s *state) pairsOf(layer model.Layer, n string, pred func(model.Pair) bool) []model.Pair {
	if s.byNode == nil {
		s.byNode = map[layerNode][]int32{}
		for i, p := range s.ev.Pairs.All() {
			for _, l := range []model.Layer{p.Layer, ""} {
				s.byNode[layerNode{l, p.From}] = append(s.byNode[layerNode{l, p.From}], int32(i))
				if p.To != p.From {
					s.byNode[layerNode{l, p.To}] = append(s.byNode[layerNode{l, p.To}], int32(i))
				}
			}
		}
	}
	var out []model.Pair
	for _, i := range s.byNode[layerNode{layer, n}] {
		if p := s.ev.Pairs.At(int(i)); pred(p) {
			out = append(out, p)
		}
	}
	return out
}

func anyPair(model.Pair) bool { return true }

// Diagnose runs the catalogue over the evidence. Findings come sorted:
// errors first, root causes before the symptoms they explain; a healthy
// cluster gives none above info.
func Diagnose(ev Evidence) []model.Finding {
	s := &state{ev: &ev, explained: map[pairKey]string{}}
	s.six = ev.Family == model.FamilyIPv6 || s.ipv6()
	for _, rule := range Rules {
		rule.run(s)
	}
	sortFindings(s.findings)
	return s.findings
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
		ID: NodeNotReady, Severity: Warning, Title: "Node not ready, not probed: " + joinNames(nodes),
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
		ID: NodeCordoned, Severity: Info, Title: "Node cordoned: " + joinNames(nodes),
		Summary: "These nodes are marked unschedulable: new Pods avoid them. They are Ready and were probed like the others.",
		Nodes:   nodes,
	}, nil)
}

// podPairsOf are the Pod-layer pairs with node n at either end.
func (s *state) podPairsOf(n string) []model.Pair {
	return s.pairsOf(model.LayerPod, n, anyPair)
}

func (s *state) failingPodPairsOf(n string) []model.Pair {
	return s.pairsOf(model.LayerPod, n, func(p model.Pair) bool { return cut(p) || p.Stalled })
}

// addrNode maps underlay addresses to node names, from the node-layer facts.
func (s *state) addrNode() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	// The pass's family only: a dual-stack node's BGP sessions of the
	// other family are the other pass's to judge.
	six := s.v6()
	for n, f := range s.ev.Facts {
		if f == nil {
			continue
		}
		for _, l := range f.Links {
			for _, a := range l.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() && p.Addr().Unmap().Is6() == six {
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
				if calico.MeshPeerName(addr) == p.Name && !s.young(n, p, peer, addr) {
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

// bgpSettle is how long a BGP session may try before it counts as down:
// on a healthy network a mesh session is Established within seconds of
// both BIRDs starting; right after an install, a reboot or calico-node's
// rollout, the sessions are still connecting, and that is no fault.
const bgpSettle = time.Minute

// young: p, n's session to peer at addr, is not Established and one of
// the two BIRDs started less than bgpSettle ago by its own clock: the
// session is still connecting. One that dropped between two BIRDs running
// longer is down (a firewall rule added, a link cut), however recent the
// drop; one that names peer at another address than its node address
// (address auto-detection took another NIC) will never come up.
func (s *state) young(n string, p model.BIRDProtocol, peer string, addr netip.Addr) bool {
	if p.Proto != "BGP" || p.Established() {
		return false
	}
	if a := s.ev.Addresses[peer]; a != "" && a != addr.String() {
		return false
	}
	for _, m := range []string{n, peer} {
		if f := s.ev.Facts[m]; f != nil && f.Calico.BIRD.Error == "" {
			if up, ok := f.Calico.BIRD.Uptime(); ok && up < bgpSettle {
				return true
			}
		}
	}
	return false
}

// bgpSessionStarting: a node whose peers' sessions to it are all not
// Established, some of them still connecting: neither up nor down yet
// (bgpSessionDown's test, with the young sessions counted here); the Pod
// pairs they carry are not judged.
func bgpSessionStarting(s *state) {
	if s.ev.Network.Backend != "bgp" {
		return
	}
	byAddr := s.addrNode()
	young := map[string][]string{} // node → peers' sessions to it still connecting
	notUp := map[string]int{}      // node → peers whose session to it is not Established
	others := 0                    // nodes whose BIRD answered
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil || f.Calico.BIRD.Error != "" {
			continue
		}
		others++
		for _, p := range f.Calico.BIRD.Protocols {
			if p.Proto != "BGP" || p.Established() {
				continue
			}
			for addr, peer := range byAddr {
				if calico.MeshPeerName(addr) != p.Name {
					continue
				}
				notUp[peer]++
				if s.young(n, p, peer, addr) {
					young[peer] = append(young[peer], fmt.Sprintf("%s: %s %s %s since %s (%s's BIRD up %s, %s's %s)", n, p.Name, p.State, p.Info, p.Since, n, uptime(f), peer, uptime(s.ev.Facts[peer])))
				}
			}
		}
	}
	// One finding for every node still connecting: right after an install
	// that is all of them, and a warning per node would bury the report.
	var nodes, ev []string
	var failing []model.Pair
	sessions := 0
	for _, n := range s.ev.Nodes {
		peers := others
		if f := s.ev.Facts[n]; f != nil && f.Calico.BIRD.Error == "" {
			peers-- // not its own
		}
		if len(young[n]) == 0 || notUp[n] < peers || s.explainedBy(n, BGPSessionDown) {
			continue
		}
		nodes = append(nodes, n)
		sessions += len(young[n])
		mine := slices.Sorted(slices.Values(young[n]))
		if f := s.failingPodPairsOf(n); len(f) > 0 {
			failing = append(failing, f...)
			mine = append(mine, failingLine(f, n)+": not judged while their routes may still be coming")
		}
		ev = append(ev, mine...)
	}
	if len(nodes) == 0 {
		return
	}
	s.add(model.Finding{
		ID: BGPSessionStarting, Severity: Warning, Title: "BGP sessions with " + joinNames(nodes) + " are still connecting",
		Summary: fmt.Sprintf("No other node's BGP session to %s is Established, and for %s one of the two BIRDs started less than %s ago: right after an install, a reboot or a calico-node rollout they are still connecting. Neither the sessions nor the Pod pairs through them are judged.", joinNames(nodes), count(sessions, "session"), bgpSettle),
		Nodes:   nodes, Pairs: refs(failing), Evidence: capLines(ev, maxEvidence),
		Remedy: &model.Remedy{Summary: "Run podpath again in a minute; if the sessions are still not Established then, it reports them down with what to check.",
			Commands: []string{"calicoctl node status   # on " + nodesOrAll(nodes)}},
	}, failing)
}

// uptime says how long f's BIRD has run, or that it did not say.
func uptime(f *model.Facts) string {
	if f != nil {
		if up, ok := f.Calico.BIRD.Uptime(); ok {
			return up.Round(time.Second).String()
		}
	}
	return "unknown"
}

// ipForwardDisabled: a node with net.ipv4.ip_forward=0 forwards nothing to or from its Pods.
func ipForwardDisabled(s *state) {
	key, read := "net.ipv4.ip_forward", func(f *model.Facts) *int { return f.Sysctls.IPv4Forward }
	if s.v6() {
		key, read = "net.ipv6.conf.all.forwarding", func(f *model.Facts) *int { return f.Sysctls.IPv6Forwarding }
	}
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil || read(f) == nil || *read(f) != 0 {
			continue
		}
		failing := s.failingPodPairsOf(n)
		ev := []string{n + ": " + key + " = 0"}
		if len(failing) > 0 {
			ev = append(ev, failingLine(failing, n))
		}
		s.add(model.Finding{
			ID: IPForwardDisabled, Severity: Error, Title: "IP forwarding is off on " + n,
			Summary: n + " does not forward packets, so nothing crosses between its Pods and the rest of the cluster.",
			Nodes:   []string{n}, Pairs: refs(failing), Evidence: ev,
			Remedy: &model.Remedy{Summary: "Turn forwarding on, and keep it on across reboots (Kubespray sets it; something reset it).",
				Commands: []string{"sysctl -w " + key + "=1   # on " + n, "echo " + key + "=1 > /etc/sysctl.d/99-ip-forward.conf"}},
		}, s.podPairsOf(n))
	}
}

// hijacked is a route of f more specific than block that covers one of
// its addresses: traffic to those Pods follows it instead of the block's.
func hijacked(f *model.Facts, block string) (model.Route, bool) {
	b, err := netip.ParsePrefix(block)
	if err != nil {
		return model.Route{}, false
	}
	for _, r := range f.Routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err == nil && r.Type == "unicast" && p.Bits() > b.Bits() && b.Contains(p.Addr()) && !strings.HasPrefix(r.Dev, "cali") {
			return r, true
		}
	}
	return model.Route{}, false
}

// blocks are the Pod blocks of family ("ipv4", "ipv6") a node owns:
// Calico blackholes each locally.
func blocks(f *model.Facts, family string) []string {
	var out []string
	for _, r := range f.Routes {
		if r.Type == "blackhole" && r.Family == family {
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
			for _, b := range blocks(s.ev.Facts[m], s.routeFamily()) {
				if !have[b] {
					missing = append(missing, fmt.Sprintf("%s has no route to %s (%s's block)", n, b, m))
					owners = append(owners, m)
					continue
				}
				// A more specific route takes part of the block elsewhere.
				if r, ok := hijacked(f, b); ok {
					via := ""
					if r.Gw != "" {
						via = " via " + r.Gw
					}
					missing = append(missing, fmt.Sprintf("%s sends part of %s (%s's block) by %s%s dev %s, a more specific route than its route to the block", n, b, m, r.Dst, via, r.Dev))
					owners = append(owners, m)
				}
			}
		}
		if len(missing) == 0 || s.explainedBy(n, BGPSessionDown) || s.explainedBy(n, BGPSessionStarting) {
			continue // a node whose own BGP is down has lost every learned route: a symptom
		}
		// A firewall that stops BGP at either end explains the routes that
		// session would have carried.
		down, _ := s.bgpDownPeers(n)
		bgpBlocked := func(m string) bool {
			return s.ev.Network.Backend == "bgp" && slices.Contains(down, m) &&
				((s.explainedBy(m, FirewallDrop) && len(s.drops(m, model.NeedBGP)) > 0) || (s.explainedBy(n, FirewallDrop) && len(s.drops(n, model.NeedBGP)) > 0))
		}
		// Owners whose BGP session is down explain these: fold them.
		var unexplained, silentOwners []string
		var pairs []model.Pair
		hijack := false
		_, sessionsKnown := s.bgpDownPeers(n)
		for i, m := range owners {
			if s.explainedBy(m, BGPSessionDown) || s.explainedBy(m, BGPSessionStarting) || bgpBlocked(m) {
				continue
			}
			unexplained = append(unexplained, missing[i])
			hijack = hijack || strings.Contains(missing[i], "more specific route")
			if sessionsKnown && !slices.Contains(down, m) && !slices.Contains(silentOwners, m) && !strings.Contains(missing[i], "more specific route") {
				silentOwners = append(silentOwners, m) // its session with n is up, and still no route
			}
			// Both directions: without the route, n's replies cannot return either.
			pairs = append(pairs, s.pairs(model.LayerPod, func(p model.Pair) bool {
				return (p.From == n && p.To == m) || (p.From == m && p.To == n)
			})...)
		}
		if len(unexplained) == 0 {
			continue
		}
		remedy := "Felix programs these routes for VXLAN (check calico-node on " + n + "); BIRD for BGP (check its sessions)."
		switch {
		case s.ev.Network.Backend == "none":
			remedy = "With no encapsulation and no BGP, the underlay must route every node's Pod block to that node: add the routes there, or enable VXLAN or BGP in Calico."
		case s.ev.Network.Backend == "vxlan":
			remedy = "Felix programs these routes: check calico-node on " + n + " (that it runs, and its logs)."
		case s.ev.Network.Backend == "bgp" && len(silentOwners) > 0:
			unexplained = append(unexplained, fmt.Sprintf("%s's BGP sessions with %s are Established: %s does not announce its block", n, nodesOrAll(silentOwners), nodesOrAll(silentOwners)))
			remedy = fmt.Sprintf("%s announces no route for its block over sessions that are up: check its BIRD's export (calico-node's bird, the node's BlockAffinity) and the IPPool's disableBGPExport.", nodesOrAll(silentOwners))
		}
		if hijack {
			remedy = "Remove the more specific route above on " + n + " (ip route del <it>): it takes that part of the block away from the route Calico programs. " + remedy
		}
		s.add(model.Finding{
			ID: RouteMissing, Severity: Error, Title: "Routes to other nodes' Pods are missing or wrong on " + n,
			Summary: fmt.Sprintf("%s cannot send to some Pod blocks: %s missing.", n, count(len(unexplained), "route")),
			Nodes:   []string{n}, Pairs: refs(pairs), Evidence: unexplained,
			Remedy: &model.Remedy{Summary: remedy, Commands: []string{s.ipCmd() + "route   # on " + n}},
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

// count is how many pairs of layer there are ("": all).
func (s *state) count(layer model.Layer) int {
	n := 0
	for _, p := range s.ev.Pairs.All() {
		if layer == "" || p.Layer == layer {
			n++
		}
	}
	return n
}
