package model

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Host facts: what one node knows about its own network (internal/hostfacts
// collects them; the diagnosis and the reports read them).

// Facts is what one node knows about its own network. Its JSON form is a
// contract: reports and the diagnosis render it.
type Facts struct {
	Hostname      string    `json:"hostname"`
	Kernel        string    `json:"kernel"` // uname -r
	CollectedAt   time.Time `json:"collectedAt"`
	Links         []Link    `json:"links"`
	Routes        []Route   `json:"routes"` // main table, IPv4 then IPv6
	Sysctls       Sysctls   `json:"sysctls"`
	KernelModules []Module  `json:"kernelModules"`
	Firewall      Firewall  `json:"firewall"`
	Conntrack     Conntrack `json:"conntrack"`
	Calico        Calico    `json:"calico"`
	KubeProxy     KubeProxy `json:"kubeProxy"`
	// Errors lists what could not be read, each saying what was being read.
	// Links are the only part whose failure fails the whole collection.
	Errors []string `json:"errors,omitempty"`
}

// Link is one network interface.
type Link struct {
	Name      string   `json:"name"`
	Index     int      `json:"index"`
	Type      string   `json:"type"` // netlink's kind: veth, vxlan, bridge, device, dummy, …
	MTU       int      `json:"mtu"`
	State     string   `json:"state"`     // LinkUp or LinkDown
	OperState string   `json:"operState"` // the kernel's: up, down, lowerlayerdown, unknown, …
	MAC       string   `json:"mac,omitempty"`
	Master    string   `json:"master,omitempty"` // bridge or bond the link is enslaved to
	Addresses []string `json:"addresses"`        // CIDR form, IPv4 and IPv6
	VXLAN     *VXLAN   `json:"vxlan,omitempty"`
}

// Link states.
const (
	LinkUp   = "up"
	LinkDown = "down"
)

// VXLAN is what a VXLAN device encapsulates with, and where it sends:
// Felix programs one FDB entry and one neighbour per remote node's VTEP.
type VXLAN struct {
	VNI   int    `json:"vni"`
	Port  int    `json:"port"`            // UDP destination port
	Local string `json:"local,omitempty"` // source address of the outer header
	Dev   string `json:"dev,omitempty"`   // underlying device (VtepDevIndex), when pinned
	// FDB: per remote VTEP MAC, the underlay address its frames go to
	// (`bridge fdb show dev vxlan.calico`).
	FDB []FDBEntry `json:"fdb,omitempty"`
	// Neighbors: per remote VTEP address, its MAC (`ip neigh show dev vxlan.calico`).
	Neighbors []Neighbor `json:"neighbors,omitempty"`
}

// FDBEntry sends frames for MAC to the underlay address Dst.
type FDBEntry struct {
	MAC string `json:"mac"`
	Dst string `json:"dst"`
}

// Neighbor resolves IP to MAC on a link.
type Neighbor struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
}

// Route is one route of the main table.
type Route struct {
	Family    string    `json:"family"` // "ipv4" or "ipv6"
	Dst       string    `json:"dst"`    // CIDR, or "default"
	Gw        string    `json:"gw,omitempty"`
	Dev       string    `json:"dev,omitempty"`
	Type      string    `json:"type"` // unicast, blackhole, unreachable, prohibit, …
	Proto     int       `json:"proto"`
	ProtoName string    `json:"protoName"` // kernel, boot, static, bird, felix, …
	Scope     string    `json:"scope"`     // global, link, host, …
	Onlink    bool      `json:"onlink,omitempty"`
	Metric    int       `json:"metric"`
	Nexthops  []Nexthop `json:"nexthops,omitempty"` // for multipath routes (BIRD merges ECMP paths)
}

// Nexthop is one path of a multipath route.
type Nexthop struct {
	Gw     string `json:"gw,omitempty"`
	Dev    string `json:"dev,omitempty"`
	Onlink bool   `json:"onlink,omitempty"`
}

