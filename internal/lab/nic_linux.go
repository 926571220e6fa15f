package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A node's second NIC: eth1 on a second network in the fabric, bridge
// br-c, 198.51.100.N/24 (TEST-NET-2, reserved for documentation: the
// underlay's 198.18.0.0/15 is taken by its two subnets). What Calico's
// address auto-detection (IP_AUTODETECTION_METHOD=first-found) may pick
// instead of eth0.
const secondBridge = "br-c"

var (
	secondNet     = netip.MustParsePrefix("198.51.100.0/24")
	secondGateway = netip.MustParseAddr("198.51.100.254")
)

// SecondAddress is the address a second-NIC fault gives node n's eth1.
func SecondAddress(n *Node) netip.Addr {
	i, _ := nodeIndex(n.Name)
	return addrAdd(secondNet.Addr(), i)
}

func secondPort(n *Node) string { return "c" + n.FabricPort[1:] }

// setSecondNIC adds (on) or removes n's eth1. routed puts the router's
// address on the second network, so the other nodes reach eth1 through the
// router; without it the network is a dead end for them (a storage or
// management network only some nodes have).
func setSecondNIC(s *Spec, fab, h *nsHandle, n *Node, routed, on bool) error {
	if !on {
		if l, err := h.nl.LinkByName("eth1"); err == nil {
			if err := h.nl.LinkDel(l); err != nil {
				return fmt.Errorf("delete eth1 in %s: %w", h.name, err)
			}
		}
		return removeSecondBridge(s, fab)
	}
	br, err := fab.nl.LinkByName(secondBridge)
	if err != nil {
		br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: secondBridge, MTU: MaxMTU}}
		if err := fab.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", secondBridge, err)
		}
		if err := fab.nl.LinkSetUp(br); err != nil {
			return fmt.Errorf("bring up %s: %w", secondBridge, err)
		}
	}
	if routed {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: secondGateway.AsSlice(), Mask: net.CIDRMask(secondNet.Bits(), 32)}}
		if err := fab.nl.AddrReplace(br, addr); err != nil {
			return fmt.Errorf("router address on %s: %w", secondBridge, err)
		}
		if err := fab.sysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: secondPort(n), MTU: n.UnderlayMTU},
		PeerName:      "eth1",
		PeerNamespace: netlink.NsFd(h.fd),
		PeerMTU:       uint32(n.UnderlayMTU),
		PeerTxQLen:    -1,
	}
	if err := fab.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create second NIC veth %s: %w", secondPort(n), err)
	}
	if err := attachPort(fab, secondPort(n), secondBridge); err != nil {
		return err
	}
	eth1, err := h.link("eth1")
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetGSOMaxSegs(eth1, 1); err != nil { // as on eth0: MTU-sized frames on the wire
		return fmt.Errorf("set gso_max_segs on eth1: %w", err)
	}
	if err := addAddr(h, eth1, SecondAddress(n), secondNet.Bits()); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(eth1); err != nil {
		return fmt.Errorf("bring up eth1 in %s: %w", h.name, err)
	}
	return nil
}

// removeSecondBridge deletes br-c once no node's eth1 is on it, and gives
// the fabric back the forwarding it was built with.
func removeSecondBridge(s *Spec, fab *nsHandle) error {
	br, err := fab.nl.LinkByName(secondBridge)
	if err != nil {
		return nil
	}
	links, err := fab.nl.LinkList()
	if err != nil {
		return fmt.Errorf("list links in %s: %w", fab.name, err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return nil // another node's second NIC
		}
	}
	if err := fab.nl.LinkDel(br); err != nil {
		return fmt.Errorf("delete bridge %s: %w", secondBridge, err)
	}
	return fab.sysctl("net/ipv4/ip_forward", boolStr(len(s.Subnets) > 1))
}

// asymmetricNIC: n's peers send VXLAN to its eth1 (their FDB entries for
// its VTEP point there), its own routes back to them leave by eth0, and
// eth1's reverse-path filter is strict, as a distribution's default of
// rp_filter=1 gives every new interface.
func asymmetricNIC(s *Spec, n *Node, on bool) error {
	fab, h, err := openFabricAndNode(s, n)
	if err != nil {
		return err
	}
	defer fab.Close()
	defer h.Close()
	if on {
		if err := setSecondNIC(s, fab, h, n, true, true); err != nil {
			return err
		}
		if err := h.sysctl("net/ipv4/conf/eth1/rp_filter", "1"); err != nil {
			return err
		}
	}
	dst := n.Address
	if on {
		dst = SecondAddress(n)
	}
	mac, err := net.ParseMAC(n.VTEPMAC)
	if err != nil {
		return fmt.Errorf("VTEP MAC %s: %w", n.VTEPMAC, err)
	}
	for i := range s.Nodes {
		r := &s.Nodes[i]
		if r.Name == n.Name {
			continue
		}
		if err := setFDB(r, mac, dst); err != nil {
			return err
		}
	}
	if !on {
		return setSecondNIC(s, fab, h, n, true, false)
	}
	return nil
}

