package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"podpath/internal/cluster/inventory"
)

// ErrNotRoot means the caller lacks the privileges namespaces need.
var ErrNotRoot = errors.New("the lab needs root: it creates network namespaces (run as root, e.g. with sudo)")

// ErrTaken means a different lab already has that name.
var ErrTaken = errors.New("lab name taken")

// RequireRoot returns ErrNotRoot unless the process may build namespaces.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// Lab is a running lab.
type Lab struct {
	State
}

// Up builds the lab the builder describes.
func (b *Builder) Up(ctx context.Context) (*Lab, error) { return Up(ctx, b.cfg) }

// Up builds a lab, or returns the running one when a lab of that name exists
// with the same configuration (up is idempotent). A failed up removes
// everything it created.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	spec, err := SpecOf(cfg)
	if err != nil {
		return nil, err
	}
	if err := RequireRoot(); err != nil {
		return nil, err
	}
	unlock, err := lock(spec.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if st, err := LoadState(spec.Name); err == nil {
		if st.Phase == PhaseReady && sameSpec(&st.Spec, &spec) {
			return &Lab{State: *st}, nil
		}
		return nil, fmt.Errorf("%w: lab %q already exists (%d nodes, backend %s, phase %s); remove it with `podpath lab down --name %s` or pick another --name",
			ErrTaken, spec.Name, len(st.Spec.Nodes), st.Spec.Backend, st.Phase, spec.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if left, _ := listNetns(NamespacePrefix(spec.Name)); len(left) > 0 {
		return nil, fmt.Errorf("%w: namespaces of a lab %q exist without its state (%s …); remove them with `podpath lab down --name %s`",
			ErrTaken, spec.Name, left[0], spec.Name)
	}

	start := time.Now()
	if err := os.MkdirAll(Dir(spec.Name), 0o755); err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	st := &State{Spec: spec, Phase: PhaseCreating, CreatedAt: start.UTC(), Faults: []Fault{}}
	if err := saveState(st); err != nil {
		_ = teardown(spec.Name)
		return nil, err
	}
	if err := build(ctx, st); err != nil {
		if derr := teardown(spec.Name); derr != nil {
			return nil, fmt.Errorf("build lab %s: %w (and cleaning up failed: %v)", spec.Name, err, derr)
		}
		return nil, fmt.Errorf("build lab %s: %w", spec.Name, err)
	}
	st.Phase = PhaseReady
	st.UpSeconds = time.Since(start).Seconds()
	if err := saveState(st); err != nil {
		_ = teardown(spec.Name)
		return nil, err
	}
	return &Lab{State: *st}, nil
}

// sameSpec compares plans as their state file records them.
func sameSpec(a, b *Spec) bool {
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

// Open returns a running lab.
func Open(name string) (*Lab, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	st, err := LoadState(name)
	if err != nil {
		return nil, err
	}
	return &Lab{State: *st}, nil
}

// Down removes a lab: its processes, namespaces (and with them every link,
// route and nftables rule) and state directory. A lab that is not there is
// not an error: down is idempotent.
func Down(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := RequireRoot(); err != nil {
		return err
	}
	unlock, err := lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	return teardown(name)
}

func teardown(name string) error {
	var errs []error
	st, err := LoadState(name)
	if err == nil {
		// Processes first: one still inside a namespace would keep it alive
		// after its name is gone.
		stopAgents(&st.Spec)
		if st.Spec.Kubernetes {
			if err := stopKube(name); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range st.Spec.Nodes {
			stopBIRD(Dir(name), n.Name)
			stopWire(Dir(name), n.Name)
		}
	}
	nss, err := listNetns(NamespacePrefix(name))
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss {
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(Dir(name)); err != nil {
		errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
	}
	if err := restoreNeigh(); err != nil {
		errs = append(errs, err)
	}
	// The last lab out removes the (then empty) state root and its parent;
	// os.Remove refuses non-empty directories.
	_ = os.Remove(StateRoot)
	_ = os.Remove(filepath.Dir(StateRoot))
	return errors.Join(errs...)
}

// lock serialises lab commands (up, down, fault) across processes with a
// flock on the state root. Commands are short, so one lock for all labs
// costs nothing, and it leaves no lock file behind: teardown removes the
// state root once it is empty. A waiter that wakes holding a directory
// that was removed meanwhile tries again on the new one.
func lock(string) (func(), error) {
	for {
		if err := os.MkdirAll(StateRoot, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", StateRoot, err)
		}
		f, err := os.Open(StateRoot)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", StateRoot, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", StateRoot, err)
		}
		held, herr := f.Stat()
		now, nerr := os.Stat(StateRoot)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

func build(ctx context.Context, st *State) error {
	s := &st.Spec
	if err := makeNeighRoom(len(s.Nodes)); err != nil {
		return err
	}
	if err := buildFabric(s); err != nil {
		return err
	}
	for i := range s.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := buildNode(s, &s.Nodes[i]); err != nil {
			return fmt.Errorf("%s: %w", s.Nodes[i].Name, err)
		}
	}
	switch s.Backend {
	case BackendVXLAN:
		for i := range s.Nodes {
			if s.HasIPv4() {
				if err := programVXLAN(s, &s.Nodes[i]); err != nil {
					return fmt.Errorf("%s: vxlan: %w", s.Nodes[i].Name, err)
				}
			}
			if s.HasIPv6() {
				if err := programVXLANv6(s, &s.Nodes[i]); err != nil {
					return fmt.Errorf("%s: vxlan-v6: %w", s.Nodes[i].Name, err)
				}
			}
		}
	case BackendBGP:
		st.BIRDSockets = map[string]string{}
		for i := range s.Nodes {
			sock, err := startBIRD(ctx, s, &s.Nodes[i])
			if err != nil {
				return fmt.Errorf("%s: bird: %w", s.Nodes[i].Name, err)
			}
			st.BIRDSockets[s.Nodes[i].Name] = sock
		}
	}
	if err := writeInventory(st); err != nil {
		return err
	}
	if s.Kubernetes {
		return buildKube(ctx, st)
	}
	if s.Agents {
		return startAgents(ctx, s)
	}
	return nil
}

func writeInventory(st *State) error {
	dir := Dir(st.Spec.Name)
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("make agent token: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write agent token: %w", err)
	}
	data, err := inventory.Marshal(st.Spec.Inventory("token"))
	if err != nil {
		return err
	}
	st.Inventory = filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(st.Inventory, data, 0o644); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}

func buildFabric(s *Spec) error {
	if err := createNetns(s.Fabric); err != nil {
		return err
	}
	h, err := openNS(s.Fabric)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	// The fabric routes only between its own subnets: it has no default route
	// and no link out of the lab.
	if err := h.sysctl("net/ipv4/ip_forward", boolStr(len(s.Subnets) > 1)); err != nil {
		return err
	}
	if s.HasIPv6() {
		if err := h.sysctls(ipv6Sysctls(len(s.Subnets) > 1)); err != nil {
			return err
		}
	}
	for _, sn := range s.Subnets {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: sn.Bridge, MTU: MaxMTU}}
		if err := h.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", sn.Bridge, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: sn.Gateway.AsSlice(), Mask: net.CIDRMask(sn.Prefix.Bits(), 32)}}
		if err := h.nl.AddrAdd(br, addr); err != nil {
			return fmt.Errorf("address %s on %s: %w", sn.Gateway, sn.Bridge, err)
		}
		if sn.Gateway6.IsValid() {
			if err := addAddr(h, br, sn.Gateway6, sn.Prefix6.Bits()); err != nil {
				return err
			}
		}
		if err := h.nl.LinkSetUp(br); err != nil {
			return fmt.Errorf("bring up %s: %w", sn.Bridge, err)
		}
	}
	return nil
}

// ipv6Sysctls are a dual-stack lab namespace's IPv6 settings, set before
// its interfaces are made (they copy conf/default): forwarding as asked,
// no router advertisements taken, no duplicate address detection (the
// lab plans its addresses; DAD would hold the link-local gateways of the
// Pods back for a second).
func ipv6Sysctls(forward bool) [][2]string {
	return [][2]string{
		{"net/ipv6/conf/all/forwarding", boolStr(forward)},
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/all/accept_ra", "0"},
		{"net/ipv6/conf/default/accept_ra", "0"},
	}
}

func buildNode(s *Spec, n *Node) error {
	if err := createNetns(n.Netns); err != nil {
		return err
	}
	h, err := openNS(n.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	// Interfaces copy conf/default when created, so set it first. rp_filter 0
	// everywhere is the healthy state; the rp-filter-strict fault raises "all",
	// which wins over the per-interface value (the kernel takes the larger).
	kvs := [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
	}
	if s.HasIPv6() {
		kvs = append(kvs, ipv6Sysctls(true)...)
	}
	if err := h.sysctls(kvs); err != nil {
		return err
	}
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	f, err := openNS(s.Fabric)
	if err != nil {
		return err
	}
	defer f.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: n.FabricPort, MTU: n.UnderlayMTU},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(h.fd),
		PeerMTU:       uint32(n.UnderlayMTU),
		PeerTxQLen:    -1,
	}
	if err := f.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create underlay veth %s: %w", n.FabricPort, err)
	}
	if err := attachPort(f, n.FabricPort, s.Subnets[n.Subnet].Bridge); err != nil {
		return err
	}
	eth0, err := h.link("eth0")
	if err != nil {
		return err
	}
	// A real NIC puts MTU-sized frames on the wire whatever TSO did above it.
	// veth would instead hand whole GSO super-packets to its peer, and the
	// kernel skips the MTU check for those, so a lowered MTU in the fabric
	// would never bite TCP. One segment per skb makes the wire honest.
	if err := h.nl.LinkSetGSOMaxSegs(eth0, 1); err != nil {
		return fmt.Errorf("set gso_max_segs on eth0: %w", err)
	}
	if s.HasIPv4() {
		if err := addAddr(h, eth0, n.Address, s.Subnets[n.Subnet].Prefix.Bits()); err != nil {
			return err
		}
	}
	if err := h.nl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("bring up eth0: %w", err)
	}
	if s.HasIPv4() {
		gw := s.Subnets[n.Subnet].Gateway
		if err := h.nl.RouteAdd(&netlink.Route{Gw: gw.AsSlice(), LinkIndex: eth0.Attrs().Index}); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
		// Calico IPAM: the node owns its block and blackholes what it has not handed out.
		if err := h.nl.RouteAdd(&netlink.Route{Dst: prefixNet(n.Block), Type: unix.RTN_BLACKHOLE}); err != nil {
			return fmt.Errorf("blackhole %s: %w", n.Block, err)
		}
	}
	if s.HasIPv6() {
		sn := s.Subnets[n.Subnet]
		if err := addAddr(h, eth0, n.Address6, sn.Prefix6.Bits()); err != nil {
			return err
		}
		if err := h.nl.RouteAdd(&netlink.Route{Gw: sn.Gateway6.AsSlice(), LinkIndex: eth0.Attrs().Index}); err != nil {
			return fmt.Errorf("default route via %s: %w", sn.Gateway6, err)
		}
		if err := h.nl.RouteAdd(&netlink.Route{Dst: prefixNet(n.Block6), Type: unix.RTN_BLACKHOLE}); err != nil {
			return fmt.Errorf("blackhole %s: %w", n.Block6, err)
		}
	}
	for i := range n.Pods {
		if err := buildPod(h, s, n, &n.Pods[i]); err != nil {
			return fmt.Errorf("%s: %w", n.Pods[i].Name, err)
		}
	}
	return nil
}

