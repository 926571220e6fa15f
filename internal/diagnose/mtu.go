package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"podpath/internal/model"

	"podpath/internal/calico"
)

// overhead is what the backend's encapsulation costs a Pod packet on this
// cluster's underlay: VXLAN and WireGuard take 20 bytes more over IPv6
// (its 40-byte header), judged by the nodes' addresses: IPv6 when every
// known one is.
func (s *state) overhead() int {
	if s.v6() {
		return calico.OverheadIPv6(s.ev.Network.Backend)
	}
	return calico.Overhead(s.ev.Network.Backend)
}

// ipv6 reports whether the pass is IPv6's: every known node address is
// IPv6 (an IPv6-only cluster, or a dual-stack cluster's IPv6 pass).
func (s *state) ipv6() bool {
	v6 := false
	for _, n := range s.ev.Nodes {
		a, err := netip.ParseAddr(s.ev.Addresses[n])
		if err != nil {
			continue
		}
		if a.Is4() || a.Is4In6() {
			return false
		}
		v6 = true
	}
	return v6
}

// underlayLink is the link holding the node's underlay address.
func (s *state) underlayLink(n string) *model.Link {
	f := s.ev.Facts[n]
	if f == nil {
		return nil
	}
	addr := s.ev.Addresses[n]
	for i, l := range f.Links {
		for _, a := range l.Addresses {
			if strings.SplitN(a, "/", 2)[0] == addr {
				return &f.Links[i]
			}
		}
	}
	return nil
}

// v6 reports whether the pass's traffic is IPv6: a dual-stack cluster's
// IPv6 pass, or an IPv6-only cluster's one pass. Its rules then read
// IPv6's tunnel device, overhead, forwarding sysctl, routes and BGP
// sessions; IPv4's say nothing about it.
func (s *state) v6() bool { return s.six }

// ipCmd is iproute2's command for the pass's family: "ip -6 " lists
// IPv6 routes and neighbours, which plain "ip " leaves out.
func (s *state) ipCmd() string {
	if s.v6() {
		return "ip -6 "
	}
	return "ip "
}

// routeFamily is the pass's family as host facts name a route's.
func (s *state) routeFamily() string {
	if s.v6() {
		return "ipv6"
	}
	return "ipv4"
}

// tunnelDevice is the VXLAN device the pass's Pod traffic crosses:
// Felix's vxlan-v6.calico for IPv6 (a dual-stack cluster's IPv6 pass, or
// an IPv6-only cluster).
func (s *state) tunnelDevice() string {
	if s.v6() {
		return "vxlan-v6.calico"
	}
	return "vxlan.calico"
}

// podAndTunnelMTU reads a node's cali* MTUs and its tunnel device's
// (vxlan.calico, or vxlan-v6.calico) MTU.
func podAndTunnelMTU(f *model.Facts, device string) (pod []int, tunnel int) {
	seen := map[int]bool{}
	for _, l := range f.Links {
		switch {
		case strings.HasPrefix(l.Name, "cali"):
			if !seen[l.MTU] {
				seen[l.MTU] = true
				pod = append(pod, l.MTU)
			}
		case l.Name == device:
			tunnel = l.MTU
		}
	}
	sort.Ints(pod)
	return pod, tunnel
}

func blackholed(p model.Pair) bool {
	return p.PathMTU > 0 && p.IfaceMTU > p.PathMTU && p.PathMTULimit == "silent"
}

