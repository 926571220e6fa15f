package diagnose

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"podpath/internal/model"
)

// DNSFailing: a node's Pods cannot resolve names through the cluster DNS,
// over one transport or for one size of answer.
const DNSFailing = "dns-failing"

// dnsKind is one kind of question: transport and answer size.
type dnsKind struct{ transport, size string }

func (k dnsKind) String() string {
	if k.size == "large" {
		return "large answers over " + strings.ToUpper(k.transport)
	}
	return "small answers over " + strings.ToUpper(k.transport)
}

// dnsFails lists the kinds of question a DNS check failed, and how.
func dnsFails(p model.Pair) map[dnsKind]string {
	out := map[dnsKind]string{}
	for _, a := range p.DNS {
		if !a.OK() {
			out[dnsKind{a.Transport, a.Size}] = DNSFailure(a)
		}
	}
	return out
}

// DNSFailure says in a few words how a question failed.
func DNSFailure(a model.DNSAnswer) string {
	switch {
	case a.Error != "":
		return a.Error
	case a.Truncated:
		return fmt.Sprintf("truncated at %d bytes", a.Bytes)
	case a.Rcode != "NOERROR":
		return a.Rcode
	}
	return "no records"
}

// DNSOK: every question of a DNS check was answered.
func DNSOK(p model.Pair) bool { return len(p.DNS) > 0 && len(dnsFails(p)) == 0 }

// dnsServerLabel names a check's server as a reader knows it.
func dnsServerLabel(p model.Pair) string {
	if p.To == "" {
		return "the Service " + p.Service
	}
	return "CoreDNS Pod " + p.ToPod + " on " + p.To
}

