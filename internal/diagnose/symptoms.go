package diagnose

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"podpath/internal/model"
)

// podNetworkPartition: cross-node Pod traffic fails and nothing more
// specific explains it.
func podNetworkPartition(s *state) {
	failing := s.pairs(model.LayerPod, func(p model.Pair) bool { return cut(p) && !s.isExplained(p) })
	if len(failing) == 0 {
		return
	}
	nodes := Localize(failing, s.ev.Pairs.All())
	var ev []string
	for _, p := range failing {
		ev = append(ev, fmt.Sprintf("pod %s → %s: no answer", p.From, p.To))
	}
	// The same nodes host to host: if they talk, the Pod network is cut,
	// not the underlay.
	nodeOK, nodeKnown := true, false
	for _, p := range failing {
		for _, q := range s.pairs(model.LayerNode, func(q model.Pair) bool { return q.From == p.From && q.To == p.To && q.Known() }) {
			nodeKnown = true
			nodeOK = nodeOK && q.Reachable
		}
	}
	if nodeKnown && nodeOK {
		ev = append(ev, "the same nodes reach each other host to host: the Pod network, not the underlay, is cut")
	}
	s.add(model.Finding{
		ID: PodNetworkPartition, Severity: Error, Title: "Pods cannot reach Pods on other nodes: " + nodesOrAll(nodes),
		Summary: "Cross-node Pod traffic fails and no firewall rule, route, BGP session or sysctl podpath reads explains it.",
		Nodes:   nodes, Pairs: refs(failing), Evidence: capLines(ev, maxEvidence),
		Remedy: &model.Remedy{Summary: fmt.Sprintf("Compare the failing nodes' routes to other nodes' Pod blocks, their %s neighbour/FDB entries or BGP routes, calico-node's logs, and the Pods' own routes (a default route via %s).", s.tunnelDevice(), podGateway(s.v6())),
			Commands: []string{fmt.Sprintf("%sroute; %sneigh show dev %s; bridge fdb show dev %s", s.ipCmd(), s.ipCmd(), s.tunnelDevice(), s.tunnelDevice()), "kubectl -n kube-system logs -l k8s-app=calico-node --tail=100"}},
	}, failing)
}

// podGateway is the next hop the Calico CNI plugin gives a Pod's
// default route: a link-local address its host side answers for.
func podGateway(v6 bool) string {
	if v6 {
		return "fe80::ecee:eeff:feee:eeee"
	}
	return "169.254.1.1"
}