// mtuInconsistent: MTUs that should agree do not — a node's underlay MTU
// against the others', or Pod interfaces above the tunnel they go through.
func mtuInconsistent(s *state) {
	// Underlay MTU: the odd nodes out.
	mtus := map[string]int{}
	count := map[int]int{}
	for _, n := range s.ev.Nodes {
		if l := s.underlayLink(n); l != nil {
			mtus[n] = l.MTU
			count[l.MTU]++
		}
	}
	mode, best := 0, 0
	for m, c := range count {
		if c > best || (c == best && m < mode) {
			mode, best = m, c
		}
	}
	var odd []string
	var ev []string
	for _, n := range s.ev.Nodes {
		if m, ok := mtus[n]; ok && m != mode && 2*best > len(mtus) {
			odd = append(odd, n)
			ev = append(ev, fmt.Sprintf("%s: %s MTU %d, the other nodes %d", n, s.underlayLink(n).Name, m, mode))
		}
	}
	if len(odd) > 0 {
		holes := s.pairs(model.LayerNode, func(p model.Pair) bool { return involves(p, odd) && blackholed(p) })
		sev := Warning
		for _, p := range holes {
			sev = Error
			ev = append(ev, fmt.Sprintf("node %s → %s: only %d of %d bytes cross, larger packets vanish", p.From, p.To, p.PathMTU, p.IfaceMTU))
		}
		s.add(model.Finding{
			ID: MTUInconsistent, Severity: sev, Title: "Node MTUs differ: " + nodesOrAll(odd),
			Summary: fmt.Sprintf("%s use%s a different underlay MTU from the rest of the cluster (%d); traffic between them is limited by the smaller and larger packets are lost.", nodesOrAll(odd), plural(odd), mode),
			Nodes:   odd, Pairs: refs(holes), Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Give every node's underlay interface the same MTU the network carries (%d here), or make the network carry the larger one everywhere.", mode),
				Commands: []string{fmt.Sprintf("ip link set dev <underlay interface> mtu %d   # on %s, and in its network configuration", mode, nodesOrAll(odd))}},
		}, holes)
	}

	// Pod interfaces above the VXLAN tunnel's MTU.
	var over []string
	ev = nil
	tunnelMTU := 0
	podMTUs := map[int][]string{}
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil {
			continue
		}
		pod, tunnel := podAndTunnelMTU(f, s.tunnelDevice())
		for _, m := range pod {
			podMTUs[m] = append(podMTUs[m], n)
			if tunnel > 0 && m > tunnel && !slices.Contains(over, n) {
				over = append(over, n)
				ev = append(ev, fmt.Sprintf("%s: Pod interfaces MTU %d, %s MTU %d", n, m, s.tunnelDevice(), tunnel))
				tunnelMTU = tunnel
			}
		}
	}
	if len(over) > 0 {
		affected := s.pairs(model.LayerPod, func(p model.Pair) bool { return involves(p, over) && p.IfaceMTU > p.PathMTU && p.PathMTU > 0 })
		remedy := s.mtuRemedy(tunnelMTU, "", 0)
		withFacts := 0
		for _, n := range s.ev.Nodes {
			if s.ev.Facts[n] != nil {
				withFacts++
			}
		}
		if 2*len(over) < withFacts {
			// A few nodes' tunnels are smaller than everyone's Pods, and the
			// rest agree: those tunnels are the odd ones, not the Pod MTU.
			field := "vxlanMTU"
			if s.v6() {
				field = "vxlanMTUV6"
			}
			remedy = &model.Remedy{Summary: fmt.Sprintf("Give %s on %s the Pod MTU again, as on the other nodes: Felix sets it from FelixConfiguration %s or that node's calico-node FELIX_%s (a per-node override or FelixConfiguration node.%s); then restart calico-node there.", s.tunnelDevice(), nodesOrAll(over), field, strings.ToUpper(field), over[0]),
				Commands: []string{"ip link show " + s.tunnelDevice() + "   # on " + nodesOrAll(over), "kubectl get felixconfiguration -o yaml | grep -i -e name: -e vxlanMTU"}}
		}
		s.add(model.Finding{
			ID: MTUInconsistent, Severity: Error, Title: "Pod MTU is above the VXLAN tunnel's on " + nodesOrAll(over),
			Summary: fmt.Sprintf("Pods on %s may send packets larger than %s carries (%d): those are dropped or need ICMP to shrink, and any path that filters ICMP turns it into a black hole. The tunnel must carry what the Pods send: its MTU at least theirs (Calico sets the Pods' to the smallest of its tunnels').", nodesOrAll(over), s.tunnelDevice(), tunnelMTU),
			Nodes:   over, Pairs: refs(affected), Evidence: ev,
			Remedy: remedy,
		}, affected)
	} else if len(podMTUs) > 1 {
		var parts []string
		smallest := 0
		for m, ns := range podMTUs {
			parts = append(parts, fmt.Sprintf("%d on %s", m, joinNames(ns)))
			if smallest == 0 || m < smallest {
				smallest = m
			}
		}
		sort.Strings(parts)
		summary := "Pods on different nodes have different MTUs: usually a changed MTU that only new Pods picked up."
		remedy := &model.Remedy{Summary: "Restart the Pods that still have the old MTU (a rolling restart of their workloads)."}
		if s.ev.Network.PodMTU == 0 {
			// No MTU is configured: Felix takes each node's own interface MTU,
			// so a node with a larger NIC gives its Pods a larger one.
			// Restarting Pods changes nothing until one value is set.
			summary = "No Pod MTU is configured, so Calico auto-detects one on each node from that node's own interface: nodes with larger NICs give their Pods larger MTUs than the paths between nodes carry. One value must be configured for the cluster."
			remedy = s.mtuRemedy(smallest, "", 0)
		}
		odd := oddNodesOut(podMTUs)
		title := "Pod MTUs differ between nodes"
		if len(odd) > 0 {
			title += ": " + nodesOrAll(odd)
		}
		s.add(model.Finding{
			ID: MTUInconsistent, Severity: Warning, Title: title,
			Summary: summary, Nodes: odd, Evidence: parts, Remedy: remedy,
		}, nil)
	}
}