// dnsFailing judges the cluster DNS checks. A CoreDNS Pod that fails a
// kind of question from every sender that asked it is its node's fault
// (a firewall in front of it, its path); a sender that fails a kind with
// every CoreDNS Pod that answers others is its own. A failure through the
// Service alone, where every Pod answers the same sender directly, is
// the sender's Service path. A failure an earlier finding explains (the
// MTU of a path, a node cut off, kube-proxy) is reported with it, as a
// warning: fixing that fixes DNS.
func dnsFailing(s *state) {
	var checks []model.Pair
	for _, p := range s.ev.DNS {
		if p.Measured() && len(p.DNS) > 0 {
			checks = append(checks, p)
		}
	}
	if !slices.ContainsFunc(checks, func(p model.Pair) bool { return !DNSOK(p) }) {
		return
	}
	var pending []dnsFinding
	// Who on other nodes asked each CoreDNS Pod what, with what result:
	// the Pod's own node reaches it without crossing the network.
	type podKind struct {
		pod  string
		kind dnsKind
	}
	okBy, failBy := map[podKind]int{}, map[podKind]int{}
	podNode := map[string]string{}
	for _, p := range checks {
		if p.To == "" || p.To == p.From {
			continue
		}
		podNode[p.ToPod] = p.To
		fails := dnsFails(p)
		for _, a := range p.DNS {
			k := podKind{p.ToPod, dnsKind{a.Transport, a.Size}}
			if _, bad := fails[k.kind]; bad {
				failBy[k]++
			} else {
				okBy[k]++
			}
		}
	}
	// Server side: a Pod that fails a kind from every other node that
	// asked it, two or more.
	serverBad := map[string][]dnsKind{}
	for pk, n := range failBy {
		if okBy[pk] == 0 && n >= 2 {
			serverBad[pk.pod] = append(serverBad[pk.pod], pk.kind)
		}
	}
	pods := slices.Sorted(maps.Keys(serverBad))
	for _, pod := range pods {
		kinds := sortKinds(serverBad[pod])
		n := podNode[pod]
		var ps []model.Pair
		for _, p := range checks {
			if p.ToPod == pod && failsAny(p, kinds) {
				ps = append(ps, p)
			}
		}
		pending = append(pending, dnsFinding{node: n, title: "towards CoreDNS Pod " + pod + " on " + n,
			where: "towards CoreDNS Pod " + pod + " on " + n + " from every other node that asked it",
			kinds: kinds, checks: ps, related: s.dnsRelated(kinds, n), server: pod})
	}
	// Sender side, and the Service path: what is left.
	serverFault := func(p model.Pair, k dnsKind) bool {
		return p.To != "" && slices.Contains(serverBad[p.ToPod], k)
	}
	bySender := map[string][]model.Pair{}
	for _, p := range checks {
		fails := dnsFails(p)
		left := false
		for k := range fails {
			if p.To == "" && anyServerBad(serverBad, k) {
				// Through the Service the flow went to one Pod of kube-proxy's
				// choice: to a failing one, it failed for that Pod's reason.
				continue
			}
			if !serverFault(p, k) {
				left = true
			}
		}
		if left {
			bySender[p.From] = append(bySender[p.From], p)
		}
	}
	for _, n := range s.ev.Nodes {
		ps := bySender[n]
		if len(ps) == 0 {
			continue
		}
		kindSet := map[dnsKind]bool{}
		direct, viaService := false, false
		for _, p := range ps {
			for k := range dnsFails(p) {
				if !serverFault(p, k) {
					kindSet[k] = true
				}
			}
			if p.To == "" {
				viaService = true
			} else {
				direct = true
			}
		}
		kinds := sortKinds(slices.Collect(func(yield func(dnsKind) bool) {
			for k := range kindSet {
				if !yield(k) {
					return
				}
			}
		}))
		if viaService && !direct {
			// Every CoreDNS Pod answers n directly: the Service path.
			where := "from " + n + "'s Pods through the Service, while every CoreDNS Pod answers them directly"
			pending = append(pending, dnsFinding{node: n, title: "from " + n + "'s Pods through the Service", where: where, kinds: kinds, checks: ps, serviceOnly: true,
				related: s.dnsServiceRelated(n)})
			continue
		}
		servers := map[string]bool{}
		for _, p := range ps {
			if p.To != "" {
				servers[p.To] = true
			}
		}
		related := s.dnsRelated(kinds, n)
		if related == "" {
			for m := range servers {
				if r := s.dnsRelated(kinds, m); r != "" {
					related = r
					break
				}
			}
		}
		pending = append(pending, dnsFinding{node: n, title: "from " + n + "'s Pods", where: "from " + n + "'s Pods", kinds: kinds, checks: ps, related: related})
	}
	for _, d := range mergeByNode(pending) {
		s.addDNS(d)
	}
}

// mergeByNode makes one finding of a node's: its CoreDNS Pod failing
// others, and its own Pods failing, are one story about that node.
func mergeByNode(ds []dnsFinding) []dnsFinding {
	var out []dnsFinding
	at := map[string]int{}
	for _, d := range ds {
		i, seen := at[d.node]
		if !seen {
			at[d.node] = len(out)
			out = append(out, d)
			continue
		}
		m := &out[i]
		m.title += " and " + d.title
		m.where += "; and " + d.where
		for _, k := range d.kinds {
			if !slices.Contains(m.kinds, k) {
				m.kinds = append(m.kinds, k)
			}
		}
		m.kinds = sortKinds(m.kinds)
		m.checks = append(m.checks, d.checks...)
		if d.related == "" {
			m.related = "" // a part nothing explains: the whole is its own
		}
		if m.server == "" {
			m.server = d.server
		}
		m.serviceOnly = m.serviceOnly && d.serviceOnly
	}
	return out
}

func anyServerBad(serverBad map[string][]dnsKind, k dnsKind) bool {
	for _, ks := range serverBad {
		if slices.Contains(ks, k) {
			return true
		}
	}
	return false
}

func failsAny(p model.Pair, kinds []dnsKind) bool {
	f := dnsFails(p)
	return slices.ContainsFunc(kinds, func(k dnsKind) bool { _, ok := f[k]; return ok })
}