// openFabricAndNode opens the fabric's namespace and n's.
func openFabricAndNode(s *Spec, n *Node) (fab, h *nsHandle, err error) {
	if fab, err = openNS(s.Fabric); err != nil {
		return nil, nil, err
	}
	if h, err = openNS(n.Netns); err != nil {
		fab.Close()
		return nil, nil, err
	}
	return fab, h, nil
}

// setFDB points r's FDB entry for a VTEP MAC at dst, as Felix does when a
// node's address changes.
func setFDB(r *Node, mac net.HardwareAddr, dst netip.Addr) error {
	h, err := openNS(r.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	vx, err := h.link(VXLANDevice)
	if err != nil {
		return err
	}
	fdb := &netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
		Flags: netlink.NTF_SELF, IP: dst.AsSlice(), HardwareAddr: mac}
	if err := h.nl.NeighSet(fdb); err != nil {
		return fmt.Errorf("FDB entry %s → %s on %s: %w", mac, dst, r.Name, err)
	}
	return nil
}

// bgpSecondNIC: n's BGP address is its eth1's, on a network the other
// nodes cannot reach: n peers from it and they peer with it there, and no
// session comes up. Every node's BIRD is reconfigured with that mesh.
func bgpSecondNIC(ctx context.Context, st *State, n *Node, on bool) error {
	s := &st.Spec
	fab, h, err := openFabricAndNode(s, n)
	if err != nil {
		return err
	}
	defer fab.Close()
	defer h.Close()
	if on {
		if err := setSecondNIC(s, fab, h, n, false, true); err != nil {
			return err
		}
	}
	addrs := map[string]netip.Addr{}
	for _, f := range st.Faults {
		if f.Kind == FaultBGPSecondNIC && f.Node != n.Name {
			if o, err := s.Node(f.Node); err == nil {
				addrs[o.Name] = SecondAddress(o)
			}
		}
	}
	if on {
		addrs[n.Name] = SecondAddress(n)
	}
	for i := range s.Nodes {
		if _, err := startBIRDWith(ctx, s, &s.Nodes[i], addrs); err != nil {
			return fmt.Errorf("%s: restart bird: %w", s.Nodes[i].Name, err)
		}
	}
	if !on {
		return setSecondNIC(s, fab, h, n, false, false)
	}
	return nil
}

// UnusedNIC is the second-nic-mtu fault's interface: a NIC name Felix's
// default mtuIfacePattern matches (en + s), on no network the nodes use.
const UnusedNIC = "ens9"

// unusedNIC adds (on) or removes the fault's NIC: one end of a veth pair
// (the other, pp-ens9, matches no pattern), both up so the kernel counts
// ens9 as running, as Felix does, with the given MTU and no address or
// route. A veth rather than a dummy: every kernel the lab runs on has it.
func unusedNIC(h *nsHandle, mtu int, on bool) error {
	if l, err := h.nl.LinkByName(UnusedNIC); err == nil {
		if err := h.nl.LinkDel(l); err != nil { // takes its peer with it
			return fmt.Errorf("remove %s in %s: %w", UnusedNIC, h.name, err)
		}
	}
	if !on {
		return nil
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: UnusedNIC, MTU: mtu}, PeerName: "pp-" + UnusedNIC}
	if err := h.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("add %s in %s: %w", UnusedNIC, h.name, err)
	}
	for _, name := range []string{"pp-" + UnusedNIC, UnusedNIC} {
		l, err := h.nl.LinkByName(name)
		if err == nil {
			err = h.nl.LinkSetMTU(l, mtu)
		}
		if err == nil {
			err = h.nl.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("set %s up in %s: %w", name, h.name, err)
		}
	}
	return nil
}