// Route protocols podpath names beyond the kernel's own (rtnetlink.h, iproute2's rt_protos).
const (
	RouteProtoBIRD  = 12 // RTPROT_BIRD: routes BIRD programs in BGP mode
	RouteProtoFelix = 80 // what Felix programs for VXLAN and WireGuard; no name in rt_protos
)

var routeProtoNames = map[int]string{
	0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static",
	8: "gated", 9: "ra", 10: "mrt", 11: "zebra", RouteProtoBIRD: "bird", 13: "dnrouted",
	14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted", 18: "keepalived", 42: "babel",
	RouteProtoFelix: "felix", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
}

// RouteProtoName names a route protocol number; unnamed ones are their number.
func RouteProtoName(p int) string {
	if n, ok := routeProtoNames[p]; ok {
		return n
	}
	return strconv.Itoa(p)
}

var routeTypeNames = map[int]string{
	0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
	6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve",
}

// RouteTypeName names an RTN_* route type.
func RouteTypeName(t int) string {
	if n, ok := routeTypeNames[t]; ok {
		return n
	}
	return strconv.Itoa(t)
}

// RouteScopeName names an RT_SCOPE_* value as iproute2 does (0 is "global").
func RouteScopeName(s int) string {
	switch s {
	case 0:
		return "global"
	case 200:
		return "site"
	case 253:
		return "link"
	case 254:
		return "host"
	case 255:
		return "nowhere"
	}
	return strconv.Itoa(s)
}

// Sysctls are the kernel settings cross-node Pod traffic depends on. A nil
// value was not readable (IPv6 disabled, a read-only /proc): unknown, not zero.
type Sysctls struct {
	IPv4Forward     *int   `json:"ipv4Forward,omitempty"`     // net.ipv4.ip_forward
	IPv6Forwarding  *int   `json:"ipv6Forwarding,omitempty"`  // net.ipv6.conf.all.forwarding
	RPFilterAll     *int   `json:"rpFilterAll,omitempty"`     // net.ipv4.conf.all.rp_filter
	RPFilterDefault *int   `json:"rpFilterDefault,omitempty"` // net.ipv4.conf.default.rp_filter: what new links (cali*) get
	PingGroupRange  string `json:"pingGroupRange,omitempty"`  // net.ipv4.ping_group_range, "low high"
	// Conf holds net.ipv4.conf.<link>.* by link name.
	Conf map[string]LinkConf `json:"conf,omitempty"`
}

// LinkConf is a link's own net.ipv4.conf.<link> settings.
type LinkConf struct {
	RPFilter *int `json:"rpFilter,omitempty"` // 0 off, 1 strict, 2 loose
	ProxyARP *int `json:"proxyARP,omitempty"` // 1 on cali* links: Pods reach 169.254.1.1 through it
}

// EffectiveRPFilter is the reverse-path filter mode the kernel applies on
// link: the larger of conf.all and conf.<link> (IN_DEV_MAXCONF), so "all=1"
// makes every link strict whatever its own value. ok is false when either
// value is unknown.
func (s *Sysctls) EffectiveRPFilter(link string) (mode int, ok bool) {
	c, found := s.Conf[link]
	if s.RPFilterAll == nil || !found || c.RPFilter == nil {
		return 0, false
	}
	return max(*s.RPFilterAll, *c.RPFilter), true
}

// Conntrack is the connection-tracking table's fill. Nil when not readable
// (nf_conntrack not loaded, or the namespace has none yet).
type Conntrack struct {
	Count *int `json:"count,omitempty"`
	Max   *int `json:"max,omitempty"`
}

// Calico is what calico-node leaves on the node.
type Calico struct {
	MTUFile MTUFile   `json:"mtuFile"`
	Felix   Felix     `json:"felix"`
	BIRD    BIRDState `json:"bird"`
}