func sortKinds(ks []dnsKind) []dnsKind {
	order := map[dnsKind]int{{"udp", "small"}: 0, {"tcp", "small"}: 1, {"udp", "large"}: 2, {"tcp", "large"}: 3}
	sort.Slice(ks, func(i, j int) bool { return order[ks[i]] < order[ks[j]] })
	return ks
}

// mtuFindings explain large answers lost while small ones pass.
var mtuFindings = []string{MTUBlackhole, MTUInconsistent, MTUAutodetect, UnderlayFragmentation}

// dnsRelated names the earlier finding that explains these failures on
// node n: an MTU finding for large answers only; any error naming n
// (a node cut off, a firewall, the tunnel) for the rest.
func (s *state) dnsRelated(kinds []dnsKind, n string) string {
	largeOnly := !slices.ContainsFunc(kinds, func(k dnsKind) bool { return k.size != "large" })
	for _, f := range s.findings {
		if !slices.Contains(f.Nodes, n) || f.ID == DNSFailing {
			continue
		}
		if largeOnly && slices.Contains(mtuFindings, f.ID) {
			return f.ID
		}
		if f.Severity == Error && !slices.Contains(mtuFindings, f.ID) {
			return f.ID
		}
	}
	return ""
}

// dnsServiceRelated names the Service finding on n that explains DNS
// failing through its Service.
func (s *state) dnsServiceRelated(n string) string {
	for _, f := range s.findings {
		if (f.ID == KubeProxyDown || f.ID == ServicePathFailing) && slices.Contains(f.Nodes, n) {
			return f.ID
		}
	}
	return ""
}

type dnsFinding struct {
	node        string
	title       string // where, in a few words
	where       string
	kinds       []dnsKind
	checks      []model.Pair
	related     string // the earlier finding that explains it
	server      string // the CoreDNS Pod at fault, when it is one
	serviceOnly bool
}

