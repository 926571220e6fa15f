// Package model is podpath's shared vocabulary: layers, pairs, findings and
// the report they make up (DESIGN.md, "Report JSON").
package model

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Layer is where a pair was measured.
type Layer string

// Severities of a finding: an error is a fault to fix, a warning a risk or
// an unknown, info a note.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

const (
	LayerNode Layer = "node" // host network to host network: the underlay
	LayerPod  Layer = "pod"  // Pod network to Pod network: the overlay
	// LayerService: a Pod agent through a Service (ClusterIP) to another
	// node's Pod agent, the Service's one backend (Report.Services).
	LayerService Layer = "service"
	// LayerNodePort: a node's host agent to another node's address and a
	// Service's NodePort, whose one backend is a Pod agent on that node.
	LayerNodePort Layer = "nodeport"
	// LayerDNS: a node's Pod agent asking the cluster DNS, through its
	// Service (To empty, Service set) or one of its Pods directly (To that
	// Pod's node, ToPod the Pod) (Report.DNS).
	LayerDNS Layer = "dns"
)

// Families of a dual-stack run's pairs and findings. A pair's Family is
// empty on the addresses the inventory lists first (IPv4 on most
// clusters, IPv6 on an IPv6-only one), FamilyIPv6 on the second, IPv6,
// addresses of a dual-stack cluster's nodes and Pods: they are probed in
// a pass of their own and diagnosed apart, since IPv6 has its own
// tunnel device, MTU and overhead.
const FamilyIPv6 = "ipv6"

// FamilyName is how a report says family: "IPv6", or "" for the first
// addresses.
func FamilyName(family string) string {
	if family == FamilyIPv6 {
		return "IPv6"
	}
	return ""
}

// ParseLayers reads a comma-separated list of layers (node, pod), each
// once in the order first given: "node,node" is the node layer once.
func ParseLayers(list string) ([]Layer, error) {
	var layers []Layer
	for _, l := range strings.Split(list, ",") {
		layer := Layer(strings.TrimSpace(l))
		if layer != LayerNode && layer != LayerPod {
			return nil, fmt.Errorf("layer %q: use node, pod or node,pod", l)
		}
		if !slices.Contains(layers, layer) {
			layers = append(layers, layer)
		}
	}
	return layers, nil
}

// Report is the JSON document every command's -o json prints.
type Report struct {
	Findings []Finding `json:"findings"`
	Pairs    Pairs     `json:"pairs"`
	// Services are the Service checks (a cluster's run only): from a
	// node's Pod agent through a Service's ClusterIP whose one backend is
	// another node's Pod agent, so the sending node's kube-proxy does the
	// DNAT (layer service); and from a node's host to another node's
	// address and NodePort, a Pod there the backend, so that node's
	// kube-proxy does it (layer nodeport).
	Services []Pair `json:"services,omitempty"`
	// DNS are the cluster DNS checks (a cluster's run only): each node's
	// Pod agent asks the cluster DNS Service and every CoreDNS Pod a small
	// and a large question over UDP and over TCP (Pair.DNS).
	DNS        []Pair     `json:"dns,omitempty"`
	Nodes      []NodeInfo `json:"nodes"`
	DurationMs float64    `json:"durationMs"`
	Config     *Config    `json:"config,omitempty"`
}

// Config is the network configuration a run read from the cluster (or was
// given by the inventory), and the nodes it left out.
type Config struct {
	Source    string   `json:"source"` // cluster | inventory
	CNI       string   `json:"cni,omitempty"`
	Install   string   `json:"install,omitempty"` // operator | manifest | kubespray
	Backend   string   `json:"backend,omitempty"`
	PodMTU    int      `json:"podMTU,omitempty"` // 0: auto-detected or unknown
	PodCIDR   string   `json:"podCIDR,omitempty"`
	Sources   []string `json:"sources,omitempty"`   // where each value was read
	Namespace string   `json:"namespace,omitempty"` // the run's agents (removed afterwards)
	NotReady  []string `json:"notReady,omitempty"`  // not probed
	Cordoned  []string `json:"cordoned,omitempty"`
	// LogErrors are recent calico-node log lines matching known errors, by node.
	LogErrors map[string][]string `json:"calicoLogErrors,omitempty"`
	Notes     []string            `json:"notes,omitempty"`
}