// oddNodesOut are the nodes with Pods at an MTU other than the one most
// nodes' Pods have; none when no MTU is had by more nodes than any other.
func oddNodesOut(byMTU map[int][]string) []string {
	most, tie := 0, false
	for m, ns := range byMTU {
		switch {
		case most == 0 || len(ns) > len(byMTU[most]):
			most, tie = m, false
		case len(ns) == len(byMTU[most]):
			tie = true
		}
	}
	if tie {
		return nil
	}
	var odd []string
	for m, ns := range byMTU {
		for _, n := range ns {
			if m != most && !slices.Contains(odd, n) {
				odd = append(odd, n)
			}
		}
	}
	sort.Strings(odd)
	return odd
}

func plural(ns []string) string {
	if len(ns) == 1 {
		return "s"
	}
	return ""
}

// mtuRemedy says where the Pod MTU lives — in this install when the
// evidence knows how Calico was installed, else for each install type — and
// the underlay alternative when the path, not the configuration, is short.
func (s *state) mtuRemedy(mtu int, underlayNodes string, underlayMTU int) *model.Remedy {
	installation := fmt.Sprintf("kubectl patch installation.operator.tigera.io default --type merge -p '{\"spec\":{\"calicoNetwork\":{\"mtu\":%d}}}'", mtu)
	configMap := fmt.Sprintf("kubectl -n kube-system patch configmap calico-config --type merge -p '{\"data\":{\"veth_mtu\":\"%d\"}}' && kubectl -n kube-system rollout restart daemonset calico-node", mtu)
	fix := fmt.Sprintf("podpath fix mtu --mtu %d", mtu)
	r := &model.Remedy{MTU: mtu}
	switch s.ev.Network.Install {
	case "operator":
		r.Summary = fmt.Sprintf("Set the Pod MTU to %d in the operator's Installation default (spec.calicoNetwork.mtu); the operator rolls calico-node, then restart the Pods (only new Pods get the new MTU).", mtu)
		r.Commands = []string{installation, fix}
	case "kubespray":
		r.Summary = fmt.Sprintf("Set calico_mtu: %d in the Kubespray inventory (group_vars/k8s_cluster/k8s-net-calico.yml; calico_veth_mtu alone is ignored) and re-run Kubespray's network role: it renders calico-node's CNI_MTU and FELIX_*MTU and the CNI configuration. A kubectl-only change is reverted by the next Kubespray run. Then restart the Pods (only new Pods get the new MTU).", mtu)
		r.Commands = []string{
			fmt.Sprintf("podpath fix mtu --mtu %d --kubespray-inventory inventory/mycluster", mtu),
			"ansible-playbook -i inventory/mycluster/hosts.yaml cluster.yml --tags network",
			"kubectl -n kube-system rollout status daemonset calico-node",
		}
	case "manifest":
		r.Summary = fmt.Sprintf("Set the Pod MTU to %d in the calico-config ConfigMap (veth_mtu), restart calico-node, then the Pods (only new Pods get the new MTU).", mtu)
		r.Commands = []string{configMap, fix}
	default:
		r.Summary = fmt.Sprintf("Set the Pod MTU to %d where this install keeps it — Kubespray: calico_mtu: %d in group_vars/k8s_cluster/k8s-net-calico.yml (calico_veth_mtu alone is ignored); "+
			"operator: the Installation's spec.calicoNetwork.mtu; manifest: veth_mtu in the calico-config ConfigMap — then restart calico-node and the Pods (only new Pods get the new MTU).", mtu, mtu)
		r.Commands = []string{installation, configMap, fix}
	}
	switch underlayNodes {
	case "":
	case "all nodes": // the pairs share no node: the paths themselves
		r.Summary += fmt.Sprintf(" Or make the paths above carry %d bytes again (the links, routers or VPN on the way), and keep the Pod MTU.", underlayMTU)
	default:
		r.Summary += fmt.Sprintf(" Or make the underlay towards %s carry %d bytes again (the link, switch port, VPN or cloud network of that node), and keep the Pod MTU.", underlayNodes, underlayMTU)
	}
	return r
}