func (s *state) addDNS(d dnsFinding) {
	words := make([]string, len(d.kinds))
	for i, k := range d.kinds {
		words[i] = k.String()
	}
	what := strings.Join(words, ", ")
	transports := map[string]bool{}
	sizes := map[string]bool{}
	for _, k := range d.kinds {
		transports[k.transport] = true
		sizes[k.size] = true
	}
	ev := dnsLines(d.checks)
	var summary string
	switch {
	case d.related != "":
		summary = fmt.Sprintf("Cluster DNS fails %s: %s. %s, reported above, explains it: fix that and DNS follows.", d.where, what, d.related)
	case d.serviceOnly:
		summary = fmt.Sprintf("Cluster DNS fails %s: %s. The DNAT to CoreDNS on %s (kube-proxy's rules for the cluster DNS Service) is what differs.", d.where, what, d.node)
	case len(d.kinds) == 1 && d.kinds[0] == dnsKind{"udp", "large"}:
		summary = fmt.Sprintf("Cluster DNS fails %s: large answers over UDP, while they come over TCP and small answers come over both. Answers larger than the path's MTU travel as IP fragments, and something on the way drops fragments (a firewall, a cloud network, a fragment-reassembly limit). Resolvers that offer at most 1,232 bytes (Go's, the DNS flag day's default) or no EDNS at all (glibc's, musl's by default) are told to retry over TCP and do not notice; those offering more (CoreDNS forwarding for its clients, dig, some JVMs) lose the answer.", d.where)
	case len(sizes) == 1 && sizes["large"]:
		summary = fmt.Sprintf("Cluster DNS fails %s: %s, while small answers pass. Answers larger than the path carries in one packet are lost: an MTU or IP-fragment problem on the path (UDP answers over the MTU arrive as IP fragments; a firewall dropping fragments loses them).", d.where, what)
	case len(transports) == 1 && transports["udp"]:
		summary = fmt.Sprintf("Cluster DNS fails %s: %s, while TCP to the same servers works: UDP port 53 is dropped on the way (a firewall rule or a network policy). Pods' resolvers ask over UDP first: their lookups time out.", d.where, what)
	case len(transports) == 1 && transports["tcp"]:
		summary = fmt.Sprintf("Cluster DNS fails %s: %s, while UDP works: TCP port 53 is dropped on the way. Answers too large for UDP (truncated, retried over TCP) fail.", d.where, what)
	default:
		summary = fmt.Sprintf("Cluster DNS fails %s: %s.", d.where, what)
	}
	if d.server != "" {
		ev = append(ev, s.port53Drops(d.node)...)
	}
	f := model.Finding{ID: DNSFailing, Severity: Error, Nodes: []string{d.node},
		Title:   fmt.Sprintf("Cluster DNS fails %s: %s", d.title, what),
		Summary: summary, Evidence: capLines(ev, maxEvidence)}
	if d.related != "" {
		f.Severity = Warning
		f.Title += " (explained by " + d.related + ")"
	} else if len(d.kinds) == 1 && d.kinds[0] == (dnsKind{"udp", "large"}) {
		f.Severity = Warning // most resolvers take such answers over TCP
	}
	for _, p := range d.checks {
		f.Pairs = append(f.Pairs, model.PairRef{From: p.From, To: p.To, Layer: p.Layer})
	}
	remedy := &model.Remedy{Summary: "Follow " + d.related + "'s remedy."}
	if d.related == "" {
		switch {
		case d.serviceOnly:
			remedy = &model.Remedy{Summary: "Compare " + d.node + "'s rules for the cluster DNS Service with a working node's, and restart kube-proxy there.",
				Commands: []string{"kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide --field-selector spec.nodeName=" + d.node}}
		case d.server != "":
			remedy = &model.Remedy{Summary: "Find what drops port 53 towards " + d.server + " on " + d.node + ": the node's firewall (nft list ruleset; iptables-save), a NetworkPolicy selecting CoreDNS, or a cloud security group; allow UDP and TCP 53 to the Pod network.",
				Commands: []string{"kubectl -n kube-system get pod " + d.server + " -o wide", "nft list ruleset | grep -n 'dport 53'   # on " + d.node, "kubectl get networkpolicy -A"}}
		default:
			remedy = &model.Remedy{Summary: "Find what drops DNS between " + d.node + "'s Pods and CoreDNS: the node's firewall, a NetworkPolicy, the path's MTU for large answers.",
				Commands: []string{"nft list ruleset | grep -n 'dport 53'   # on " + d.node, "kubectl get networkpolicy -A"}}
		}
	}
	f.Remedy = remedy
	s.add(f, nil)
}

// port53Drops are node n's firewall rules that stop DNS to or from its
// Pods for certain, as evidence beside the measured failures; a rule that
// only may (kube-proxy's reject of ClusterIPs without endpoints, a set
// podpath cannot read) would point the reader the wrong way.
func (s *state) port53Drops(n string) []string {
	sure, _ := certain(s.drops(n, model.NeedDNS), model.NeedDNS)
	return describe(n, sure, model.NeedDNS)
}

// dnsLines is a line per failing DNS check: who asked whom what, and how
// it failed.
func dnsLines(ps []model.Pair) []string {
	var out []string
	for _, p := range ps {
		var bad []string
		for _, a := range p.DNS {
			if !a.OK() {
				size := a.Size
				if a.Want > 0 {
					size = fmt.Sprintf("%s (%d bytes)", a.Size, a.Want)
				}
				bad = append(bad, fmt.Sprintf("%s %s: %s", strings.ToUpper(a.Transport), size, DNSFailure(a)))
			}
		}
		if len(bad) == 0 {
			continue
		}
		line := fmt.Sprintf("%s → %s: %s", orWord(p.FromPod, p.From), dnsServerLabel(p), strings.Join(bad, "; "))
		if p.Retried != "" {
			line += " (" + p.Retried + ")"
		}
		out = append(out, line)
	}
	return out
}