// attachPort enslaves a fabric-side link to its bridge and brings it up.
func attachPort(f *nsHandle, port, bridge string) error {
	l, err := f.link(port)
	if err != nil {
		return err
	}
	br, err := f.link(bridge)
	if err != nil {
		return err
	}
	if err := f.nl.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridge, err)
	}
	if err := f.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s: %w", port, err)
	}
	return nil
}

var caliMAC, _ = net.ParseMAC(CaliMAC)

// buildPod wires a Pod the way the Calico CNI plugin does.
func buildPod(h *nsHandle, s *Spec, n *Node, p *Pod) error {
	if err := createNetns(p.Netns); err != nil {
		return err
	}
	ph, err := openNS(p.Netns)
	if err != nil {
		return err
	}
	defer ph.Close()
	if s.HasIPv6() {
		if err := ph.sysctls(ipv6Sysctls(false)); err != nil {
			return err
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostIf, MTU: n.PodMTU, HardwareAddr: caliMAC},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(ph.fd),
		PeerMTU:       uint32(n.PodMTU),
		PeerTxQLen:    -1,
	}
	if err := h.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", p.HostIf, err)
	}
	host, err := h.link(p.HostIf)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", p.HostIf, err)
	}
	if err := linkUp(ph, "lo"); err != nil {
		return err
	}
	eth0, err := ph.link("eth0")
	if err != nil {
		return err
	}
	if err := ph.nl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("bring up Pod eth0: %w", err)
	}
	if s.HasIPv4() {
		if err := wirePodIPv4(h, ph, host, eth0, p); err != nil {
			return err
		}
	}
	if !p.Address6.IsValid() {
		return nil
	}
	// IPv6 as the Calico CNI plugin wires it: a /128 on eth0, the default
	// route via the host side's link-local address (from its MAC), and a
	// /128 route to the Pod on the host side.
	if err := addAddr(ph, eth0, p.Address6, 128); err != nil {
		return err
	}
	gw6 := netip.MustParseAddr(PodGatewayV6)
	if err := ph.nl.RouteAdd(&netlink.Route{Gw: gw6.AsSlice(), LinkIndex: eth0.Attrs().Index}); err != nil {
		return fmt.Errorf("default route via %s: %w", PodGatewayV6, err)
	}
	if err := h.nl.RouteAdd(&netlink.Route{Dst: hostNet(p.Address6), LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s via %s: %w", p.Address6, p.HostIf, err)
	}
	return nil
}