// MTUFile is /var/lib/calico/mtu, where Felix writes the Pod MTU it picked.
type MTUFile struct {
	Path  string `json:"path"`
	Value int    `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// Felix is the answer to Felix's readiness endpoint.
type Felix struct {
	URL        string `json:"url"`
	Ready      bool   `json:"ready"`                // status 200–399, as calico-node's probe counts it
	StatusCode int    `json:"statusCode,omitempty"` // 0: no HTTP answer, see Error
	Error      string `json:"error,omitempty"`
}

// BIRDState is BIRD's `show protocols` through its control socket.
type BIRDState struct {
	Socket    string         `json:"socket"`
	Protocols []BIRDProtocol `json:"protocols,omitempty"`
	// ServerTime is BIRD's clock when asked (`show status`), in its own
	// format and time zone: what a protocol's Since is measured against;
	// Started is when the daemon started ("Last reboot on").
	ServerTime string `json:"serverTime,omitempty"`
	Started    string `json:"started,omitempty"`
	Error      string `json:"error,omitempty"`
}

// birdTimes are the forms BIRD prints times in: `iso long` (with or
// without milliseconds) and `iso short` (today's time of day), which
// BIRD 2 uses for the since column by default.
var birdTimes = []string{"2006-01-02 15:04:05.000", "2006-01-02 15:04:05", "2006-01-02", "15:04:05.000", "15:04:05"}

// StateAge is how long p has been in its state by BIRD's own clock;
// false when BIRD's clock or p's since is missing or in another form.
func (b BIRDState) StateAge(p BIRDProtocol) (time.Duration, bool) { return b.age(p.Since) }

// Uptime is how long the daemon has run by its own clock; false when
// BIRD did not say.
func (b BIRDState) Uptime() (time.Duration, bool) { return b.age(b.Started) }

// age is how long ago t was by BIRD's clock.
func (b BIRDState) age(t string) (time.Duration, bool) {
	now, ok := parseBIRDTime(b.ServerTime)
	if !ok || now.Year() == 0 {
		return 0, false
	}
	since, ok := parseBIRDTime(t)
	if !ok {
		return 0, false
	}
	if since.Year() == 0 { // today's time of day
		since = time.Date(now.Year(), now.Month(), now.Day(), since.Hour(), since.Minute(), since.Second(), since.Nanosecond(), time.UTC)
		if since.After(now) {
			since = since.AddDate(0, 0, -1) // yesterday, just before midnight
		}
	}
	if since.After(now) {
		return 0, false
	}
	return now.Sub(since), true
}

func parseBIRDTime(s string) (time.Time, bool) {
	for _, layout := range birdTimes {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Firewall lists what drops or rejects traffic Calico needs, as the kernel
// applies the host's rules: each kind of traffic is walked through the base
// chains of its hooks, rules, jumps and policies. iptables-nft rules are
// nftables rules and are seen.
type Firewall struct {
	Drops []FirewallDrop `json:"drops"`
	Error string         `json:"error,omitempty"`
}

// FirewallDrop is one rule, or a base chain's policy, that drops or
// rejects traffic of some Need.
type FirewallDrop struct {
	Family string `json:"family"` // ip, ip6, inet, bridge, netdev, arp
	Table  string `json:"table"`
	Chain  string `json:"chain"`
	Hook   string `json:"hook,omitempty"` // empty for a regular chain, reached only by jump or goto
	Handle uint64 `json:"handle"`
	Rule   string `json:"rule"` // nft-like: "udp dport 4789 drop", or "policy drop"
	Policy bool   `json:"policy,omitempty"`
	// Conditional: it stops nothing for certain: on the way to it, or in
	// it, is a test podpath cannot evaluate (the far end's address, a set it
	// could not read, an x_tables match it does not know), so it may drop
	// only some of that traffic.
	Conditional bool     `json:"conditional,omitempty"`
	Needs       []string `json:"needs"`              // Need* values it stops for certain
	Possible    []string `json:"possible,omitempty"` // Need* values it may stop
	Traffic     []string `json:"traffic,omitempty"`  // which of it: "vxlan: arriving", "pod-traffic: UDP to its Pods"
}

// Stops reports whether d stops traffic of need: for certain, or perhaps.
func (d FirewallDrop) Stops(need string) (certain, perhaps bool) {
	return slices.Contains(d.Needs, need), slices.Contains(d.Possible, need)
}

// What Calico needs a firewall to pass.
const (
	NeedVXLAN          = "vxlan"            // UDP 4789
	NeedBGP            = "bgp"              // TCP 179, either direction
	NeedIPIP           = "ipip"             // IP protocol 4
	NeedICMPFragNeeded = "icmp-frag-needed" // ICMP 3/4 and ICMPv6 packet-too-big: path MTU discovery
	NeedICMP           = "icmp"             // ICMP echo: ping
	NeedWireGuard      = "wireguard"        // UDP 51820 (IPv4) and 51821 (IPv6)
	NeedAgent          = "agent"            // podpath's own probes to the agent's port (UDP and TCP)
	// NeedPodTraffic is Pod traffic forwarded through the node: to its Pods
	// from other nodes', and back.
	NeedPodTraffic = "pod-traffic"
	// NeedDNS is DNS (UDP and TCP 53) forwarded through the node, to its
	// Pods (a CoreDNS Pod there) and from them: one service's traffic, not
	// the Pod network's, so a rule stopping only it is dns-failing's
	// evidence, never a firewall-drop of Pod traffic.
	NeedDNS = "dns"
)

// Module is the state of one kernel module Calico or Kubespray wants.
type Module struct {
	Name     string `json:"name"`
	State    string `json:"state"`    // Module* values
	Need     string `json:"need"`     // who wants it: calico, calico-ipv6, vxlan, ipip, wireguard, kube-proxy-ipvs, kubespray
	Evidence string `json:"evidence"` // the file or line that decided State
}

// Module states.
const (
	ModuleLoaded    = "loaded"    // a loadable module in memory
	ModuleBuiltin   = "builtin"   // compiled into the kernel
	ModuleAvailable = "available" // on disk, modprobe would load it
	ModuleMissing   = "missing"   // the kernel cannot have it
	// ModuleUnknown: neither the kernel config nor /lib/modules could be
	// read (a container without them mounted), so absence proves nothing.
	ModuleUnknown = "unknown"
)

// Protocol is one row of BIRD's `show protocols`.
type BIRDProtocol struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Table string `json:"table"`
	State string `json:"state"` // up, down, start, …
	Since string `json:"since"`
	Info  string `json:"info"` // for BGP: Established, Active, Connect, …
}

// Established reports whether p is a BGP session in state Established.
func (p BIRDProtocol) Established() bool {
	return p.Proto == "BGP" && strings.HasPrefix(p.Info, "Established")
}

// KubeProxy is what a node shows of its kube-proxy: whether its health
// endpoint answers, and which of its rules the kernel holds.
type KubeProxy struct {
	// Healthz is what kube-proxy's /healthz said: KubeProxyHealthy,
	// KubeProxyUnhealthy (it answered 503: rules not synced in time), or
	// KubeProxyNotListening (nothing listens: kube-proxy is not running,
	// or serves health elsewhere); "" when not asked.
	Healthz string `json:"healthz,omitempty"`
	// HealthzAddress is where it was asked; HealthzDetail what came back
	// (its body, or the error).
	HealthzAddress string `json:"healthzAddress,omitempty"`
	HealthzDetail  string `json:"healthzDetail,omitempty"`
	// Rules are the kube-proxy rule sets the kernel holds: "nftables"
	// (table ip/ip6 kube-proxy), "iptables" (chain KUBE-SERVICES in an
	// iptables-nft nat table), "ipvs" (the kube-ipvs0 device). Empty with
	// RulesError unset: none of them; legacy iptables rules are not seen.
	Rules      []string `json:"rules,omitempty"`
	RulesError string   `json:"rulesError,omitempty"`
}

// kube-proxy's health, as its /healthz answers.
const (
	KubeProxyHealthy      = "healthy"
	KubeProxyUnhealthy    = "unhealthy"
	KubeProxyNotListening = "not-listening"
)
