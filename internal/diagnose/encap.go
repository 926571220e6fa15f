package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"podpath/internal/model"
)

// encapBlocked: VXLAN (UDP 4789) is dropped at a node that otherwise answers.
func encapBlocked(s *state) {
	if s.ev.Network.Backend != "vxlan" && s.ev.Network.Backend != "" {
		return
	}
	for _, n := range s.ev.Nodes {
		ds := s.drops(n, model.NeedVXLAN)
		failing := s.failingPodPairsOf(n)
		if sure, _ := certain(ds, model.NeedVXLAN); len(ds) == 0 || (len(sure) == 0 && !anyCut(failing)) {
			continue
		}
		nodePairs := s.pairsOf(model.LayerNode, n, model.Pair.Known)
		nodeOK := len(nodePairs) > 0 && !slices.ContainsFunc(nodePairs, func(p model.Pair) bool { return !p.Reachable })
		ev := describe(n, ds, model.NeedVXLAN)
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
			Summary: fmt.Sprintf("A firewall rule on %s drops VXLAN, so Pods on %s cannot reach Pods on %s or be reached from them%s.", n, n, others, map[bool]string{true: ", while the nodes themselves talk", false: ""}[nodeOK]),
			Nodes:   []string{n}, Pairs: refs(failing), Evidence: ev,
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Allow UDP 4789 between the cluster's nodes on %s (host firewall and any cloud security group).", n),
				Commands: []string{"nft list ruleset   # on " + n + ": remove or narrow the rule above"}},
		}, s.podPairsOf(n))
	}
}

// vtep is a node's VXLAN endpoint, from its facts.
type vtep struct {
	node      string
	port, vni int
	mac, addr string // the device's MAC and its address of the device's family (the VTEP IP)
	vx        *model.VXLAN
}

// vtepOf reads n's VTEP on device: vxlan.calico with an IPv4 address,
// or vxlan-v6.calico with an IPv6 one (six).
func vtepOf(n string, f *model.Facts, device string, six bool) *vtep {
	for _, l := range f.Links {
		if l.Name != device || l.VXLAN == nil {
			continue
		}
		v := &vtep{node: n, port: l.VXLAN.Port, vni: l.VXLAN.VNI, mac: strings.ToLower(l.MAC), vx: l.VXLAN}
		for _, a := range l.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Unmap().Is6() == six && !p.Addr().IsLinkLocalUnicast() {
				v.addr = p.Addr().String()
			}
		}
		return v
	}
	return nil
}

// ownsAddress reports whether a is one of f's addresses.
func ownsAddress(f *model.Facts, a string) bool {
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
	dev := s.tunnelDevice()
	var vteps []*vtep
	for _, n := range s.ev.Nodes {
		if f := s.ev.Facts[n]; f != nil {
			if v := vtepOf(n, f, dev, s.v6()); v != nil {
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
				bad[v.node] = append(bad[v.node], fmt.Sprintf("%s: %s uses %s %d, the other nodes %d", v.node, dev, setting, x, mode))
			} else if 2*best <= len(vteps) {
				bad[v.node] = append(bad[v.node], fmt.Sprintf("%s: %s uses %s %d; the nodes do not agree on one", v.node, dev, setting, x))
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
					note(m.node, v.node, fmt.Sprintf("%s resolves %s's VTEP %s to MAC %s; %s's %s has MAC %s", m.node, v.node, v.addr, nb.MAC, v.node, dev, v.mac))
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
					Commands: []string{fmt.Sprintf("ip -d link show %s; bridge fdb show dev %s; %sneigh show dev %s   # on %s and one other node", dev, dev, s.ipCmd(), dev, n),
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
				Remedy: &model.Remedy{Summary: fmt.Sprintf("Restart calico-node on %s so Felix programs its FDB and neighbour entries again from the nodes' current addresses; if they come back wrong, the other nodes' Calico addresses (%s) are what is stale.", n, calicoAddrAnnotations(s.v6())),
					Commands: []string{fmt.Sprintf("bridge fdb show dev %s; %sneigh show dev %s   # on %s", dev, s.ipCmd(), dev, n), restart(n)}},
			}, pairs)
		}
	}
}

// calicoAddrAnnotations are the node annotations Felix programs the
// other nodes' VXLAN entries from, for the pass's family.
func calicoAddrAnnotations(v6 bool) string {
	if v6 {
		return "projectcalico.org/IPv6Address, IPv6VXLANTunnelAddr, VXLANTunnelMACAddrV6"
	}
	return "projectcalico.org/IPv4Address, IPv4VXLANTunnelAddr, VXLANTunnelMACAddr"
}
