package calico

import "fmt"

// Bytes each encapsulation adds to a Pod packet, as Calico subtracts them
// from the host MTU (docs/calico-facts.md: for a 1500-byte network IPIP
// leaves 1480, VXLAN 1450 or 1430 over IPv6, WireGuard 1440 or 1420).
const (
	OverheadIPIP        = 20 // outer IPv4 header
	OverheadVXLAN       = 50 // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
	OverheadVXLANv6     = 70 // the outer header is IPv6's 40
	OverheadWireGuard   = 60
	OverheadWireGuardV6 = 80
)

// Overhead is what the backend's encapsulation (vxlan, ipip, wireguard)
// costs a Pod packet on an IPv4 underlay; 0 for routed backends (bgp, none).
func Overhead(backend string) int {
	switch backend {
	case "vxlan":
		return OverheadVXLAN
	case "ipip":
		return OverheadIPIP
	case "wireguard":
		return OverheadWireGuard
	}
	return 0
}

// OverheadIPv6 is the same on an IPv6 underlay (IPIP carries IPv4 only).
func OverheadIPv6(backend string) int {
	switch backend {
	case "vxlan":
		return OverheadVXLANv6
	case "wireguard":
		return OverheadWireGuardV6
	}
	return 0
}

// Bounds of a Pod MTU podpath will configure (bytes, IP packet).
const (
	MinMTUv4 = 576  // every IPv4 host must accept it (RFC 791)
	MinMTUv6 = 1280 // IPv6's minimum link MTU (RFC 8200)
	MaxMTU   = 9000 // jumbo frames; more is no network's
)

// CheckMTU refuses a Pod MTU that cannot work: below the family's minimum
// or above MaxMTU.
func CheckMTU(mtu int, ipv6 bool) error {
	lo, fam := MinMTUv4, "IPv4"
	if ipv6 {
		lo, fam = MinMTUv6, "IPv6"
	}
	if mtu < lo || mtu > MaxMTU {
		return fmt.Errorf("MTU %d: an %s cluster needs %d-%d", mtu, fam, lo, MaxMTU)
	}
	return nil
}

// EncapModes are an IPPool's vxlanMode and ipipMode values (Kubespray's
// calico_vxlan_mode, calico_ipip_mode).
var EncapModes = []string{"Always", "CrossSubnet", "Never"}

// KubesprayBackends are the values of Kubespray's calico_network_backend.
var KubesprayBackends = []string{"vxlan", "bird", "none"}