// wirePodIPv4 gives a Pod its IPv4 as the Calico CNI plugin does: a /32
// on eth0, the default route via 169.254.1.1, which Felix answers for by
// proxy ARP on the host side, and a /32 route to the Pod there.
func wirePodIPv4(h, ph *nsHandle, host, eth0 netlink.Link, p *Pod) error {
	for _, kv := range [][2]string{
		{"net/ipv4/conf/" + p.HostIf + "/proxy_arp", "1"},
		{"net/ipv4/neigh/" + p.HostIf + "/proxy_delay", "0"},
	} {
		if err := h.sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := h.nl.RouteAdd(&netlink.Route{Dst: hostNet(p.Address), LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s via %s: %w", p.Address, p.HostIf, err)
	}
	if err := addAddr(ph, eth0, p.Address, 32); err != nil {
		return err
	}
	gw := net.ParseIP(PodGateway).To4()
	if err := ph.nl.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, LinkIndex: eth0.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route to %s: %w", PodGateway, err)
	}
	if err := ph.nl.RouteAdd(&netlink.Route{Gw: gw, LinkIndex: eth0.Attrs().Index}); err != nil {
		return fmt.Errorf("default route via %s: %w", PodGateway, err)
	}
	return nil
}

func linkUp(h *nsHandle, name string) error {
	l, err := h.link(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s in %s: %w", name, h.name, err)
	}
	return nil
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
