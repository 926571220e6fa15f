// Package diagnose turns evidence (probe results, host facts, the
// configured network) into findings with stable IDs, root causes ranked
// above the symptoms they explain. It is pure: no I/O, no clock.
package diagnose

import (
	"iter"
	"slices"
	"sort"

	"podpath/internal/model"
)

// Evidence is everything a diagnosis may look at.
type Evidence struct {
	Nodes     []string          // every node of the run, in inventory order
	Addresses map[string]string // node → underlay address, from the inventory
	Network   model.Network     // what the cluster is configured with (backend, Pod MTU)
	Pairs     model.Pairs       // one per ordered pair and layer
	// Services are the Service checks (Report.Services): Pod agent →
	// ClusterIP → another node's Pod agent.
	Services []model.Pair
	// DNS are the cluster DNS checks (Report.DNS).
	DNS []model.Pair
	// Family is model.FamilyIPv6 when Pairs are a dual-stack cluster's
	// IPv6 pass (Addresses then the nodes' IPv6 addresses): the tunnel is
	// vxlan-v6.calico and the overhead IPv6's. WithIPv6 merges its
	// findings with the first pass's.
	Family string
	Facts  map[string]*model.Facts // by node; missing when the node's agent did not answer
	// FactErrors says why a node's facts are missing.
	FactErrors map[string]string
	// IPPoolMTUs are IPPools (by name) that carry an `mtu` field, from the
	// object or kubectl's last-applied annotation (Kubernetes source only).
	IPPoolMTUs map[string]int
	// NotReady are nodes the cluster reports NotReady (node → why): they
	// get no agent and are not probed (Kubernetes source only).
	NotReady map[string]string
	// Cordoned are nodes marked unschedulable.
	Cordoned []string
	// CalicoPods are the calico-node Pods by node, as the API server reports
	// them (Kubernetes source only).
	CalicoPods map[string]CalicoPod
}

// CalicoPod is a node's calico-node Pod.
type CalicoPod struct {
	Name      string   // namespace/name
	Ready     bool     // its Ready condition
	LogErrors []string // recent log lines matching known errors
}

// Severities, as the rules say them (model's).
const (
	Error   = model.SeverityError
	Warning = model.SeverityWarning
	Info    = model.SeverityInfo
)

// Finding IDs (DESIGN.md: stable names, add more, never rename).
const (
	MTUBlackhole        = "mtu-blackhole"
	MTUInconsistent     = "mtu-inconsistent"
	MTUWasteful         = "mtu-wasteful"
	EncapBlocked        = "encap-blocked"
	EncapMismatch       = "encap-mismatch"
	BGPSessionDown      = "bgp-session-down"
	BGPSessionStarting  = "bgp-session-starting"
	RouteMissing        = "route-missing"
	IPForwardDisabled   = "ip-forward-disabled"
	RPFilterStrict      = "rp-filter-strict"
	NodeUnreachable     = "node-unreachable"
	PodNetworkPartition = "pod-network-partition"
	CalicoNodeUnhealthy = "calico-node-unhealthy"
	KernelModuleMissing = "kernel-module-missing"
	HighLatency         = "high-latency"
	PacketLoss          = "packet-loss"
	ConntrackFull       = "conntrack-full"
	IPPoolMTUIgnored    = "ippool-mtu-ignored"
	ICMPFiltered        = "icmp-filtered"
	FirewallDrop        = "firewall-drop"
	NodeNotReady        = "node-not-ready"
	NodeCordoned        = "node-cordoned"
	ResultsUnknown      = "results-unknown"
	// UnderlayFragmentation: Pod packets cross the underlay only as IP fragments.
	UnderlayFragmentation = "underlay-fragmentation"
	// NodeNetworkPartition: nodes that are up cannot reach each other host to host.
	NodeNetworkPartition = "node-network-partition"
	// TCPBlocked: UDP crosses between nodes, TCP does not.
	TCPBlocked = "tcp-blocked"
	// KubeProxyDown: Services fail from a node whose kube-proxy is not
	// running or reports itself unhealthy; direct Pod traffic works.
	KubeProxyDown = "kube-proxy-down"
	// ServicePathFailing: traffic through a Service fails where direct
	// Pod traffic to the same backend works.
	ServicePathFailing = "service-path-failing"
)

// Rule is one check of the doctor: the finding ID it reports, the
// severities it may give it (docs/findings.md's table lists the same, a
// test compares them), and the check.
type Rule struct {
	ID         string
	Severities []string
	run        func(*state)
}

