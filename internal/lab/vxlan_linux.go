package lab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rtprotFelix is the route protocol Felix stamps on the routes it programs
// ("proto 80" in `ip route`), so they can be told from others.
const rtprotFelix = 80

// programVXLAN sets up vxlan.calico on n and the static neighbour, FDB and
// onlink route entries to every other node, as Felix does (no learning, no
// multicast: every remote VTEP is known up front).
func programVXLAN(s *Spec, n *Node) error { return programVXLANWith(s, n, VXLANPort, VXLANVNI) }

// reprogramVXLAN replaces n's vxlan.calico by one on another UDP port or
// VNI, as a node whose calico-node was configured differently has it.
func reprogramVXLAN(s *Spec, n *Node, port, vni int) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.nl.LinkByName(VXLANDevice); err == nil {
		if err := h.nl.LinkDel(l); err != nil {
			return fmt.Errorf("delete %s in %s: %w", VXLANDevice, h.name, err)
		}
	}
	return programVXLANWith(s, n, port, vni)
}

// reprogramVXLANv6 replaces n's vxlan-v6.calico, as reprogramVXLAN.
func reprogramVXLANv6(s *Spec, n *Node) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	if l, err := h.nl.LinkByName(VXLANDeviceV6); err == nil {
		if err := h.nl.LinkDel(l); err != nil {
			h.Close()
			return fmt.Errorf("delete %s in %s: %w", VXLANDeviceV6, h.name, err)
		}
	}
	h.Close()
	return programVXLANv6(s, n)
}

func programVXLANWith(s *Spec, n *Node, port, vni int) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth0, err := uplink(h, n.Address)
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(n.VTEPMAC)
	if err != nil {
		return fmt.Errorf("VTEP MAC %s: %w", n.VTEPMAC, err)
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: VXLANDevice, MTU: n.VXLANMTU, HardwareAddr: mac},
		VxlanId:      vni,
		VtepDevIndex: eth0.Attrs().Index,
		SrcAddr:      n.Address.AsSlice(),
		Port:         port,
		Learning:     false,
	}
	if err := h.nl.LinkAdd(vx); err != nil {
		return fmt.Errorf("create %s: %w", VXLANDevice, err)
	}
	link, err := h.link(VXLANDevice)
	if err != nil {
		return err
	}
	if err := addAddr(h, link, n.VTEP, 32); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up %s: %w", VXLANDevice, err)
	}
	for _, r := range s.Nodes {
		if r.Name == n.Name {
			continue
		}
		rmac, err := net.ParseMAC(r.VTEPMAC)
		if err != nil {
			return fmt.Errorf("VTEP MAC of %s: %w", r.Name, err)
		}
		arp := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: r.VTEP.AsSlice(), HardwareAddr: rmac}
		if err := h.nl.NeighSet(arp); err != nil {
			return fmt.Errorf("neighbour %s of %s: %w", r.VTEP, r.Name, err)
		}
		fdb := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: r.Address.AsSlice(), HardwareAddr: rmac}
		if err := h.nl.NeighSet(fdb); err != nil {
			return fmt.Errorf("FDB entry for %s: %w", r.Name, err)
		}
		if err := h.nl.RouteAdd(vxlanRoute(link.Attrs().Index, r)); err != nil {
			return fmt.Errorf("route to %s: %w", r.Block, err)
		}
	}
	return nil
}

// uplink is the link holding the node's address a, as Felix takes
// vxlan.calico's parent: eth0, or what the node's address moved to.
func uplink(h *nsHandle, a netip.Addr) (netlink.Link, error) {
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", h.name, err)
	}
	for _, l := range links {
		addrs, err := h.nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if b, ok := netip.AddrFromSlice(ad.IP); ok && b.Unmap() == a {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no link holds %s in %s", a, h.name)
}

func vxlanRoute(ifindex int, r Node) *netlink.Route {
	return &netlink.Route{Dst: prefixNet(r.Block), Gw: r.VTEP.AsSlice(), LinkIndex: ifindex,
		Flags: int(netlink.FLAG_ONLINK), Protocol: rtprotFelix}
}

func addAddr(h *nsHandle, l netlink.Link, a netip.Addr, bits int) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
	if a.Is6() {
		// No duplicate address detection: the lab plans its addresses, and
		// DAD would hold each one back for a second.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("address %s/%d on %s in %s: %w", a, bits, l.Attrs().Name, h.name, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func hostNet(a netip.Addr) *net.IPNet { return prefixNet(netip.PrefixFrom(a, a.BitLen())) }

// programVXLANv6 sets up vxlan-v6.calico on a dual-stack lab's node as
// Felix does for IPv6 pools: IPv6 Pod traffic in VXLAN over the nodes'
// IPv6 addresses (70 bytes of overhead), with static neighbour, FDB and
// onlink route entries to every other node.
func programVXLANv6(s *Spec, n *Node) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth0, err := uplink(h, n.Address6)
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(n.VTEPMAC6)
	if err != nil {
		return fmt.Errorf("VTEP MAC %s: %w", n.VTEPMAC6, err)
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: VXLANDeviceV6, MTU: n.VXLANMTUV6, HardwareAddr: mac},
		VxlanId:      VXLANVNI,
		VtepDevIndex: eth0.Attrs().Index,
		SrcAddr:      n.Address6.AsSlice(),
		Port:         VXLANPort,
		Learning:     false,
	}
	if err := h.nl.LinkAdd(vx); err != nil {
		return fmt.Errorf("create %s: %w", VXLANDeviceV6, err)
	}
	link, err := h.link(VXLANDeviceV6)
	if err != nil {
		return err
	}
	if err := addAddr(h, link, n.VTEP6, 128); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up %s: %w", VXLANDeviceV6, err)
	}
	for _, r := range s.Nodes {
		if r.Name == n.Name {
			continue
		}
		rmac, err := net.ParseMAC(r.VTEPMAC6)
		if err != nil {
			return fmt.Errorf("VTEP MAC of %s: %w", r.Name, err)
		}
		nd := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET6, State: netlink.NUD_PERMANENT,
			IP: r.VTEP6.AsSlice(), HardwareAddr: rmac}
		if err := h.nl.NeighSet(nd); err != nil {
			return fmt.Errorf("neighbour %s of %s: %w", r.VTEP6, r.Name, err)
		}
		fdb := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: r.Address6.AsSlice(), HardwareAddr: rmac}
		if err := h.nl.NeighSet(fdb); err != nil {
			return fmt.Errorf("FDB entry for %s: %w", r.Name, err)
		}
		route := &netlink.Route{Dst: prefixNet(r.Block6), Gw: r.VTEP6.AsSlice(), LinkIndex: link.Attrs().Index,
			Flags: int(netlink.FLAG_ONLINK), Protocol: rtprotFelix}
		if err := h.nl.RouteAdd(route); err != nil {
			return fmt.Errorf("route to %s: %w", r.Block6, err)
		}
	}
	return nil
}
