// Package cni is the lab's Calico-style CNI plugin: the binary containerd
// calls, through the CNI spec, for every Pod sandbox on a lab node. It wires
// a Pod as Calico's plugin and Felix do: a veth whose host side is cali*
// (the name Calico derives from the Pod's namespace and name) with MAC
// ee:ee:ee:ee:ee:ee and proxy ARP, a /32 from the node's /26 block, a
// link-scoped route to 169.254.1.1 and the default route through it in the
// Pod, a /32 route to the Pod on the host, and the MTU its network
// configuration says (the "mtu" field calico-node renders from calico-config,
// so a changed MTU reaches new Pods as in a real cluster).
//
// IPAM is the node's own block, read from BlockFile (the lab assigns blocks
// as Calico's IPAM gives each node an affine one); addresses are leased in
// files under /var/lib/cni/networks as host-local does.
package cni

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Where the plugin keeps and finds its state on the node.
const (
	BlockFile    = "/var/lib/calico/podpath-ipam-block" // the node's block, one CIDR
	felixMTUFile = "/var/lib/calico/mtu"
	leaseDir     = "/var/lib/cni/networks"
	gateway      = "169.254.1.1"
	hostMAC      = "ee:ee:ee:ee:ee:ee"
	// ProgramName is the plugin's type in the network configuration and its
	// file name in the CNI bin directory.
	ProgramName = "calico"
	defaultMTU  = 1500 // Calico's plugin without an "mtu" field
)

// Main runs the plugin: containerd sets CNI_COMMAND and the other CNI_*
// variables and passes the configuration on stdin.
func Main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del, Check: check},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "podpath lab Calico-style CNI plugin")
}

type netConf struct {
	types.NetConf
	MTU int `json:"mtu"`
}

func parse(stdin []byte) (*netConf, error) {
	var c netConf
	if err := json.Unmarshal(stdin, &c); err != nil {
		return nil, fmt.Errorf("parse network configuration: %w", err)
	}
	if c.MTU == 0 {
		// As Calico's plugin: without an "mtu", the one Felix picked.
		c.MTU = defaultMTU
		if b, err := os.ReadFile(felixMTUFile); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
				c.MTU = v
			}
		}
	}
	if c.MTU < 576 || c.MTU > 9216 {
		return nil, fmt.Errorf("network configuration: mtu %d is out of range (576-9216)", c.MTU)
	}
	return &c, nil
}

// VethName is the host side's name as Calico's plugin makes it: "cali" and
// the first 11 hex digits of SHA-1 over "namespace.pod".
func VethName(namespace, pod string) string {
	sum := sha1.Sum([]byte(namespace + "." + pod))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

func podOf(args string) (namespace, pod string, err error) {
	for _, kv := range strings.Split(args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			namespace = v
		case "K8S_POD_NAME":
			pod = v
		}
	}
	if namespace == "" || pod == "" {
		return "", "", errors.New("CNI_ARGS lack K8S_POD_NAMESPACE or K8S_POD_NAME: this plugin wires Kubernetes Pods only")
	}
	return namespace, pod, nil
}