// Finding is a diagnosis with its evidence and remedy.
type Finding struct {
	ID       string    `json:"id"`
	Severity string    `json:"severity"` // error | warning | info
	Title    string    `json:"title"`
	Summary  string    `json:"summary"`
	Nodes    []string  `json:"nodes,omitempty"`
	Pairs    []PairRef `json:"pairs,omitempty"`
	Evidence []string  `json:"evidence,omitempty"`
	Remedy   *Remedy   `json:"remedy,omitempty"`
	// Family is "ipv6" when the finding rests on a dual-stack cluster's
	// IPv6 pairs (Pair.Family); remedy.mtu is then IPv6's.
	Family string `json:"family,omitempty"`
}

// PairRef names a pair in a finding.
type PairRef struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Layer  Layer  `json:"layer"`
	Family string `json:"family,omitempty"`
}

// Remedy is what to change.
type Remedy struct {
	Summary  string   `json:"summary"`
	MTU      int      `json:"mtu,omitempty"`
	Commands []string `json:"commands,omitempty"`
}

// Percentiles of a round-trip series, in milliseconds.
type Percentiles struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Pair is one ordered pair on one layer: from's agent towards to's.
type Pair struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Layer   Layer  `json:"layer"`
	FromPod string `json:"fromPod,omitempty"`
	ToPod   string `json:"toPod,omitempty"`
	// Family is "ipv6" on a dual-stack cluster's IPv6 pairs, empty on the
	// first addresses' (FamilyIPv6).
	Family string `json:"family,omitempty"`
	// Service, on a Service check, is the Service the probes went to
	// (namespace/name ClusterIP:port); To is its backend's node.
	Service   string `json:"service,omitempty"`
	Reachable bool   `json:"reachable"`
	// Unknown, when set, says why nothing of this pair is known: the
	// controller could not ask From's agent, or lost its answer. Such a
	// pair is not reachable and not a failure either: findings never rest
	// on it.
	Unknown string `json:"unknown,omitempty"`
	// NoAgent: From's UDP probes got no answer, but To's host answered
	// otherwise: ICMP port unreachable, or (host to host) an ICMP echo or
	// its kernel completing a TCP handshake. The host is there, its agent
	// does not answer (not running, stopped, or a firewall on its port).
	NoAgent bool `json:"noAgent,omitempty"`
	// PathMTU is the largest IP packet (bytes, headers included) that
	// crossed from From to To; 0 when not measured.
	PathMTU      int    `json:"pathMTU,omitempty"`
	PathMTULimit string `json:"pathMTULimit,omitempty"` // local | icmp | silent | none
	IfaceMTU     int    `json:"ifaceMTU,omitempty"`     // the sender's interface MTU towards the peer
	LocalMTU     int    `json:"localMTU,omitempty"`     // set when the sender's own interface was the limit
	ICMPMTU      int    `json:"icmpMTU,omitempty"`      // what a router reported, when ICMP came
	ICMPFrom     string `json:"icmpFrom,omitempty"`     // the router that reported ICMPMTU
	PMTUProbes   int    `json:"pmtuProbes,omitempty"`
	// Vanish says where packets above PathMTU stop, when they stop
	// silently: found with TTL-limited probes.
	Vanish *Location `json:"vanish,omitempty"`
	// FullSizeLost is the size (the sender's interface or route MTU) of
	// Don't-Fragment probes the cheap check sent and none crossed; 0 when
	// they crossed or were not sent. The size search, when it ran, says
	// more (PathMTU).
	FullSizeLost int `json:"fullSizeLost,omitempty"`
	// PathMTUError says why the path MTU of a reachable pair is unknown.
	PathMTUError string  `json:"pathMTUError,omitempty"`
	PMTUMs       float64 `json:"pmtuMs,omitempty"`

	RTTMs        *Percentiles `json:"rttMs,omitempty"`
	LossPct      float64      `json:"lossPct"`
	JitterMs     float64      `json:"jitterMs,omitempty"`
	ICMPRTTMs    *Percentiles `json:"icmpRttMs,omitempty"`
	ICMPLossPct  *float64     `json:"icmpLossPct,omitempty"`
	TCPConnectMs *Percentiles `json:"tcpConnectMs,omitempty"`
	// TCPConnectTried is how many TCP handshakes were tried; with no
	// TCPConnectMs, none of them completed.
	TCPConnectTried int         `json:"tcpConnectTried,omitempty"`
	HTTPTotalMs     float64     `json:"httpTotalMs,omitempty"`
	TransferBytes   int64       `json:"transferBytes,omitempty"`
	Stalled         bool        `json:"stalled,omitempty"`
	ThroughputBps   float64     `json:"throughputBps,omitempty"`
	Ports           []PortState `json:"ports,omitempty"` // preflight: ports checked on the target
	DNS             []DNSAnswer `json:"dns,omitempty"`   // layer dns: each question and its answer
	Errors          []string    `json:"errors,omitempty"`
	// Retried says that what is reported is a second measurement, made
	// alone after the first looked like a fault, and what the first showed.
	Retried string `json:"retried,omitempty"`
}

