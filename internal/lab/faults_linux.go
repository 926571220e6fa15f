package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddFault injects f into the named lab. A fault with the same key (kind and
// node) is cleared first, so re-adding with a new value replaces it.
func AddFault(ctx context.Context, name string, f Fault) (*Lab, error) {
	return withState(name, func(st *State) error {
		if err := st.Spec.CheckFault(f); err != nil {
			return err
		}
		for i, old := range st.Faults {
			if old.Key() == f.Key() {
				if err := revertFault(ctx, st, old); err != nil {
					return fmt.Errorf("clear %s before replacing it: %w", old, err)
				}
				st.Faults = append(st.Faults[:i], st.Faults[i+1:]...)
				break
			}
		}
		if err := applyFault(ctx, st, f); err != nil {
			// Leave nothing half-applied.
			if rerr := revertFault(ctx, st, f); rerr != nil {
				return fmt.Errorf("inject %s: %w (undoing it failed too: %v)", f, err, rerr)
			}
			return fmt.Errorf("inject %s: %w", f, err)
		}
		st.Faults = append(st.Faults, f)
		return nil
	})
}

// ClearFaults removes the given faults from the named lab, or all of them
// when none is given, restoring the healthy state. It returns what it cleared.
func ClearFaults(ctx context.Context, name string, which ...Fault) ([]Fault, error) {
	var cleared []Fault
	_, err := withState(name, func(st *State) error {
		want := map[string]bool{}
		for _, f := range which {
			want[f.Key()] = true
		}
		var keep []Fault
		var errs []error
		// Newest first, the reverse of how they were stacked up.
		for i := len(st.Faults) - 1; i >= 0; i-- {
			f := st.Faults[i]
			if len(which) > 0 && !want[f.Key()] {
				keep = append([]Fault{f}, keep...)
				continue
			}
			if err := revertFault(ctx, st, f); err != nil {
				errs = append(errs, fmt.Errorf("clear %s: %w", f, err))
				keep = append([]Fault{f}, keep...)
				continue
			}
			cleared = append(cleared, f)
			delete(want, f.Key())
		}
		st.Faults = keep
		if keep == nil {
			st.Faults = []Fault{}
		}
		for k := range want {
			errs = append(errs, invalidf("fault %s is not active (see `podpath lab status`)", k))
		}
		return errors.Join(errs...)
	})
	return cleared, err
}

// withState runs fn on the lab's state under the lab's lock and saves it.
func withState(name string, fn func(*State) error) (*Lab, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if err := RequireRoot(); err != nil {
		return nil, err
	}
	unlock, err := lock(name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(name)
	if err != nil {
		return nil, err
	}
	if st.Phase != PhaseReady {
		return nil, fmt.Errorf("lab %s is %s, not ready: remove it with `podpath lab down --name %s`", name, st.Phase, name)
	}
	ferr := fn(st)
	if err := saveState(st); err != nil {
		return nil, errors.Join(ferr, err)
	}
	return &Lab{State: *st}, ferr
}

// AddFaults checks every fault before it touches the lab, so a typo in
// the second leaves the first un-applied, then injects them in order;
// added hears each one injected.
func (l *Lab) AddFaults(ctx context.Context, faults []Fault, added func(Fault)) error {
	for _, f := range faults {
		if err := l.Spec.CheckFault(f); err != nil {
			return err
		}
	}
	for _, f := range faults {
		if err := l.AddFault(ctx, f); err != nil {
			return err
		}
		added(f)
	}
	return nil
}

// AddFault injects f and refreshes l.
func (l *Lab) AddFault(ctx context.Context, f Fault) error {
	nl, err := AddFault(ctx, l.Spec.Name, f)
	if nl != nil {
		l.State = nl.State
	}
	return err
}

// ClearFaults clears faults (all when none given) and refreshes l.
func (l *Lab) ClearFaults(ctx context.Context, which ...Fault) error {
	_, err := ClearFaults(ctx, l.Spec.Name, which...)
	if st, lerr := LoadState(l.Spec.Name); lerr == nil {
		l.State = *st
	}
	return err
}

func applyFault(ctx context.Context, st *State, f Fault) error { return setFault(ctx, st, f, true) }

func revertFault(ctx context.Context, st *State, f Fault) error { return setFault(ctx, st, f, false) }

// setFault injects (on) or clears (!on) one fault. Clearing restores the
// value the lab was built with, so it is safe to call on a fault that was
// never fully applied.
func setFault(ctx context.Context, st *State, f Fault, on bool) error {
	s := &st.Spec
	switch f.Kind {
	case FaultRouterMTU, FaultRouterNoFragNeeded, FaultRouterNoICMP, FaultDropFragments:
		fab, err := openNS(s.Fabric)
		if err != nil {
			return err
		}
		defer fab.Close()
		switch f.Kind {
		case FaultRouterMTU:
			return setRouterMTU(s, fab, f.Value, on)
		case FaultDropFragments:
			return dropFragments(fab, on)
		}
		table := faultTable(f.Kind)
		if !on {
			return delTable(fab, table)
		}
		return addDropTable(fab, table, icmpErrors(f.Kind == FaultRouterNoFragNeeded))
	}
	if f.Kind == FaultPodMTU {
		for i := range s.Nodes {
			n := &s.Nodes[i]
			mtu := n.PodMTU
			if on {
				mtu = f.Value
			}
			if err := setPodMTU(n, mtu); err != nil {
				return err
			}
		}
		return nil
	}
	n, err := s.Node(f.Node)
	if err != nil {
		return err
	}
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	switch f.Kind {
	case FaultUnderlayMTU, FaultDelay:
		fab, err := openNS(s.Fabric)
		if err != nil {
			return err
		}
		defer fab.Close()
		if f.Kind == FaultDelay {
			if on {
				return startWire(s, fab, n, time.Duration(f.Value)*time.Millisecond)
			}
			return unwire(s, fab, n)
		}
		if err := setMTU(fab, n.FabricPort, pick(on, f.Value, n.UnderlayMTU)); err != nil {
			return err
		}
		return limitLength(fab, n, f.Value, on)
	case FaultNodeMTU:
		return setMTU(h, "eth0", pick(on, f.Value, n.UnderlayMTU))
	case FaultRate:
		return shape(h, f.Value, on)
	case FaultIPForwardOff:
		return h.sysctl("net/ipv4/ip_forward", boolStr(!on))
	case FaultIPv6ForwardOff:
		return h.sysctl("net/ipv6/conf/all/forwarding", boolStr(!on))
	case FaultRPFilterStrict:
		return h.sysctl("net/ipv4/conf/all/rp_filter", boolStr(on))
	case FaultBIRDDown:
		if on {
			stopBIRD(Dir(s.Name), n.Name)
			return nil
		}
		conf, sock, pidf := birdFiles(Dir(s.Name), n.Name)
		if pidAlive(readPid(pidf), sock) {
			return nil
		}
		return runBIRD(ctx, n.Netns, conf, sock, pidf)
	case FaultRouteMissing:
		return setRoute(s, h, n, f, on)
	case FaultForwardPolicyDrop:
		return dockerFilter(h, on)
	case FaultVXLANPort, FaultVXLANVNI:
		port, vni := vxlanSettings(st, n.Name, f, on)
		return reprogramVXLAN(s, n, port, vni)
	case FaultAsymmetricNIC:
		return asymmetricNIC(s, n, on)
	case FaultBGPSecondNIC:
		return bgpSecondNIC(ctx, st, n, on)
	case FaultSecondNICMTU:
		return unusedNIC(h, f.Value, on)
	case FaultUplinkBridge:
		return uplinkBridge(s, n, on)
	case FaultKubeProxyStopped, FaultKubeProxyFlushed:
		if !on && slices.ContainsFunc(st.Faults, func(o Fault) bool {
			return o.Node == f.Node && o.Kind != f.Kind && (o.Kind == FaultKubeProxyStopped || o.Kind == FaultKubeProxyFlushed)
		}) {
			return nil // the node's other kube-proxy fault keeps it stopped
		}
		if err := kubeProxyRunning(ctx, s, n, !on); err != nil || !on || f.Kind != FaultKubeProxyFlushed {
			return err
		}
		return errors.Join(delTableFamily(h, nftables.TableFamilyIPv4, "kube-proxy"), delTableFamily(h, nftables.TableFamilyIPv6, "kube-proxy"))
	case FaultBlockVXLAN, FaultBlockBGP, FaultBlockICMP, FaultLoss, FaultDNSUDPDropped:
		table := faultTable(f.Kind)
		if !on {
			return delTable(h, table)
		}
		return addDropTable(h, table, firewallRules(f))
	}
	return fmt.Errorf("fault kind %s has no implementation", f.Kind)
}

// vxlanSettings is the UDP port and VNI node's vxlan.calico has once f is
// applied (on) or cleared (!on), with the node's other VXLAN fault kept.
func vxlanSettings(st *State, node string, f Fault, on bool) (port, vni int) {
	port, vni = VXLANPort, VXLANVNI
	for _, o := range append(slices.Clone(st.Faults), f) {
		if o.Node != node || (o.Key() == f.Key() && !on) {
			continue
		}
		switch o.Kind {
		case FaultVXLANPort:
			port = o.Value
		case FaultVXLANVNI:
			vni = o.Value
		}
	}
	return port, vni
}

func firewallRules(f Fault) []nftRule {
	switch f.Kind {
	case FaultBlockVXLAN:
		return []nftRule{{nftables.ChainHookInput, portMatch(unix.IPPROTO_UDP, 2, VXLANPort)}}
	case FaultBlockBGP:
		// Both the sessions peers open to this node and the replies to the
		// ones it opens itself.
		return []nftRule{
			{nftables.ChainHookInput, portMatch(unix.IPPROTO_TCP, 2, 179)},
			{nftables.ChainHookInput, portMatch(unix.IPPROTO_TCP, 0, 179)},
		}
	case FaultBlockICMP:
		icmp := l4proto(unix.IPPROTO_ICMP)
		return []nftRule{
			{nftables.ChainHookInput, icmp},
			{nftables.ChainHookForward, icmp},
			{nftables.ChainHookOutput, icmp},
		}
	case FaultLoss:
		return []nftRule{{nftables.ChainHookPostrouting, randomBelow("eth0", f.Value)}}
	case FaultDNSUDPDropped:
		// oifname "cali*" udp dport 53 drop: what the node forwards into
		// its Pods' veths, from other nodes (through the tunnel or the
		// underlay) and from its own Pods, a Service's DNAT done before.
		return []nftRule{{nftables.ChainHookForward, append(ifnamePrefix(expr.MetaKeyOIFNAME, "cali"), portMatch(unix.IPPROTO_UDP, 2, 53)...)}}
	}
	return nil
}

// limitLength makes the underlay-mtu fault exact to the byte. The lowered
// port MTU alone is not: the kernel lets frames 4 bytes over a veth's MTU
// through (room for a VLAN tag) and the bridge passes some encapsulated
// frames above it, where a real switch port drops every frame above its MTU.
// A bridge-family rule on the node's port (and on its wire port, when the
// delay fault has spliced one in) drops every IP packet longer than the MTU.
func limitLength(fab *nsHandle, n *Node, mtu int, on bool) error {
	table := "podpath_underlay_mtu_" + n.Name
	if !on {
		return delTableFamily(fab, nftables.TableFamilyBridge, table)
	}
	toBridge, _ := wireLinks(n)
	var rules []nftRule
	for _, port := range []string{n.FabricPort, toBridge} {
		for _, key := range []expr.MetaKey{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME} {
			rules = append(rules, nftRule{nftables.ChainHookForward, append(ifname(key, port), longerThan(mtu)...)})
		}
		// Frames between the node and the bridge itself (the routed
		// topology's router is the bridge's address) skip the forward hook;
		// and veth lets 4 bytes more than its MTU in (room for a VLAN tag).
		rules = append(rules, nftRule{nftables.ChainHookInput, append(ifname(expr.MetaKeyIIFNAME, port), longerThan(mtu)...)},
			nftRule{nftables.ChainHookOutput, append(ifname(expr.MetaKeyOIFNAME, port), longerThan(mtu)...)})
	}
	return addTable(fab, nftables.TableFamilyBridge, table, rules)
}

// Shaping of the rate fault: a token bucket on the node's eth0 with room
// for 10 ms of traffic and a queue of 50 ms, like a modest NIC and switch.
const (
	rateBurst = 10 * time.Millisecond
	rateQueue = 50 * time.Millisecond
)

// shape puts (on) or removes (!on) a token-bucket filter on the node's eth0.
// tbf rather than netem: it is in every kernel this project meets.
func shape(h *nsHandle, mbit int, on bool) error {
	eth0, err := h.link("eth0")
	if err != nil {
		return err
	}
	attrs := netlink.QdiscAttrs{LinkIndex: eth0.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	if !on {
		err := h.nl.QdiscDel(&netlink.Tbf{QdiscAttrs: attrs})
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove rate limit on %s: %w", h.name, err)
		}
		return nil
	}
	rate := uint64(mbit) * 1_000_000 / 8 // bytes per second
	burst := uint32(max(rate*uint64(rateBurst)/uint64(time.Second), 64<<10))
	q := &netlink.Tbf{QdiscAttrs: attrs, Rate: rate,
		Limit:  uint32(rate*uint64(rateQueue)/uint64(time.Second)) + burst,
		Buffer: netlink.Xmittime(rate, burst)}
	if err := h.nl.QdiscReplace(q); err != nil {
		return fmt.Errorf("rate limit %d Mbit/s on %s: %w", mbit, h.name, err)
	}
	return nil
}

func pick(on bool, faulty, healthy int) int {
	if on {
		return faulty
	}
	return healthy
}

func setMTU(h *nsHandle, ifname string, mtu int) error {
	l, err := h.link(ifname)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU %d on %s in %s: %w", mtu, ifname, h.name, err)
	}
	return nil
}

// setPodMTU sets both ends of every Pod veth on n, as a CNI plugin would
// for new Pods.
func setPodMTU(n *Node, mtu int) error {
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, p := range n.Pods {
		if err := setMTU(h, p.HostIf, mtu); err != nil {
			return err
		}
		ph, err := openNS(p.Netns)
		if err != nil {
			return err
		}
		err = setMTU(ph, "eth0", mtu)
		ph.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// setRoute deletes (on) or restores (!on) n's route to another node's block,
// as Felix or BIRD had programmed it.
func setRoute(s *Spec, h *nsHandle, n *Node, f Fault, on bool) error {
	var r *Node
	for i := range s.Nodes {
		if s.Nodes[i].Block == f.Block || (s.Nodes[i].Block6.IsValid() && s.Nodes[i].Block6 == f.Block) {
			r = &s.Nodes[i]
		}
	}
	if r == nil {
		return invalidf("no node owns block %s", f.Block)
	}
	var route *netlink.Route
	var err error
	if f.Block.Addr().Is6() { // an IPv6 block: Felix's route by vxlan-v6.calico
		var vx netlink.Link
		if vx, err = h.link(VXLANDeviceV6); err == nil {
			route = &netlink.Route{Dst: prefixNet(r.Block6), Gw: r.VTEP6.AsSlice(), LinkIndex: vx.Attrs().Index,
				Flags: int(netlink.FLAG_ONLINK), Protocol: rtprotFelix}
		}
	} else {
		route, err = backendRoute(h, r, s.Backend)
	}
	if err != nil {
		return err
	}
	if on {
		if err := h.nl.RouteDel(route); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route to %s on %s: %w", f.Block, n.Name, err)
		}
		return nil
	}
	if err := h.nl.RouteReplace(route); err != nil {
		return fmt.Errorf("restore route to %s on %s: %w", f.Block, n.Name, err)
	}
	return nil
}

// backendRoute is the route to r's block that the backend programs.
func backendRoute(h *nsHandle, r *Node, b Backend) (*netlink.Route, error) {
	if b == BackendVXLAN {
		vx, err := h.link(VXLANDevice)
		if err != nil {
			return nil, err
		}
		return vxlanRoute(vx.Attrs().Index, *r), nil
	}
	eth0, err := h.link("eth0")
	if err != nil {
		return nil, err
	}
	return bgpRoute(eth0, *r), nil
}