// rpFilterStrict: strict reverse-path filtering on a node drops packets
// whose reply would leave by another interface. Where the node's peers
// send their encapsulated traffic to an interface its route back to them
// does not use (a second NIC that Calico's address auto-detection picked,
// say), that is the root cause of every failing Pod pair between them;
// strict mode without such an asymmetry is only a warning.
func rpFilterStrict(s *state) {
	if s.v6() {
		return // rp_filter is IPv4's; IPv6 has no such sysctl
	}
	var warnNodes, warnEv []string
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		l := s.underlayLink(n)
		if f == nil || l == nil {
			continue
		}
		if ev, peers, ifaces := s.asymmetricRPF(n, f); len(ev) > 0 {
			var pairs []model.Pair
			for _, m := range peers {
				pairs = append(pairs, s.pairs(model.LayerPod, func(p model.Pair) bool {
					return (p.From == n && p.To == m) || (p.From == m && p.To == n)
				})...)
			}
			failing := slices.DeleteFunc(slices.Clone(pairs), func(p model.Pair) bool { return !cut(p) && !p.Stalled })
			if len(failing) > 0 {
				ev = append(ev, failingLine(failing, n))
			}
			s.add(model.Finding{
				ID: RPFilterStrict, Severity: Error, Title: "Strict reverse-path filtering on " + n + " drops its peers' encapsulated traffic",
				Summary: fmt.Sprintf("Other nodes send %s's encapsulated Pod traffic to an interface that %s's routes back to them do not leave by; with rp_filter=1 (strict) there, the kernel drops every such packet as spoofed, so Pods on %s cannot reach Pods on those nodes.", n, n, n),
				Nodes:   []string{n}, Pairs: refs(failing), Evidence: ev,
				Remedy: &model.Remedy{Summary: "Use loose mode (2) on that interface, as most distributions do; or make the node's Calico address the one on the interface its routes use (IP_AUTODETECTION_METHOD; Kubespray calico_ip_auto_method), so traffic arrives where its answers leave.",
					Commands: []string{fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2   # on %s, and persist it in /etc/sysctl.d (all= must not be 1 either: the larger wins)", strings.Join(ifaces, ".rp_filter=2 net.ipv4.conf."), n)}},
			}, pairs)
			continue
		}
		for _, link := range []string{l.Name, "vxlan.calico"} {
			if mode, ok := f.Sysctls.EffectiveRPFilter(link); ok && mode == 1 {
				warnNodes = append(warnNodes, n)
				warnEv = append(warnEv, fmt.Sprintf("%s: effective rp_filter on %s is 1 (strict): max(all=%s, %s=%s)", n, link, intp(f.Sysctls.RPFilterAll), link, intp(f.Sysctls.Conf[link].RPFilter)))
				break
			}
		}
	}
	if len(warnNodes) == 0 {
		return
	}
	s.add(model.Finding{
		ID: RPFilterStrict, Severity: Warning, Title: "Strict reverse-path filtering on " + nodesOrAll(warnNodes),
		Summary: "With rp_filter=1 a node drops packets whose source it would route back out of another interface: Pod traffic to host addresses without NAT, and encapsulated traffic on some set-ups.",
		Nodes:   warnNodes, Evidence: warnEv,
		Remedy: &model.Remedy{Summary: "Use loose mode (2), as most distributions do.",
			Commands: []string{"sysctl -w net.ipv4.conf.all.rp_filter=2   # and persist it in /etc/sysctl.d"}},
	}, nil)
}

// asymmetricRPF finds peers whose VXLAN traffic reaches node n on an
// interface with strict reverse-path filtering that n's route back to
// them does not leave by. Where the traffic arrives is where the peers'
// FDB entries for n's VTEP send it: the interface of n that holds that
// address; where it comes from is each peer's VXLAN source address.
func (s *state) asymmetricRPF(n string, f *model.Facts) (ev, peers, ifaces []string) {
	v := vtepOf(n, f, "vxlan.calico", false) // rp_filter judges IPv4 only
	if v == nil || v.mac == "" {
		return nil, nil, nil
	}
	for _, m := range s.ev.Nodes {
		mf := s.ev.Facts[m]
		if m == n || mf == nil {
			continue
		}
		mv := vtepOf(m, mf, "vxlan.calico", false)
		if mv == nil {
			continue
		}
		dst := ""
		for _, e := range mv.vx.FDB {
			if strings.EqualFold(e.MAC, v.mac) {
				dst = e.Dst
			}
		}
		arrive := linkHolding(f, dst)
		src := mv.vx.Local
		if src == "" {
			src = s.ev.Addresses[m]
		}
		back := routeDev(f, src)
		if arrive == "" || back == "" || arrive == back {
			continue
		}
		if mode, ok := f.Sysctls.EffectiveRPFilter(arrive); ok && mode == 1 {
			peers = append(peers, m)
			if !slices.Contains(ifaces, arrive) {
				ifaces = append(ifaces, arrive)
			}
			ev = append(ev, fmt.Sprintf("%s sends VXLAN for %s to %s, on %s's %s; %s's route back to %s (%s) leaves by %s; effective rp_filter on %s is 1 (strict): max(all=%s, %s=%s)",
				m, n, dst, n, arrive, n, m, src, back, arrive, intp(f.Sysctls.RPFilterAll), arrive, intp(f.Sysctls.Conf[arrive].RPFilter)))
		}
	}
	return ev, peers, ifaces
}

// linkHolding is the name of f's link that holds address a.
func linkHolding(f *model.Facts, a string) string {
	for _, l := range f.Links {
		for _, c := range l.Addresses {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().String() == a {
				return l.Name
			}
		}
	}
	return ""
}

// routeDev is the device f's main table routes a to: the longest matching
// unicast route (ties by metric), as the kernel's lookup would pick
// without policy rules.
func routeDev(f *model.Facts, a string) string {
	r, _ := routeTo(f, a)
	return r.Dev
}

// routeTo is the route f's main table has for a: the longest matching
// unicast route, ties by metric, as the kernel's lookup picks it without
// policy rules.
func routeTo(f *model.Facts, a string) (model.Route, bool) {
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return model.Route{}, false
	}
	var best model.Route
	bestBits, found := -1, false
	for _, r := range f.Routes {
		if r.Type != "unicast" || r.Dev == "" {
			continue
		}
		p := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Family == "ipv6" {
			p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != "default" {
			if p, err = netip.ParsePrefix(r.Dst); err != nil {
				continue
			}
		}
		if p.Addr().Is4() != addr.Is4() || !p.Contains(addr) {
			continue
		}
		if p.Bits() > bestBits || (p.Bits() == bestBits && r.Metric < best.Metric) {
			best, bestBits, found = r, p.Bits(), true
		}
	}
	return best, found
}

// nodeNetworkPartition: nodes that are up (they answer something) cannot
// reach each other host to host: no UDP echo, no ICMP echo, no TCP
// handshake. The Pod traffic between them rides the same underlay, so its
// failure is a symptom. Where a node's route to its peer leaves by another
// interface than the one holding its address, that is said.
func nodeNetworkPartition(s *state) {
	failing := s.pairs(model.LayerNode, func(p model.Pair) bool { return cut(p) && !s.isExplained(p) })
	if len(failing) == 0 {
		return
	}
	nodes := Localize(failing, s.ev.Pairs.All())
	var ev, why []string
	for _, p := range failing {
		ev = append(ev, fmt.Sprintf("node %s → %s: no UDP echo, ICMP echo or TCP handshake", p.From, p.To))
		f, own := s.ev.Facts[p.From], s.underlayLink(p.From)
		peer := s.ev.Addresses[p.To]
		if f == nil || own == nil || peer == "" {
			continue
		}
		if r, ok := routeTo(f, peer); ok && r.Dev != own.Name {
			via := ""
			if r.Gw != "" {
				via = " via " + r.Gw
			}
			line := fmt.Sprintf("%s's route to %s (%s) leaves by %s%s (%s, metric %d), not by %s, which holds its node address", p.From, p.To, peer, r.Dev, via, r.Dst, r.Metric, own.Name)
			if !slices.Contains(why, line) {
				why = append(why, line)
			}
		}
	}
	// What arrives there: a firewall on the receiving node that stops the
	// probes (the agent's port, ICMP echoes) is the cut.
	var firewalled []string
	for _, n := range s.ev.Nodes {
		if !slices.ContainsFunc(failing, func(p model.Pair) bool { return p.To == n }) {
			continue
		}
		for _, need := range []string{model.NeedAgent, model.NeedICMP} {
			if ds := s.drops(n, need); len(ds) > 0 {
				why = append(why, describe(n, ds, need)...)
				if !slices.Contains(firewalled, n) {
					firewalled = append(firewalled, n)
				}
			}
		}
	}
	for _, n := range nodes {
		if f := s.ev.Facts[n]; f != nil {
			var defaults []string
			for _, r := range f.Routes {
				if r.Family == s.routeFamily() && r.Dst == "default" && r.Type == "unicast" {
					defaults = append(defaults, fmt.Sprintf("via %s dev %s metric %d", r.Gw, r.Dev, r.Metric))
				}
			}
			if len(defaults) > 1 {
				why = append(why, fmt.Sprintf("%s has %d default routes: %s", n, len(defaults), strings.Join(defaults, "; ")))
			}
		}
	}
	var explains []model.Pair
	for _, p := range failing {
		explains = append(explains, p)
		explains = append(explains, s.pairs(model.LayerPod, func(q model.Pair) bool {
			return (q.From == p.From && q.To == p.To) || (q.From == p.To && q.To == p.From)
		})...)
	}
	remedy := &model.Remedy{Summary: "Check the named nodes' routes to the other nodes' addresses and what lies between them (the link, a firewall or security group, the switch or router).",
		Commands: []string{"ip route get <peer address>; ip rule; ip -s link   # on " + nodesOrAll(nodes)}}
	switch {
	case len(firewalled) > 0:
		remedy = &model.Remedy{Summary: fmt.Sprintf("Let the other nodes through the firewall on %s (the rule or policy above): at least the cluster's node network, before the drop.", nodesOrAll(firewalled)),
			Commands: []string{"nft -a list ruleset   # on " + nodesOrAll(firewalled)}}
	case len(why) > 0:
		remedy.Summary = "Route the other nodes' addresses out of the interface that holds the node's own address (fix the extra default route or its metric), then run again."
	}
	s.add(model.Finding{
		ID: NodeNetworkPartition, Severity: Error, Title: "Nodes cannot reach each other on the host network: " + nodesOrAll(nodes),
		Summary: "Nodes that are up, and answer the controller or other peers, get nothing back from each other host to host. Everything between them, Pod traffic included, rides this path.",
		Nodes:   nodes, Pairs: refs(failing), Evidence: capLines(slices.Concat(why, ev), maxEvidence), Remedy: remedy,
	}, explains)
}

func intp(p *int) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprint(*p)
}