// mtuBlackhole: packets above some size vanish on a path, silently, while
// the sender's interface allows them: small requests pass, big ones stall.
func mtuBlackhole(s *state) {
	var pod, node, stalled []model.Pair
	for _, p := range s.ev.Pairs.All() {
		// Loss explains a stalled transfer and blurs a size search; packet-loss
		// reports those pairs instead.
		if s.isExplained(p) || lossy(p) {
			continue
		}
		switch {
		case blackholed(p) && p.Layer == model.LayerPod:
			pod = append(pod, p)
		case blackholed(p):
			node = append(node, p)
		case p.Layer == model.LayerPod && p.Stalled && p.Reachable && p.PathMTUError == "" && !fullSizeCrosses(p):
			// A stall where the size search could not finish says nothing
			// about size: the path lost even its small probes then.
			stalled = append(stalled, p)
		}
	}
	if len(pod)+len(node)+len(stalled) == 0 {
		return
	}
	sev, affected, layer := Error, append(pod, stalled...), model.LayerPod
	if len(affected) == 0 {
		sev, affected, layer = Warning, node, model.LayerNode
	}
	nodes := Localize(affected, s.ev.Pairs.All())
	// The Pod MTU is one value for the cluster: it must fit the worst path.
	safe, underlay := 0, 0
	for _, p := range s.ev.Pairs.All() {
		if p.PathMTU == 0 {
			continue
		}
		v := p.PathMTU
		if p.Layer == model.LayerNode {
			v -= s.overhead()
			underlay = max(underlay, p.IfaceMTU)
		}
		if p.Layer == layer || len(pod) == 0 {
			if safe == 0 || v < safe {
				safe = v
			}
		}
	}
	var ev []string
	for _, p := range append(append(append([]model.Pair{}, pod...), node...), stalled...) {
		switch {
		case p.Stalled && !blackholed(p):
			ev = append(ev, fmt.Sprintf("%s %s → %s: a bulk TCP transfer stalled while small requests passed", p.Layer, p.From, p.To))
		default:
			line := fmt.Sprintf("%s %s → %s: %d of %d bytes cross; larger packets vanish without an ICMP error", p.Layer, p.From, p.To, p.PathMTU, p.IfaceMTU)
			if p.Stalled {
				line += "; a bulk TCP transfer stalled"
			}
			ev = append(ev, line)
		}
	}
	// A few pairs first, then why and where, then the other pairs: the
	// text report shows the first lines, -o json them all.
	var why []string
	for _, n := range nodes {
		if ds := s.drops(n, model.NeedICMPFragNeeded); len(ds) > 0 {
			why = append(why, describe(n, ds, model.NeedICMPFragNeeded)...)
		}
	}
	why = append(why, s.lostFragments(pod)...)
	why = append(why, s.whereTheyVanish(append(append([]model.Pair{}, pod...), node...))...)
	head := min(len(ev), 4)
	ev = capLines(slices.Concat(ev[:head], why, ev[head:]), maxEvidence)
	where := "between nodes"
	if len(nodes) > 0 {
		where = "on paths " + direction(affected, nodes) + " " + nodesOrAll(nodes)
	}
	title := "MTU black hole " + where
	summary := fmt.Sprintf("Packets larger than %d bytes are silently dropped %s while the Pod network allows larger ones: small requests and pings work, full-sized packets (large HTTP responses, TLS handshakes) are lost.", safe, where)
	remedy := s.mtuRemedy(safe, nodesOrAll(nodes), underlay)
	if layer == model.LayerNode {
		summary = fmt.Sprintf("Host-network packets above the path's limit are silently dropped %s; Pod traffic is not affected at its current MTU.", where)
		// Host traffic fits itself to the path once the path says
		// "fragmentation needed": that, not the Pod MTU, is what to fix.
		var hops []string
		for _, p := range affected {
			if w := p.Vanish; w != nil && w.After > 0 && w.At != "" && w.Hops > w.After && !slices.Contains(hops, w.At) {
				hops = append(hops, w.At)
			}
		}
		from := "the router or firewall on the way"
		if len(hops) > 0 {
			from = "the router at " + strings.Join(hops, " and the one at ")
		}
		remedy = &model.Remedy{Summary: fmt.Sprintf("Let ICMP \"fragmentation needed\" (type 3 code 4; ICMPv6 packet-too-big) from %s through to the nodes: path MTU discovery then fits host traffic to what the path carries. Or make the path carry %d bytes again.", from, underlay)}
	}
	s.add(model.Finding{
		ID: MTUBlackhole, Severity: sev, Title: title, Summary: summary,
		Nodes: nodes, Pairs: refs(affected), Evidence: append(ev, s.ev.Network.Sources...),
		Remedy: remedy,
	}, append(affected, node...))
}