// Names of the uplink-bridge fault: the bridge that takes the node's
// addresses, and what its NIC is renamed to.
const (
	UplinkBridge = "br0"
	UplinkNIC    = "em1"
)

// uplinkBridge (on) makes the node's uplink br0 over its NIC renamed em1,
// moving the node's addresses and routes to br0 and vxlan.calico's parent
// with them, as a host set up for VMs has it; off puts eth0 back.
func uplinkBridge(s *Spec, n *Node, on bool) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	from, to, nic := "eth0", UplinkBridge, "eth0"
	if !on {
		from, to, nic = UplinkBridge, "eth0", UplinkNIC
	}
	err = moveUplink(h, from, to, nic, on)
	h.Close()
	if err != nil {
		return err
	}
	// Felix re-creates vxlan.calico on the interface that now holds the
	// node's address.
	if err := reprogramVXLAN(s, n, VXLANPort, VXLANVNI); err != nil {
		return err
	}
	if s.Dual() {
		return reprogramVXLANv6(s, n)
	}
	return nil
}

// moveUplink moves the addresses and routes of link from to link to:
// eth0 to a new br0 over eth0 renamed em1 (toBridge), or back.
func moveUplink(h *nsHandle, from, to, nic string, toBridge bool) error {
	src, err := h.link(from)
	if err != nil {
		return err
	}
	addrs, err := h.nl.AddrList(src, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses of %s in %s: %w", from, h.name, err)
	}
	routes, err := h.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: src.Attrs().Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes of %s in %s: %w", from, h.name, err)
	}
	var dst netlink.Link
	if toBridge {
		if err := h.nl.LinkSetDown(src); err != nil {
			return fmt.Errorf("take %s down in %s: %w", from, h.name, err)
		}
		if err := h.nl.LinkSetName(src, UplinkNIC); err != nil {
			return fmt.Errorf("rename %s to %s in %s: %w", from, UplinkNIC, h.name, err)
		}
		// The bridge keeps the NIC's MAC, so the other nodes' neighbour
		// entries stay right.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: to, MTU: src.Attrs().MTU, HardwareAddr: src.Attrs().HardwareAddr}}
		if err := h.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("create %s in %s: %w", to, h.name, err)
		}
		if dst, err = h.link(to); err != nil {
			return err
		}
		nicLink, err := h.link(UplinkNIC)
		if err != nil {
			return err
		}
		if err := h.nl.LinkSetMaster(nicLink, dst); err != nil {
			return fmt.Errorf("attach %s to %s in %s: %w", UplinkNIC, to, h.name, err)
		}
		if err := h.nl.LinkSetUp(nicLink); err != nil {
			return fmt.Errorf("bring up %s in %s: %w", UplinkNIC, h.name, err)
		}
	} else {
		nicLink, err := h.link(nic)
		if err != nil {
			return err
		}
		if err := h.nl.LinkDel(src); err != nil { // the bridge; its port is released
			return fmt.Errorf("delete %s in %s: %w", from, h.name, err)
		}
		if err := h.nl.LinkSetDown(nicLink); err != nil {
			return fmt.Errorf("take %s down in %s: %w", nic, h.name, err)
		}
		if err := h.nl.LinkSetName(nicLink, to); err != nil {
			return fmt.Errorf("rename %s to %s in %s: %w", nic, to, h.name, err)
		}
		if dst, err = h.link(to); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue // the kernel makes the new link's own
		}
		if toBridge {
			// Its label still reads eth0 (the kernel renamed it with the
			// link); IPv6's went when the link went down (keep_addr_on_down 0).
			a.Label = ""
			if err := h.nl.AddrDel(src, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("remove %s from %s in %s: %w", a.IPNet, UplinkNIC, h.name, err)
			}
		}
		na := &netlink.Addr{IPNet: a.IPNet}
		if a.IP.To4() == nil {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := h.nl.AddrReplace(dst, na); err != nil {
			return fmt.Errorf("address %s on %s in %s: %w", a.IPNet, to, h.name, err)
		}
	}
	if err := h.nl.LinkSetUp(dst); err != nil {
		return fmt.Errorf("bring up %s in %s: %w", to, h.name, err)
	}
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL {
			continue // the addresses' own, back with them
		}
		r.LinkIndex, r.ILinkIndex = dst.Attrs().Index, 0
		if err := h.nl.RouteReplace(&r); err != nil {
			return fmt.Errorf("route %s on %s in %s: %w", r.Dst, to, h.name, err)
		}
	}
	return nil
}