// kernelModuleMissing: a module the configured backend or Calico needs
// cannot be had on a node.
func kernelModuleMissing(s *state) {
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil {
			continue
		}
		var ev []string
		for _, m := range f.KernelModules {
			ipvs := m.Need == "kube-proxy-ipvs" && s.ev.Network.KubeProxyMode == "ipvs"
			if m.State != model.ModuleMissing || (m.Need != "calico" && m.Need != s.ev.Network.Backend && !ipvs) {
				continue
			}
			ev = append(ev, fmt.Sprintf("%s: %s (needed by %s) is missing: %s", n, m.Name, m.Need, m.Evidence))
		}
		if len(ev) == 0 {
			continue
		}
		s.add(model.Finding{
			ID: KernelModuleMissing, Severity: Error, Title: "Kernel modules missing on " + n,
			Summary: "The kernel on " + n + " lacks modules Calico or kube-proxy's mode needs; the dataplane cannot work there.",
			Nodes:   []string{n}, Evidence: ev,
			Remedy: &model.Remedy{Summary: "Install the kernel's extra modules package (e.g. linux-modules-extra-$(uname -r)) and load them, or use a backend this kernel supports.",
				Commands: []string{"modprobe <module>   # on " + n}},
		}, nil)
	}
}

// calicoNodeUnhealthy: Felix answers its readiness probe with "not ready".
// A Felix that is not there at all is not a finding (not every cluster runs Calico).
func calicoNodeUnhealthy(s *state) {
	for _, n := range s.ev.Nodes {
		var ev []string
		f := s.ev.Facts[n]
		if f != nil && f.Calico.Felix.StatusCode != 0 && !f.Calico.Felix.Ready {
			ev = append(ev, fmt.Sprintf("%s: GET %s answered %d", n, f.Calico.Felix.URL, f.Calico.Felix.StatusCode))
		}
		pod, known := s.ev.CalicoPods[n]
		if known && !pod.Ready {
			ev = append(ev, fmt.Sprintf("%s: Pod %s is not Ready", n, pod.Name))
		}
		if len(ev) == 0 {
			continue
		}
		for _, l := range pod.LogErrors {
			ev = append(ev, n+" log: "+l)
		}
		describe := "kubectl -n kube-system describe pod -l k8s-app=calico-node   # the Pod on " + n
		if pod.Name != "" {
			ns, name, _ := strings.Cut(pod.Name, "/")
			describe = fmt.Sprintf("kubectl -n %s describe pod %s && kubectl -n %s logs %s -c calico-node --tail=100", ns, name, ns, name)
		}
		s.add(model.Finding{
			ID: CalicoNodeUnhealthy, Severity: Error, Title: "calico-node is not ready on " + n,
			Summary:  "calico-node reports not ready: the node's Calico dataplane (routes, tunnel, BGP sessions) may be stale or incomplete.",
			Nodes:    []string{n},
			Evidence: ev,
			Remedy:   &model.Remedy{Summary: "Read calico-node's logs on " + n + " and its readiness probe output.", Commands: []string{describe}},
		}, nil)
	}
}