// Location is where on a path packets of Size bytes stop: they reach hop
// After (address At) and not the next; Hops is how far the peer is (1: no
// router between). Gap: the next hop answered nothing, so they stop there
// or further on. Silent: no router answered, so where is not known.
type Location struct {
	Size   int    `json:"size"`
	Hops   int    `json:"hops,omitempty"`
	After  int    `json:"after"`
	At     string `json:"at,omitempty"`
	Gap    bool   `json:"gap,omitempty"`
	Silent bool   `json:"silent,omitempty"`
}

// Measured reports whether From's agent measured the pair (Unknown empty).
func (p Pair) Measured() bool { return p.Unknown == "" }

// Known reports whether the pair says anything about the path: measured,
// and an agent answered at To.
func (p Pair) Known() bool { return p.Unknown == "" && !p.NoAgent }

// DNSAnswer is one question a Pod agent asked a DNS server and what came
// back.
type DNSAnswer struct {
	Name      string `json:"name"`
	Type      string `json:"type,omitempty"`      // A (or AAAA)
	Transport string `json:"transport"`           // udp | tcp
	Size      string `json:"size"`                // small | large: the answer expected
	Want      int    `json:"wantBytes,omitempty"` // the large answer's expected size in bytes
	Bytes     int    `json:"bytes,omitempty"`     // the answer's DNS message, as it arrived
	Records   int    `json:"records,omitempty"`
	Rcode     string `json:"rcode,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// RTTMs is from the question's first sending to its answer.
	RTTMs float64 `json:"rttMs,omitempty"`
	// Error says why no answer came: timeout, refused, or another word.
	Error string `json:"error,omitempty"`
}

// OK: answered without error, with records, whole.
func (a DNSAnswer) OK() bool {
	return a.Error == "" && a.Rcode == "NOERROR" && a.Records > 0 && !a.Truncated
}

// PortState is one port checked from a pair's source on its target.
type PortState struct {
	Proto string  `json:"proto"`
	Port  int     `json:"port"`
	State string  `json:"state"` // open | refused | closed | filtered
	RTTMs float64 `json:"rttMs,omitempty"`
}

// NodeInfo is a node and what its agent knows about it.
type NodeInfo struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Facts   *Facts `json:"facts,omitempty"`
	Error   string `json:"error,omitempty"`
	// ReceivedAt is the controller's clock when the facts were read (the
	// request's midpoint): the agent's collectedAt minus it is clock skew.
	ReceivedAt time.Time `json:"-"`
}
