// Package hostfacts reads what a node knows about its own network: links,
// addresses, routes, sysctls, kernel modules, firewall drops, conntrack, and
// Calico's state (MTU file, Felix readiness, BIRD).
package hostfacts

import (
	"time"

	"podpath/internal/model"
)

// Where calico-node keeps its state, and how long collection may take.
const (
	DefaultBIRDSocket     = "/var/run/calico/bird.ctl"
	DefaultFelixHealthURL = "http://localhost:9099/readiness"
	DefaultCalicoMTUFile  = "/var/lib/calico/mtu"
	// DefaultKubeProxyHealthURL is kube-proxy's health endpoint on the
	// node's loopback: its default healthzBindAddress is 0.0.0.0:10256
	// (Kubespray's too), and the lab binds 127.0.0.1:10256.
	DefaultKubeProxyHealthURL = "http://127.0.0.1:10256/healthz"

	// DefaultTimeout bounds a whole collection. Netlink, /proc and nftables
	// answer in milliseconds; the budget is for BIRD (bird.Timeout)
	// and Felix (FelixTimeout) when they hang.
	DefaultTimeout = 5 * time.Second

	// FelixTimeout bounds the readiness GET. Felix answers on loopback at
	// once when it runs; anything slower is as good as not ready.
	FelixTimeout = 1 * time.Second
)

// Options says where calico-node's endpoints are; zero fields take calico-node's defaults.
type Options struct {
	BIRDSocket     string // default DefaultBIRDSocket
	FelixHealthURL string // default DefaultFelixHealthURL
	CalicoMTUFile  string // default DefaultCalicoMTUFile
	// KubeProxyHealthURL is kube-proxy's /healthz; default
	// DefaultKubeProxyHealthURL.
	KubeProxyHealthURL string
	// Timeout bounds the whole collection; default DefaultTimeout. Only the
	// socket work (BIRD, Felix) can block: netlink and /proc answer at once.
	Timeout time.Duration
	// AgentPort is the port podpath's agent on this host listens on (UDP
	// probes, TCP API): its peers' probes are walked through the firewall
	// too, so a drop of them is seen. 0: not judged.
	AgentPort int
}

func (o Options) withDefaults() Options {
	if o.BIRDSocket == "" {
		o.BIRDSocket = DefaultBIRDSocket
	}
	if o.FelixHealthURL == "" {
		o.FelixHealthURL = DefaultFelixHealthURL
	}
	if o.CalicoMTUFile == "" {
		o.CalicoMTUFile = DefaultCalicoMTUFile
	}
	if o.KubeProxyHealthURL == "" {
		o.KubeProxyHealthURL = DefaultKubeProxyHealthURL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// The collectors' names for model's host-fact types.
type (
	Facts        = model.Facts
	Link         = model.Link
	VXLAN        = model.VXLAN
	FDBEntry     = model.FDBEntry
	Neighbor     = model.Neighbor
	Route        = model.Route
	Nexthop      = model.Nexthop
	Sysctls      = model.Sysctls
	LinkConf     = model.LinkConf
	Conntrack    = model.Conntrack
	Calico       = model.Calico
	MTUFile      = model.MTUFile
	Felix        = model.Felix
	BIRDState    = model.BIRDState
	Firewall     = model.Firewall
	FirewallDrop = model.FirewallDrop
	Module       = model.Module
)

const (
	LinkUp             = model.LinkUp
	LinkDown           = model.LinkDown
	RouteProtoBIRD     = model.RouteProtoBIRD
	RouteProtoFelix    = model.RouteProtoFelix
	NeedVXLAN          = model.NeedVXLAN
	NeedBGP            = model.NeedBGP
	NeedIPIP           = model.NeedIPIP
	NeedICMPFragNeeded = model.NeedICMPFragNeeded
	NeedICMP           = model.NeedICMP
	NeedWireGuard      = model.NeedWireGuard
	NeedAgent          = model.NeedAgent
	NeedPodTraffic     = model.NeedPodTraffic
	NeedDNS            = model.NeedDNS
	ModuleLoaded       = model.ModuleLoaded
	ModuleBuiltin      = model.ModuleBuiltin
	ModuleAvailable    = model.ModuleAvailable
	ModuleMissing      = model.ModuleMissing
	ModuleUnknown      = model.ModuleUnknown
)

var (
	RouteProtoName = model.RouteProtoName
	RouteTypeName  = model.RouteTypeName
	RouteScopeName = model.RouteScopeName
)

// linkState folds the admin flag and the operational state into up or down.
// Loopback, dummy and some tunnels never report a carrier and stay "unknown"
// while they work, so unknown counts as up when the link is admin-up.
func linkState(adminUp bool, oper string) string {
	if adminUp && (oper == "up" || oper == "unknown") {
		return LinkUp
	}
	return LinkDown
}