// conntrackFull: the connection-tracking table is nearly full: new flows are dropped.
func conntrackFull(s *state) {
	for _, n := range s.ev.Nodes {
		f := s.ev.Facts[n]
		if f == nil || f.Conntrack.Count == nil || f.Conntrack.Max == nil || *f.Conntrack.Max == 0 {
			continue
		}
		c, m := *f.Conntrack.Count, *f.Conntrack.Max
		if float64(c) < ConntrackFullRatio*float64(m) {
			continue
		}
		s.add(model.Finding{
			ID: ConntrackFull, Severity: Warning, Title: "Connection tracking nearly full on " + n,
			Summary:  "When the conntrack table is full the kernel drops new connections ('nf_conntrack: table full').",
			Nodes:    []string{n},
			Evidence: []string{fmt.Sprintf("%s: %d of %d entries in use", n, c, m)},
			Remedy:   &model.Remedy{Summary: "Raise net.netfilter.nf_conntrack_max or find what opens so many flows.", Commands: []string{fmt.Sprintf("sysctl -w net.netfilter.nf_conntrack_max=%d", 2*m)}},
		}, nil)
	}
}

// packetLoss: echoes lost on reachable pairs.
func packetLoss(s *state) {
	lost := s.pairs("", func(p model.Pair) bool {
		return p.Reachable && p.RTTMs != nil && lossy(p) && !s.isExplained(p)
	})
	if len(lost) == 0 {
		return
	}
	nodes := Localize(lost, s.ev.Pairs.All())
	var ev []string
	for _, p := range lost {
		ev = append(ev, fmt.Sprintf("%s %s → %s: %.0f%% of echoes lost", p.Layer, p.From, p.To, p.LossPct))
	}
	remedy := &model.Remedy{Summary: "Look at the interface error and drop counters on the named nodes and their network path.",
		Commands: []string{"ip -s link   # on " + nodesOrAll(nodes)}}
	// A firewall rule that drops at random or by rate on those nodes is the
	// loss itself.
	var rules []string
	for _, n := range nodes {
		if f := s.ev.Facts[n]; f != nil {
			for _, d := range f.Firewall.Drops {
				if strings.Contains(d.Rule, "numgen random") || strings.Contains(d.Rule, "limit") {
					rules = append(rules, fmt.Sprintf("%s: nftables %s %s chain %s: %s: it drops that share of what it sees", n, d.Family, d.Table, d.Chain, d.Rule))
				}
			}
		}
	}
	if len(rules) > 0 {
		ev = append(rules, ev...)
		remedy = &model.Remedy{Summary: "Remove the firewall rule above that drops at random or by rate; then look at the interfaces' counters if loss remains.",
			Commands: []string{"nft -a list ruleset   # on " + nodesOrAll(nodes) + ": the rule's handle, then nft delete rule <family> <table> <chain> handle <n>"}}
	}
	s.add(model.Finding{
		ID: PacketLoss, Severity: Warning, Title: "Packet loss " + where(nodes),
		Summary: "Echoes are lost on paths that otherwise work: TCP slows down and retransmits, latency-sensitive traffic suffers.",
		Nodes:   nodes, Pairs: refs(lost), Evidence: capLines(ev, maxEvidence), Remedy: remedy,
	}, nil)
}