func add(args *skel.CmdArgs) error {
	conf, err := parse(args.StdinData)
	if err != nil {
		return err
	}
	namespace, pod, err := podOf(args.Args)
	if err != nil {
		return err
	}
	ip, err := lease(conf.Name, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	hostIf := VethName(namespace, pod)
	res, err := wire(args, hostIf, ip, conf.MTU)
	if err != nil {
		_ = release(conf.Name, args.ContainerID)
		return err
	}
	res.CNIVersion = conf.CNIVersion
	return types.PrintResult(res, conf.CNIVersion)
}

func wire(args *skel.CmdArgs, hostIf string, ip netip.Addr, mtu int) (*current.Result, error) {
	// A leftover of an earlier sandbox of the same Pod goes first, as Calico's does.
	if old, err := netlink.LinkByName(hostIf); err == nil {
		_ = netlink.LinkDel(old)
	}
	target, err := netns.GetFromPath(args.Netns)
	if err != nil {
		return nil, fmt.Errorf("open the Pod's netns %s: %w", args.Netns, err)
	}
	defer target.Close()
	mac, _ := net.ParseMAC(hostMAC)
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: hostIf, MTU: mtu, HardwareAddr: mac},
		PeerName:  args.IfName, PeerNamespace: netlink.NsFd(target), PeerMTU: uint32(mtu), PeerTxQLen: -1,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s: %w", hostIf, err)
	}
	fail := func(err error) (*current.Result, error) {
		if l, lerr := netlink.LinkByName(hostIf); lerr == nil {
			_ = netlink.LinkDel(l)
		}
		return nil, err
	}
	// Felix answers the Pod's ARP for 169.254.1.1 at once, by proxy ARP.
	for _, kv := range [][2]string{{"proxy_arp", "1"}, {"../../neigh/" + hostIf + "/proxy_delay", "0"}} {
		p := filepath.Join("/proc/sys/net/ipv4/conf", hostIf, kv[0])
		if err := os.WriteFile(p, []byte(kv[1]), 0o644); err != nil {
			return fail(fmt.Errorf("sysctl %s: %w", p, err))
		}
	}
	host, err := netlink.LinkByName(hostIf)
	if err != nil {
		return fail(fmt.Errorf("find %s: %w", hostIf, err))
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fail(fmt.Errorf("bring up %s: %w", hostIf, err))
	}
	podNet := &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}
	if err := netlink.RouteReplace(&netlink.Route{Dst: podNet, LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fail(fmt.Errorf("route %s via %s: %w", ip, hostIf, err))
	}
	nl, err := netlink.NewHandleAt(target)
	if err != nil {
		return fail(fmt.Errorf("netlink in the Pod's netns: %w", err))
	}
	defer nl.Close()
	eth, err := nl.LinkByName(args.IfName)
	if err != nil {
		return fail(fmt.Errorf("find %s in the Pod: %w", args.IfName, err))
	}
	if err := nl.AddrAdd(eth, &netlink.Addr{IPNet: podNet}); err != nil {
		return fail(fmt.Errorf("address %s on the Pod's %s: %w", ip, args.IfName, err))
	}
	if err := nl.LinkSetUp(eth); err != nil {
		return fail(fmt.Errorf("bring up the Pod's %s: %w", args.IfName, err))
	}
	if lo, err := nl.LinkByName("lo"); err == nil {
		_ = nl.LinkSetUp(lo)
	}
	gw := net.ParseIP(gateway).To4()
	if err := nl.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, LinkIndex: eth.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fail(fmt.Errorf("route to %s in the Pod: %w", gateway, err))
	}
	if err := nl.RouteAdd(&netlink.Route{Gw: gw, LinkIndex: eth.Attrs().Index}); err != nil {
		return fail(fmt.Errorf("default route in the Pod: %w", err))
	}
	idx := 1
	return &current.Result{
		Interfaces: []*current.Interface{
			{Name: hostIf, Mac: host.Attrs().HardwareAddr.String()},
			{Name: args.IfName, Mac: eth.Attrs().HardwareAddr.String(), Sandbox: args.Netns},
		},
		IPs:    []*current.IPConfig{{Interface: &idx, Address: *podNet}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw}},
	}, nil
}

func del(args *skel.CmdArgs) error {
	conf, err := parse(args.StdinData)
	if err != nil {
		return err
	}
	// DEL must succeed for a Pod half set up or already gone: nothing found is fine.
	if namespace, pod, err := podOf(args.Args); err == nil {
		if l, err := netlink.LinkByName(VethName(namespace, pod)); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("delete veth: %w", err)
			}
		}
	}
	return release(conf.Name, args.ContainerID)
}

func check(args *skel.CmdArgs) error {
	namespace, pod, err := podOf(args.Args)
	if err != nil {
		return err
	}
	if _, err := netlink.LinkByName(VethName(namespace, pod)); err != nil {
		return fmt.Errorf("the Pod's host veth is gone: %w", err)
	}
	return nil
}

// lease takes a free address of the node's block for the container, or
// the one it already holds. Leases are files named by address holding the
// container ID, under a flock, as host-local keeps them.
func lease(network, container, ifname string) (netip.Addr, error) {
	data, err := os.ReadFile(BlockFile)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read the node's IPAM block: %w", err)
	}
	block, err := netip.ParsePrefix(strings.TrimSpace(string(data)))
	if err != nil || !block.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("the node's IPAM block %q in %s is not an IPv4 CIDR", strings.TrimSpace(string(data)), BlockFile)
	}
	dir := filepath.Join(leaseDir, network)
	unlock, err := lockDir(dir)
	if err != nil {
		return netip.Addr{}, err
	}
	defer unlock()
	// The block's first address is the node's tunnel address, its last is
	// left free, as the lab's Pods always had them.
	a := block.Addr().Next()
	for ; block.Contains(a.Next()); a = a.Next() {
		p := filepath.Join(dir, a.String())
		owner, err := os.ReadFile(p)
		if err == nil {
			if strings.SplitN(string(owner), "\n", 2)[0] == container {
				return a, nil
			}
			continue
		}
		if err := os.WriteFile(p, []byte(container+"\n"+ifname+"\n"), 0o644); err != nil {
			return netip.Addr{}, fmt.Errorf("lease %s: %w", a, err)
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("the node's block %s has no free address", block)
}

func release(network, container string) error {
	dir := filepath.Join(leaseDir, network)
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if owner, err := os.ReadFile(p); err == nil && e.Name() != "lock" && strings.SplitN(string(owner), "\n", 2)[0] == container {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("release %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open IPAM lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock IPAM: %w", err)
	}
	return func() { f.Close() }, nil
}
