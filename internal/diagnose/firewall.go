package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"podpath/internal/model"
)

// drops lists node n's firewall rules that drop traffic for need.
func (s *state) drops(n, need string) []model.FirewallDrop {
	f := s.ev.Facts[n]
	if f == nil {
		return nil
	}
	var out []model.FirewallDrop
	for _, d := range f.Firewall.Drops {
		if sure, perhaps := d.Stops(need); (sure || perhaps) && !randomDrop(d) {
			out = append(out, d)
		}
	}
	return out
}

// randomDrop: a rule that drops a share of what it sees, at random or
// above a rate. That is loss (packet-loss cites it), not a path blocked.
func randomDrop(d model.FirewallDrop) bool {
	return strings.Contains(d.Rule, "numgen random") || strings.Contains(d.Rule, "limit")
}

// anyCut reports whether any pair is cut outright: a possible drop needs
// that, not a stalled transfer, to be the cause of anything.
func anyCut(pairs []model.Pair) bool { return slices.ContainsFunc(pairs, cut) }

// describe renders what drops need's traffic on node n: where, the rule
// or policy, whether only perhaps, and which of that traffic.
func describe(n string, ds []model.FirewallDrop, need string) []string {
	var out []string
	for _, d := range ds {
		cond := ""
		if sure, _ := d.Stops(need); !sure {
			cond = " (perhaps: it, or a rule before it, tests what podpath cannot know, such as the far end's address)"
			if d.Family == "netdev" {
				cond = " (perhaps: podpath does not know which device this netdev chain is bound to)"
			}
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
	model.NeedVXLAN: "VXLAN", model.NeedBGP: "BGP", model.NeedIPIP: "IPIP", model.NeedWireGuard: "WireGuard",
	model.NeedICMPFragNeeded: "ICMP fragmentation-needed", model.NeedICMP: "ICMP echoes", model.NeedPodTraffic: "Pod traffic",
	model.NeedDNS: "DNS",
}

// certain splits a node's drops for a need into those that stop it for
// sure and those that may. A possible drop is a finding only where the
// traffic it may stop fails.
func certain(ds []model.FirewallDrop, need string) (sure, maybe []model.FirewallDrop) {
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
	needs := []string{model.NeedPodTraffic}
	switch s.ev.Network.Backend {
	case "bgp":
		needs = append(needs, model.NeedBGP)
	case "ipip":
		needs = append(needs, model.NeedBGP, model.NeedIPIP)
	case "wireguard":
		needs = append(needs, model.NeedWireGuard)
	}
	what := map[string]string{model.NeedBGP: "BGP (TCP 179)", model.NeedIPIP: "IPIP (IP protocol 4)",
		model.NeedWireGuard: "WireGuard (UDP 51820/51821)", model.NeedPodTraffic: "Pod traffic between nodes"}
	for _, n := range s.ev.Nodes {
		for _, need := range needs {
			ds := s.drops(n, need)
			failing, explains := s.failingPodPairsOf(n), s.podPairsOf(n)
			if need == model.NeedBGP {
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
			if sure, _ := certain(ds, need); len(ds) == 0 || (len(sure) == 0 && !anyCut(failing)) {
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
			if need == model.NeedPodTraffic {
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
func podTrafficDrop(s *state, n string, ds []model.FirewallDrop) (title, summary string, r *model.Remedy) {
	d := ds[0]
	cidr := s.ev.Network.PodCIDR
	if cidr == "" {
		cidr = "<Pod CIDR>"
	}
	table := d.Family + " " + d.Table
	if strings.Contains(d.Family, "iptables-legacy") {
		table = "iptables-legacy " + d.Table
	}
	// An IPv6 Pod network is matched by ip6tables and nft's ip6.
	ipt, nftAddr := "iptables", "ip"
	if p, err := netip.ParsePrefix(cidr); err == nil && p.Addr().Is6() {
		ipt, nftAddr = "ip6tables", "ip6"
	}
	if d.Policy {
		title = fmt.Sprintf("%s's %s chain %s drops Pod traffic by its policy", n, table, d.Chain)
		summary = fmt.Sprintf("Pod traffic that %s forwards, to its Pods from other nodes and back, reaches the end of %s %s, whose policy is drop: nothing before it accepts the Pod network. Docker sets FORWARD's policy to drop this way.", n, table, d.Chain)
	} else {
		title = fmt.Sprintf("A firewall rule on %s drops Pod traffic between nodes", n)
		summary = fmt.Sprintf("%s drops Pod traffic it forwards, to its Pods from other nodes and back: %s.", n, d.Rule)
	}
	r = &model.Remedy{
		Summary: fmt.Sprintf("Accept the Pod network (%s) in that chain before its policy, on %s: on a Docker host in DOCKER-USER, which Docker leaves for this; or give the chain an accept policy if nothing relies on it.", cidr, n),
		Commands: []string{
			fmt.Sprintf("%s -I DOCKER-USER -s %s -j ACCEPT && %s -I DOCKER-USER -d %s -j ACCEPT   # on %s, a Docker host", ipt, cidr, ipt, cidr, n),
			fmt.Sprintf("nft insert rule %s %s %s %s saddr %s accept; nft insert rule %s %s %s %s daddr %s accept   # on %s, any nftables host", d.Family, d.Table, d.Chain, nftAddr, cidr, d.Family, d.Table, d.Chain, nftAddr, cidr, n),
		},
	}
	if strings.Contains(d.Family, "iptables-legacy") {
		// The legacy tables are not nftables': neither nft nor the
		// iptables-nft that Debian's iptables runs can change them.
		r.Commands = []string{fmt.Sprintf("%s-legacy -I %s 1 -s %s -j ACCEPT && %s-legacy -I %s 1 -d %s -j ACCEPT   # on %s (DOCKER-USER instead of %s on a Docker host)", ipt, d.Chain, cidr, ipt, d.Chain, cidr, n, d.Chain)}
	}
	return title, summary, r
}