// Rules is every rule the doctor runs, in the order root causes rank: a
// finding earlier in the list explains symptoms of later ones, and is
// listed first. docs/findings.md's table follows this order.
var Rules = []Rule{
	{NodeNotReady, []string{Warning}, nodeNotReady},
	{NodeUnreachable, []string{Error}, nodeUnreachable},
	{FirewallDrop, []string{Error}, firewallDrop},
	{EncapBlocked, []string{Error}, encapBlocked},
	{EncapMismatch, []string{Error}, encapMismatch},
	{BGPSessionDown, []string{Error}, bgpSessionDown},
	{BGPSessionStarting, []string{Warning}, bgpSessionStarting},
	{IPForwardDisabled, []string{Error}, ipForwardDisabled},
	{RPFilterStrict, []string{Error, Warning}, rpFilterStrict},
	{RouteMissing, []string{Error}, routeMissing},
	{NodeNetworkPartition, []string{Error}, nodeNetworkPartition},
	{MTUAutodetect, []string{Error, Warning}, mtuAutodetect},
	{MTUInconsistent, []string{Error, Warning}, mtuInconsistent},
	{MTUBlackhole, []string{Error, Warning}, mtuBlackhole},
	{UnderlayFragmentation, []string{Warning}, underlayFragmentation},
	{PodNetworkPartition, []string{Error}, podNetworkPartition},
	{TCPBlocked, []string{Error}, tcpBlocked},
	{KubeProxyDown, []string{Error}, serviceRule(KubeProxyDown)},
	{ServicePathFailing, []string{Error, Warning}, serviceRule(ServicePathFailing)},
	{DNSFailing, []string{Error, Warning}, dnsFailing},
	{KernelModuleMissing, []string{Error}, kernelModuleMissing},
	{CalicoNodeUnhealthy, []string{Error}, calicoNodeUnhealthy},
	{ConntrackFull, []string{Warning}, conntrackFull},
	{PacketLoss, []string{Warning}, packetLoss},
	{HighLatency, []string{Warning}, highLatency},
	{MTUWasteful, []string{Info}, mtuWasteful},
	{IPPoolMTUIgnored, []string{Warning}, ipPoolMTUIgnored},
	{ICMPFiltered, []string{Info}, icmpFiltered},
	{ResultsUnknown, []string{Warning}, resultsUnknown},
	{NodeCordoned, []string{Info}, nodeCordoned},
}

// Catalogue is the rules' IDs in rank order (JUnit's test cases).
var Catalogue = func() []string {
	ids := make([]string, len(Rules))
	for i, r := range Rules {
		ids[i] = r.ID
	}
	return ids
}()

func rank(id string) int {
	if i := slices.Index(Catalogue, id); i >= 0 {
		return i
	}
	return len(Catalogue)
}

func severityRank(s string) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// sortFindings puts errors first, then root causes before symptoms.
func sortFindings(fs []model.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if a, b := severityRank(fs[i].Severity), severityRank(fs[j].Severity); a != b {
			return a < b
		}
		return rank(fs[i].ID) < rank(fs[j].ID)
	})
}

// pairKey identifies an ordered pair on a layer.
type pairKey struct {
	layer    model.Layer
	from, to string
}

func keyOf(p model.Pair) pairKey { return pairKey{p.Layer, p.From, p.To} }

func ref(p model.Pair) model.PairRef {
	return model.PairRef{From: p.From, To: p.To, Layer: p.Layer, Family: p.Family}
}

// Localize names the nodes a set of pairs has in common: a node that is an
// end of every pair, or of all of its own pairs in the set when the set
// covers every pair of that node. Empty when the pairs share no node (the
// problem is everywhere, or scattered).
func Localize(affected []model.Pair, all iter.Seq2[int, model.Pair]) []string {
	if len(affected) == 0 {
		return nil
	}
	count := map[string]int{}
	total := map[string]int{}
	layers := map[model.Layer]bool{}
	for _, p := range affected {
		layers[p.Layer] = true
		count[p.From]++
		count[p.To]++
	}
	for _, p := range all {
		if layers[p.Layer] {
			total[p.From]++
			total[p.To]++
		}
	}
	// A node in every affected pair.
	var inAll []string
	for n, c := range count {
		if c == len(affected) {
			inAll = append(inAll, n)
		}
	}
	if len(inAll) == 1 || (len(inAll) == 2 && len(affected) <= 2) {
		sort.Strings(inAll)
		return inAll
	}
	// Otherwise the nodes all of whose pairs are affected, when they are a
	// minority (else it is the whole cluster).
	var whole []string
	for n, c := range count {
		if c == total[n] {
			whole = append(whole, n)
		}
	}
	sort.Strings(whole)
	if len(whole) > 0 && 2*len(whole) < len(total) {
		return whole
	}
	return nil
}

func nodesOrAll(nodes []string) string {
	if len(nodes) == 0 {
		return "all nodes"
	}
	if len(nodes) == 1 {
		return nodes[0]
	}
	out := nodes[0]
	for _, n := range nodes[1:] {
		out += ", " + n
	}
	return out
}

func refs(ps []model.Pair) []model.PairRef {
	var out []model.PairRef
	for _, p := range ps {
		out = append(out, ref(p))
	}
	return out
}

func involves(p model.Pair, nodes []string) bool {
	return slices.Contains(nodes, p.From) || slices.Contains(nodes, p.To)
}

// cut reports a measured pair that nothing crossed: no UDP echo and no
// TCP handshake, and no host that said nothing listens.
func cut(p model.Pair) bool { return p.Known() && !p.Reachable && p.TCPConnectMs == nil }