func where(nodes []string) string {
	if len(nodes) == 0 {
		return "across the cluster"
	}
	return "on paths of " + nodesOrAll(nodes)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

// medianWithout is median of the multiset all minus the multiset in (both
// sorted, in within all): the median of the pairs not touching a node,
// without copying the other million.
func medianWithout(all, in []float64) float64 {
	rank := (len(all) - len(in)) / 2 // median's index in the rest, as median picks it
	// The smallest i whose value has more than rank of the rest at or below it.
	i := sort.Search(len(all), func(i int) bool {
		v := all[i]
		le := func(s []float64) int { return sort.Search(len(s), func(j int) bool { return s[j] > v }) }
		return le(all)-le(in) > rank
	})
	return all[min(i, len(all)-1)]
}

// highLatency: a node whose every pair is much slower than the rest, or a
// cluster whose every pair is slow.
func highLatency(s *state) {
	var all []float64
	for _, p := range s.ev.Pairs.All() {
		if p.RTTMs != nil {
			all = append(all, p.RTTMs.P50)
		}
	}
	if len(all) == 0 {
		return
	}
	var nodes, ev []string
	var slow []model.Pair
	sorted := slices.Clone(all)
	slices.Sort(sorted)
	for _, n := range s.ev.Nodes {
		mine := s.pairsOf("", n, func(p model.Pair) bool { return p.RTTMs != nil })
		in := make([]float64, len(mine))
		for i, p := range mine {
			in[i] = p.RTTMs.P50
		}
		if len(in) == 0 || len(in) == len(all) {
			continue
		}
		slices.Sort(in)
		fastest, typical := in[0], medianWithout(sorted, in)
		if fastest >= LatencyFactor*typical && fastest-typical >= LatencyMinExtraMs {
			nodes = append(nodes, n)
			slow = append(slow, mine...)
			ev = append(ev, fmt.Sprintf("%s: its pairs take at least %.1f ms (p50), the others %.2f ms", n, fastest, typical))
		}
	}
	if len(nodes) == 0 && median(all) > LatencyAbsoluteMs {
		ev = append(ev, fmt.Sprintf("median round trip between nodes %.1f ms", median(all)))
		slow = s.ev.Pairs.Slice()
	}
	if len(ev) == 0 {
		return
	}
	s.add(model.Finding{
		ID: HighLatency, Severity: Warning, Title: "High latency " + where(nodes),
		Summary: "Round trips are far slower than the rest of the cluster's.",
		Nodes:   nodes, Pairs: refs(slow), Evidence: ev,
		Remedy: &model.Remedy{Summary: "Check the named nodes' links, CPU load and any traffic shaping (tc qdisc) on their interfaces.",
			Commands: []string{"tc qdisc show; ip -s link   # on " + nodesOrAll(nodes)}},
	}, nil)
}

// mtuWasteful: the Pod MTU is far below what the path carries.
func mtuWasteful(s *state) {
	minNode, podIface := 0, 0
	for _, p := range s.ev.Pairs.All() {
		switch {
		case p.Layer == model.LayerNode && p.PathMTU > 0:
			if minNode == 0 || p.PathMTU < minNode {
				minNode = p.PathMTU
			}
		case p.Layer == model.LayerPod && p.IfaceMTU > 0:
			podIface = max(podIface, p.IfaceMTU)
		}
	}
	best := minNode - s.overhead()
	if minNode == 0 || podIface == 0 || podIface+WastefulMarginB > best {
		return
	}
	s.add(model.Finding{
		ID: MTUWasteful, Severity: Info, Title: fmt.Sprintf("Pod MTU %d could be %d", podIface, best),
		Summary:  fmt.Sprintf("Every node path carries %d bytes; with %s's overhead Pods could use %d instead of %d: fewer packets for the same data.", minNode, s.ev.Network.Backend, best, podIface),
		Evidence: []string{fmt.Sprintf("smallest node-to-node path MTU %d, Pod interface MTU %d", minNode, podIface)},
		Remedy:   s.mtuRemedy(best, "", 0),
	}, nil)
}

// tcpBlocked: UDP echoes cross, TCP handshakes do not: a filter on TCP, or
// a stateful firewall or router that sees only one direction of each
// connection (asymmetric routing: the SYN one way, the SYN-ACK another,
// which arrives as "invalid"). Kubernetes and nearly every application
// need TCP between these nodes.
func tcpBlocked(s *state) {
	blocked := s.pairs(model.LayerNode, func(p model.Pair) bool { return tcpFails(p) && !s.isExplained(p) })
	blocked = append(blocked, s.pairs(model.LayerPod, func(p model.Pair) bool { return tcpFails(p) && !s.isExplained(p) })...)
	if len(blocked) == 0 {
		return
	}
	nodes := Localize(blocked, s.ev.Pairs.All())
	var ev []string
	for _, p := range blocked {
		icmp := "ICMP echoes not measured"
		if p.ICMPLossPct != nil {
			icmp = fmt.Sprintf("%.0f%% of ICMP echoes lost", *p.ICMPLossPct)
		}
		ev = append(ev, fmt.Sprintf("%s %s → %s: UDP echoes answered, %s of %s failed, %s", p.Layer, p.From, p.To, count(p.TCPConnectTried, "TCP handshake"), map[bool]string{true: "it", false: "them all"}[p.TCPConnectTried == 1], icmp))
	}
	s.add(model.Finding{
		ID: TCPBlocked, Severity: Error, Title: "TCP fails while UDP passes " + where(nodes),
		Summary: "UDP crosses between these nodes, TCP connections do not: a rule that drops TCP, or a stateful firewall or router that sees only one direction of each connection (the answer comes back another way, asymmetric routing, and is dropped as invalid). The API server, kubelets and applications all need TCP.",
		Nodes:   nodes, Pairs: refs(blocked), Evidence: capLines(ev, maxEvidence),
		Remedy: &model.Remedy{Summary: "Trace the path both ways (do the requests and the answers take the same routers?), and look for a stateful firewall on it: route both directions through it, or let it accept what it did not see open (conntrack: ct state invalid).",
			Commands: []string{"traceroute -n <peer address>   # from each end", "nft list ruleset | grep -n 'ct state invalid'   # on the routers and firewalls between"}},
	}, blocked)
}

// tcpFails: UDP echoes came back with little loss, and every TCP
// handshake tried failed. On a lossy path a few handshakes can all be
// unlucky: that is packet loss, not TCP blocked.
func tcpFails(p model.Pair) bool {
	return p.Known() && p.Reachable && !lossy(p) && p.TCPConnectTried > 0 && p.TCPConnectMs == nil
}

// icmpFiltered: ICMP echo is blocked while UDP passes: not a partition,
// but ping-based checks will mislead, and ICMP errors that PMTU discovery
// needs may be dropped too.
func icmpFiltered(s *state) {
	filtered := s.pairs("", func(p model.Pair) bool {
		// UDP echoes lost too: five lost ICMP echoes are loss, not a filter.
		// UDP and TCP must both pass for ICMP alone to be the filtered one.
		return p.Reachable && p.ICMPLossPct != nil && *p.ICMPLossPct == 100 && !lossy(p) && !s.isExplained(p) && (p.TCPConnectTried == 0 || p.TCPConnectMs != nil)
	})
	if len(filtered) == 0 {
		return
	}
	nodes := Localize(filtered, s.ev.Pairs.All())
	s.add(model.Finding{
		ID: ICMPFiltered, Severity: Info, Title: "ICMP is filtered " + where(nodes),
		Summary:  "ping fails on these paths while UDP and TCP pass: the network is up, ICMP is dropped. Ping-based checks will mislead; if 'fragmentation needed' is dropped too, path MTU discovery cannot work.",
		Nodes:    nodes,
		Pairs:    refs(filtered),
		Evidence: []string{fmt.Sprintf("%d pairs: every ICMP echo lost, UDP echoes answered", len(filtered))},
	}, nil)
}

// ipPoolMTUIgnored: an IPPool carries an `mtu` field, as some articles
// suggest. No Calico release has one: the API server prunes it (or a strict
// kubectl refuses it) and nothing changes, which misleads whoever set it.
func ipPoolMTUIgnored(s *state) {
	if len(s.ev.IPPoolMTUs) == 0 {
		return
	}
	var ev []string
	names := slices.Sorted(maps.Keys(s.ev.IPPoolMTUs))
	for _, n := range names {
		ev = append(ev, fmt.Sprintf("IPPool %s: mtu %d (in the object or in kubectl's last-applied annotation)", n, s.ev.IPPoolMTUs[n]))
	}
	r := s.mtuRemedy(0, "", 0)
	r.Summary = "Remove mtu from the IPPool (it does nothing) and set the MTU where Calico reads it — Kubespray: calico_mtu; operator: the Installation's spec.calicoNetwork.mtu; manifest: veth_mtu in calico-config."
	r.Commands = nil
	s.add(model.Finding{
		ID: IPPoolMTUIgnored, Severity: Warning, Title: "IPPool mtu is ignored: " + strings.Join(names, ", "),
		Summary:  "Calico's IPPool has no mtu field: setting it changes nothing, so the MTU you think you set is not the one in use.",
		Evidence: ev, Remedy: r,
	}, nil)
}