// direction says whether pairs go to the nodes, come from them, or both.
func direction(pairs []model.Pair, nodes []string) string {
	to, from := true, true
	for _, p := range pairs {
		to = to && slices.Contains(nodes, p.To)
		from = from && slices.Contains(nodes, p.From)
	}
	switch {
	case to && !from:
		return "to"
	case from && !to:
		return "from"
	}
	return "to and from"
}

// whereTheyVanish says, from the pairs' TTL-limited probes, after which hop
// larger packets vanish: the router to look at, the link itself when
// nothing routes between, or that routers did not say.
func (s *state) whereTheyVanish(pairs []model.Pair) []string {
	byAddr := s.addrNode()
	nodeAt := func(a string) string {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return ""
		}
		return byAddr[ip]
	}
	name := func(a string) string {
		if n := nodeAt(a); n != "" {
			return a + " (" + n + ")"
		}
		return a
	}
	var out []string
	for _, p := range pairs {
		w := p.Vanish
		if w == nil || w.Hops == 0 {
			continue
		}
		var line string
		switch {
		case w.Silent, w.After == 0 && w.Gap:
			line = fmt.Sprintf("%s %s → %s: the routers on the way did not answer TTL-limited probes, so where %d-byte packets vanish is not known", p.Layer, p.From, p.To, w.Size)
		case w.Hops == 1:
			line = fmt.Sprintf("%s %s → %s: nothing routes between them (one hop): %d-byte packets vanish on the link itself, a switch port, NIC or virtual network with a smaller MTU", p.Layer, p.From, p.To, w.Size)
		case w.After == 0:
			line = fmt.Sprintf("%s %s → %s: %d-byte packets do not reach the first hop of %d: they vanish on %s's own link", p.Layer, p.From, p.To, w.Size, w.Hops, p.From)
		case p.Layer == model.LayerPod && w.After == 1 && nodeAt(w.At) == p.From:
			line = fmt.Sprintf("pod %s → %s: %d-byte packets reach the Pod's own node %s, hop 1 of %d, and vanish after it: on the underlay between the nodes, inside the encapsulation", p.From, p.To, w.Size, name(w.At), w.Hops)
		default:
			line = fmt.Sprintf("%s %s → %s: %d-byte packets reach %s, hop %d of %d, and vanish after it", p.Layer, p.From, p.To, w.Size, name(w.At), w.After, w.Hops)
		}
		if w.Gap && w.After > 0 {
			line += fmt.Sprintf(" (hop %d answered no probe at all: they vanish there or beyond)", w.After+1)
		}
		if !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out
}

// nodePair is the node-layer pair beside a Pod-layer one.
func (s *state) nodePair(p model.Pair) (model.Pair, bool) {
	for _, q := range s.ev.Pairs.All() {
		if q.Layer == model.LayerNode && q.From == p.From && q.To == p.To && q.Known() && q.PathMTU > 0 {
			return q, true
		}
	}
	return model.Pair{}, false
}

