package hostfacts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds how often a netlink dump is retried when the kernel
// says it changed under us (ErrDumpInterrupted): links and routes come and
// go while Pods start, and a second try almost always gets a clean copy.
const dumpAttempts = 3

// Collect reads what this node knows about its own network.
//
// Everything that depends on the network namespace (netlink, nftables,
// /proc/sys/net, the Felix connection) runs on the calling goroutine, so a
// caller that locked its OS thread into a namespace gets that namespace's
// facts. BIRD is reached by socket path and needs no namespace.
//
// A missing BIRD, Felix or MTU file is a fact, recorded in Facts; so is any
// part that cannot be read, listed in Facts.Errors. Collect fails only when
// it cannot list the links.
func Collect(ctx context.Context, opts Options) (*Facts, error) {
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	return collect(ctx, opts, hostSysfs)
}

func collect(ctx context.Context, opts Options, sys sysfs) (*Facts, error) {
	f := &Facts{CollectedAt: time.Now().UTC()}
	var err error
	if f.Hostname, err = os.Hostname(); err != nil {
		f.Errors = append(f.Errors, fmt.Sprintf("read hostname: %v", err))
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		f.Errors = append(f.Errors, fmt.Sprintf("uname: %v", err))
	}
	f.Kernel = unix.ByteSliceToString(uts.Release[:])

	// A handle without a namespace opens its sockets on this thread.
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	defer nl.Close()
	links, err := dump(nl.LinkList)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links: %w", err)
	}
	c := collector{f}
	c.noteInterrupted("links", err)
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs := c.addresses(nl)
	var linkNames []string
	for _, l := range links {
		link := toLink(l, names, addrs[l.Attrs().Index])
		if link.VXLAN != nil {
			c.vxlanEntries(nl, l.Attrs().Index, link.VXLAN)
		}
		f.Links = append(f.Links, link)
		linkNames = append(linkNames, l.Attrs().Name)
	}
	f.Routes = c.routes(nl, names)
	f.Sysctls = sys.sysctls(linkNames)
	f.Conntrack = sys.conntrack()
	f.KernelModules = sys.kernelModules(f.Kernel)
	view := viewOf(f.Links, f.Routes)
	view.agentPort = opts.AgentPort
	f.Firewall = readFirewall(view)
	f.Calico = calicoState(ctx, opts)
	f.KubeProxy = kubeProxyState(ctx, opts.KubeProxyHealthURL, f.Links)
	return f, nil
}

// collector fills a node's Facts from netlink.
type collector struct{ *Facts }

// dump runs a netlink dump, again while the kernel reports it interrupted.
// The last interrupted result is returned with its error: inconsistent, but
// better than nothing.
func dump[T any](list func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range dumpAttempts {
		if out, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return out, err
}

func (f collector) noteInterrupted(what string, err error) {
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		f.Errors = append(f.Errors, fmt.Sprintf("list %s: kept changing during %d attempts; the list may be inconsistent", what, dumpAttempts))
	}
}

// addresses lists every address by link index, CIDR form.
func (f collector) addresses(nl *netlink.Handle) map[int][]string {
	addrs, err := dump(func() ([]netlink.Addr, error) { return nl.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		f.Errors = append(f.Errors, fmt.Sprintf("list addresses: %v", err))
		return nil
	}
	f.noteInterrupted("addresses", err)
	out := map[int][]string{}
	for _, a := range addrs {
		out[a.LinkIndex] = append(out[a.LinkIndex], a.IPNet.String())
	}
	return out
}

func toLink(l netlink.Link, names map[int]string, addrs []string) Link {
	a := l.Attrs()
	out := Link{
		Name: a.Name, Index: a.Index, Type: l.Type(), MTU: a.MTU,
		State:     linkState(a.Flags&net.FlagUp != 0, a.OperState.String()),
		OperState: a.OperState.String(),
		Master:    names[a.MasterIndex],
		Addresses: addrs,
	}
	if out.Addresses == nil {
		out.Addresses = []string{}
	}
	if len(a.HardwareAddr) > 0 {
		out.MAC = a.HardwareAddr.String()
	}
	if v, ok := l.(*netlink.Vxlan); ok {
		out.VXLAN = &VXLAN{VNI: v.VxlanId, Port: v.Port, Dev: names[v.VtepDevIndex]}
		if v.SrcAddr != nil {
			out.VXLAN.Local = v.SrcAddr.String()
		}
	}
	return out
}

// vxlanEntries reads a VXLAN device's FDB and neighbour entries.
func (f collector) vxlanEntries(nl *netlink.Handle, index int, v *VXLAN) {
	fdb, err := dump(func() ([]netlink.Neigh, error) { return nl.NeighList(index, unix.AF_BRIDGE) })
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		f.Errors = append(f.Errors, fmt.Sprintf("list FDB entries: %v", err))
	}
	for _, n := range fdb {
		if n.IP != nil && len(n.HardwareAddr) > 0 {
			v.FDB = append(v.FDB, FDBEntry{MAC: n.HardwareAddr.String(), Dst: n.IP.String()})
		}
	}
	// Both families: Felix programs vxlan-v6.calico's remote VTEPs as
	// IPv6 neighbours.
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		neigh, err := dump(func() ([]netlink.Neigh, error) { return nl.NeighList(index, fam) })
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			f.Errors = append(f.Errors, fmt.Sprintf("list neighbours: %v", err))
		}
		for _, n := range neigh {
			if n.IP != nil && len(n.HardwareAddr) > 0 && !n.IP.IsLinkLocalUnicast() {
				v.Neighbors = append(v.Neighbors, Neighbor{IP: n.IP.String(), MAC: n.HardwareAddr.String()})
			}
		}
	}
}

// routes lists the main table, IPv4 then IPv6.
func (f collector) routes(nl *netlink.Handle, names map[int]string) []Route {
	out := []Route{}
	for _, fam := range []struct {
		nl   int
		name string
	}{{netlink.FAMILY_V4, "ipv4"}, {netlink.FAMILY_V6, "ipv6"}} {
		rs, err := dump(func() ([]netlink.Route, error) {
			return nl.RouteListFiltered(fam.nl, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			f.Errors = append(f.Errors, fmt.Sprintf("list %s routes: %v", fam.name, err))
			continue
		}
		f.noteInterrupted(fam.name+" routes", err)
		for _, r := range rs {
			out = append(out, toRoute(r, fam.name, names))
		}
	}
	return out
}

func toRoute(r netlink.Route, family string, names map[int]string) Route {
	out := Route{
		Family: family, Dst: "default", Dev: names[r.LinkIndex],
		Type: RouteTypeName(r.Type), Proto: int(r.Protocol), ProtoName: RouteProtoName(int(r.Protocol)),
		Scope: RouteScopeName(int(r.Scope)), Onlink: r.Flags&unix.RTNH_F_ONLINK != 0, Metric: r.Priority,
	}
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
			out.Dst = r.Dst.String()
		}
	}
	if r.Gw != nil {
		out.Gw = r.Gw.String()
	}
	for _, nh := range r.MultiPath {
		h := Nexthop{Dev: names[nh.LinkIndex], Onlink: nh.Flags&unix.RTNH_F_ONLINK != 0}
		if nh.Gw != nil {
			h.Gw = nh.Gw.String()
		}
		out.Nexthops = append(out.Nexthops, h)
	}
	return out
}
