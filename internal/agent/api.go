// Package agent is podpath's per-node daemon: an authenticated HTTP API
// that runs probes against the peers its controller named, a UDP responder
// on the same port, host facts, health and metrics.
package agent

import "podpath/internal/probe"

// DefaultPort is the agent's port (TCP for the API, UDP for probes) unless
// --listen says otherwise: the lab's, the DaemonSets' and the docs'.
const DefaultPort = 7946

// Peer is another agent this one may probe. Agents only ever probe peers
// their controller gave them, never an address from a probe request.
type Peer struct {
	Name    string `json:"name"`
	Address string `json:"address"` // IP:port of the peer agent (HTTP and UDP)
}

// PeersRequest replaces the agent's peer set (PUT /v1/peers).
type PeersRequest struct {
	Peers []Peer `json:"peers"`
}

// Series asks for a series of echoes.
type Series struct {
	Count      int `json:"count"`
	IntervalMs int `json:"intervalMs"`
	Size       int `json:"size,omitempty"` // IP bytes; 0 = smallest
}

// ThroughputSpec asks for a TCP throughput test.
type ThroughputSpec struct {
	Seconds float64 `json:"seconds"`
	Streams int     `json:"streams"`
}

// ProbeRequest asks the agent to probe some of its peers (POST /v1/probe).
type ProbeRequest struct {
	Targets       []string        `json:"targets"` // peer names (or their addresses); each must be a known peer
	PathMTU       bool            `json:"pathMTU,omitempty"`
	RTT           *Series         `json:"rtt,omitempty"`
	ICMP          *Series         `json:"icmp,omitempty"`
	TCPConnect    int             `json:"tcpConnect,omitempty"` // handshakes to time
	HTTP          bool            `json:"http,omitempty"`
	TransferBytes int64           `json:"transferBytes,omitempty"` // bulk upload that must not stall
	Throughput    *ThroughputSpec `json:"throughput,omitempty"`
	Ports         []PortCheck     `json:"ports,omitempty"` // on the target's IP, whatever else answers
	// FullSize adds, after reachability, one Don't-Fragment probe of the
	// sender's interface MTU (a few attempts): the cheap check that a
	// full-sized packet crosses, without a size search.
	FullSize bool `json:"fullSize,omitempty"`
	// Cheap is the doctor's check of every pair, made light for the
	// responder (which meets it from every peer): small and full-sized
	// Don't-Fragment probes in one round, FullSize's answer without a
	// separate echo burst, and a TCP handshake only when no probe was
	// answered (to tell "UDP blocked" from "nothing gets through").
	Cheap bool `json:"cheap,omitempty"`
	// Parallel bounds how many targets are probed at once (1 to
	// MaxParallel; 0: MaxParallel). The controller paces a run with it.
	Parallel int `json:"parallel,omitempty"`
	// DNS asks each target, a DNS server the controller named as a peer,
	// these questions, side by side, and nothing else: no echo or
	// handshake goes to a DNS server's port.
	DNS []probe.DNSQuery `json:"dns,omitempty"`
}

// SizeCheck is one full-sized probe's answer (ProbeRequest.FullSize).
type SizeCheck struct {
	Size     int  `json:"size"`               // IP bytes tried: the sender's interface MTU towards the peer (Cheap: the route's MTU)
	Crossed  bool `json:"crossed"`            // an attempt was answered
	ICMPMTU  int  `json:"icmpMTU,omitempty"`  // a router said "fragmentation needed" with this MTU
	LocalMTU int  `json:"localMTU,omitempty"` // the sender's own route refused the size
}

// Load is what an agent counted against itself: probes its responder left
// unanswered for the rate alone, and datagrams the kernel dropped because
// a receive queue of its network namespace was full. Counters since the
// agent started; the controller takes differences over a run. A pair
// towards an agent whose counters grew may have lost probes to load, not
// to the network.
type Load struct {
	OverRate     uint64 `json:"overRate"`
	RcvbufErrors uint64 `json:"rcvbufErrors"`
	// RcvbufUnknown: the kernel counter could not be read.
	RcvbufUnknown bool `json:"rcvbufUnknown,omitempty"`
}

// PeersAnswer is the answer to PUT /v1/peers.
type PeersAnswer struct {
	Peers int  `json:"peers"`
	Load  Load `json:"load"`
}

// TargetResult is what the agent measured towards one peer.
type TargetResult struct {
	Peer      string `json:"peer"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"` // a UDP probe came back
	// PeerRefused: no UDP probe came back, and the peer's host answered
	// ICMP port unreachable: it is up, no agent listens there.
	PeerRefused  bool               `json:"peerRefused,omitempty"`
	PathMTU      *probe.PMTUResult  `json:"pathMTU,omitempty"`
	PathMTUError string             `json:"pathMTUError,omitempty"`
	RTT          *probe.Stats       `json:"rtt,omitempty"`
	ICMP         *probe.Stats       `json:"icmp,omitempty"`
	TCPConnect   *probe.Stats       `json:"tcpConnect,omitempty"`
	HTTP         *probe.HTTPPhases  `json:"http,omitempty"`
	Transfer     *probe.Transfer    `json:"transfer,omitempty"`
	Throughput   *probe.Transfer    `json:"throughput,omitempty"`
	FullSize     *SizeCheck         `json:"fullSize,omitempty"`
	Ports        []probe.PortResult `json:"ports,omitempty"` // in the request's order
	DNS          []probe.DNSResult  `json:"dns,omitempty"`   // in the request's order
	Errors       []string           `json:"errors,omitempty"`
}

// ProbeResponse is the answer to a ProbeRequest.
type ProbeResponse struct {
	From       string         `json:"from"`
	Results    []TargetResult `json:"results"`
	DurationMs float64        `json:"durationMs"`
	Load       Load           `json:"load"` // when the answer was written
}

// Request limits: a controller never needs more, and anything above is a
// mistake or an attack.
const (
	// MaxBodyBytes bounds a request's body: room for MaxPeers peers with
	// long names (5,000 with cloud-length names: about 470 KB). It is read
	// only once the credential checked out.
	MaxBodyBytes      = 4 << 20
	MaxPeers          = 10000
	MaxTargets        = 1000
	MaxParallel       = 64
	MaxSeriesCount    = 1000
	MinIntervalMs     = 1
	MaxIntervalMs     = 10000
	MaxThroughputSecs = 30
	MaxStreams        = 16
	MaxTransferBytes  = 64 << 20
	MaxDNSQueries     = 8
)