// lostFragments explains a Pod-layer black hole whose limit is exactly the
// node path's MTU less the encapsulation, where a router reports that MTU:
// the encapsulation's outer packets carry no DF bit, so the router
// fragments the larger ones, and their loss means the fragments are
// dropped further on.
func (s *state) lostFragments(pod []model.Pair) []string {
	o := s.overhead()
	if o == 0 {
		return nil
	}
	for _, p := range pod {
		n, ok := s.nodePair(p)
		if !ok || n.PathMTULimit != "icmp" || p.PathMTU+o != n.PathMTU {
			continue
		}
		from := ""
		if n.ICMPFrom != "" {
			from = " (" + n.ICMPFrom + " says so)"
		}
		return []string{fmt.Sprintf("node %s → %s carries %d bytes%s: larger %s packets, which carry no Don't Fragment bit, are fragmented there, and the fragments are lost on the way (a firewall, load balancer or security group that drops IP fragments)",
			n.From, n.To, n.PathMTU, from, s.ev.Network.Backend)}
	}
	return nil
}

// underlayFragmentation: Pod packets cross a node path whose MTU is
// smaller than they are once encapsulated: they cross only as IP
// fragments, which costs packets and reassembly, and breaks where anything
// on the way drops fragments. Nothing fails yet, so a warning, with the
// Pod MTU that avoids it.
func underlayFragmentation(s *state) {
	o := s.overhead()
	if o == 0 {
		return
	}
	var frag []model.Pair
	var ev []string
	safe := 0
	for _, p := range s.ev.Pairs.All() {
		if p.Layer != model.LayerPod || !p.Known() || !p.Reachable || p.PathMTU == 0 || s.isExplained(p) {
			continue
		}
		n, ok := s.nodePair(p)
		if !ok || p.PathMTU+o <= n.PathMTU {
			continue
		}
		frag = append(frag, p)
		limit := n.PathMTU - o
		if safe == 0 || limit < safe {
			safe = limit
		}
		ev = append(ev, fmt.Sprintf("pod %s → %s: %d-byte Pod packets cross, %d once encapsulated, over a node path of %d bytes: those above %d are fragmented", p.From, p.To, p.PathMTU, p.PathMTU+o, n.PathMTU, limit))
	}
	if len(frag) == 0 {
		return
	}
	nodes := Localize(frag, s.ev.Pairs.All())
	r := s.mtuRemedy(safe, nodesOrAll(nodes), frag[0].PathMTU+o)
	at := where(nodes)
	if len(nodes) == 0 && len(frag) < s.count(model.LayerPod) {
		at = "on " + count(len(frag), "Pod path") + " (below)"
	}
	who := fmt.Sprintf("%s's outer packets carry no Don't Fragment bit, so a router fragments them", s.ev.Network.Backend)
	if s.v6() {
		// IPv6 routers never fragment: the sending node's tunnel does.
		who = fmt.Sprintf("the sending node fragments %s's outer IPv6 packets itself", s.ev.Network.Backend)
	}
	s.add(model.Finding{
		ID: UnderlayFragmentation, Severity: Warning, Title: fmt.Sprintf("Pod packets above %d bytes are fragmented on the underlay %s", safe, at),
		Summary: fmt.Sprintf("The node network %s carries less than a full-size Pod packet once %s adds its %d bytes, and %s: every Pod packet above %d bytes becomes two IP packets, the receiving node reassembles them, the loss of either loses both, and a firewall, load balancer or security group that drops fragments turns it into a black hole. A Pod MTU of %d avoids it.",
			at, s.ev.Network.Backend, o, who, safe, safe),
		Nodes: nodes, Pairs: refs(frag), Evidence: capLines(ev, maxEvidence), Remedy: r,
	}, nil)
}

// fullSizeCrosses: the pair's size search saw packets of its interface's
// full MTU answered, so a transfer that stalled there did not stall on size
// (random loss the echo sample missed does that).
func fullSizeCrosses(p model.Pair) bool {
	return p.PathMTU > 0 && p.PathMTU >= p.IfaceMTU
}

// maxNames bounds the names a title or a line lists: at 1,000 nodes a
// finding about all of them would be a page long.
const maxNames = 8

// joinNames lists names, at most maxNames of them and how many more.
func joinNames(names []string) string {
	if len(names) <= maxNames {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNames], ", "), len(names)-maxNames)
}

func capLines(ev []string, n int) []string {
	if len(ev) <= n {
		return ev
	}
	return append(ev[:n], fmt.Sprintf("… and %d more", len(ev)-n))
}
