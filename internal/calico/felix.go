package calico

import (
	"fmt"
	"regexp"
	"slices"
)

// Felix's MTU auto-detection, as felix/dataplane/linux findHostMTU and
// ConfigureDefaultMTUs do it: the host MTU is the smallest MTU among the
// interfaces that are running (IFF_RUNNING: operstate up or unknown) and
// whose name matches mtuIfacePattern; with none, 1460 and a warning. Each
// encapsulation's MTU not set explicitly is the host MTU less its
// overhead, and the Pod MTU Felix writes to /var/lib/calico/mtu (which
// the CNI plugin takes when its config's mtu is 0) is the smallest among
// the enabled encapsulations, or the host MTU with none.
const (
	// DefaultMTUIfacePattern is FelixConfiguration mtuIfacePattern's
	// default: bond*, team*, br* and vlan devices named otherwise never match.
	DefaultMTUIfacePattern = `^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)`
	// FallbackHostMTU is the host MTU Felix takes when no interface
	// matches: the smallest among common cloud providers.
	FallbackHostMTU = 1460
)

// Iface is what Felix looks at of a host interface.
type Iface struct {
	Name    string
	MTU     int
	Running bool // IFF_RUNNING
}

// Running is IFF_RUNNING from the kernel's operstate: the kernel sets it
// for an interface that is up with operstate up or unknown (loopback,
// dummy and tunnel devices say unknown).
func Running(adminUp bool, operState string) bool {
	return adminUp && (operState == "up" || operState == "unknown")
}

// HostMTU is Felix's choice of host MTU and why.
type HostMTU struct {
	MTU int
	// From are the interfaces with that MTU among those considered: the
	// ones that set it. Empty with Fallback.
	From []string
	// Considered are every running interface the pattern matched.
	Considered []string
	// Fallback: no interface matched; MTU is FallbackHostMTU.
	Fallback bool
}

// FelixHostMTU works out the host MTU Felix detects on a host with these
// interfaces; pattern "" is Felix's default. A pattern that does not
// compile is an error, as Felix refuses it.
func FelixHostMTU(ifaces []Iface, pattern string) (HostMTU, error) {
	if pattern == "" {
		pattern = DefaultMTUIfacePattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return HostMTU{}, fmt.Errorf("mtuIfacePattern %q: %w", pattern, err)
	}
	var h HostMTU
	for _, i := range ifaces {
		if !re.MatchString(i.Name) || !i.Running {
			continue
		}
		h.Considered = append(h.Considered, i.Name)
		if h.MTU == 0 || i.MTU < h.MTU {
			h.MTU = i.MTU
		}
	}
	if h.MTU == 0 {
		return HostMTU{MTU: FallbackHostMTU, Fallback: true}, nil
	}
	for _, i := range ifaces {
		if i.Running && i.MTU == h.MTU && slices.Contains(h.Considered, i.Name) {
			h.From = append(h.From, i.Name)
		}
	}
	return h, nil
}

// Matches says whether Felix's mtuIfacePattern (default when "") matches
// an interface name; false when the pattern does not compile.
func Matches(pattern, name string) bool {
	if pattern == "" {
		pattern = DefaultMTUIfacePattern
	}
	re, err := regexp.Compile(pattern)
	return err == nil && re.MatchString(name)
}
