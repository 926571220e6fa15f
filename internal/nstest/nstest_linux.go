// Package nstest builds network namespaces for tests: fresh ones with lo
// up, veth links between them, and a way to run code inside one. Each is
// removed when its test ends.
package nstest

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"podpath/internal/nsenter"
)

// RequireRoot skips the test unless it may make namespaces, and under -short.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (network namespaces) and not -short")
	}
}

// New is a fresh network namespace with lo up, closed at the end of the
// test (the kernel removes it with its last reference).
func New(t *testing.T) netns.NsHandle {
	t.Helper()
	return create(t, func() (netns.NsHandle, error) { return netns.New() })
}

// Named is a fresh namespace reachable by name (under /run/netns, as `ip
// netns add` makes them), removed at the end of the test.
func Named(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	_ = netns.DeleteNamed(name) // a leftover of a killed run
	if err := nsenter.ShareNetnsDir(); err != nil {
		t.Fatal(err)
	}
	ns := create(t, func() (netns.NsHandle, error) { return netns.NewNamed(name) })
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	return ns
}

func create(t *testing.T, mk func() (netns.NsHandle, error)) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := mk() // switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h := Handle(t, ns)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bring lo up: %v", err)
	}
	return ns
}

// Handle is a netlink handle in ns, closed at the end of the test.
func Handle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// In runs fn on a thread inside ns; sockets it opens stay there. The
// thread is never switched back: it dies with its goroutine.
func In(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Veth joins namespace a (link aName, address aAddr in CIDR form) to b,
// both ends up.
func Veth(t *testing.T, a netns.NsHandle, aName, aAddr string, b netns.NsHandle, bName, bAddr string) {
	t.Helper()
	ha, hb := Handle(t, a), Handle(t, b)
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(int(b))}); err != nil {
		t.Fatalf("veth %s/%s: %v", aName, bName, err)
	}
	for _, s := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{ha, aName, aAddr}, {hb, bName, bAddr}} {
		l, err := s.h.LinkByName(s.name)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := netlink.ParseAddr(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.h.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := s.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// DefaultRoute routes everything in ns via gw.
func DefaultRoute(t *testing.T, ns netns.NsHandle, gw string) {
	t.Helper()
	if err := Handle(t, ns).RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
		t.Fatalf("default route via %s: %v", gw, err)
	}
}

// SetMTU sets link's MTU in ns.
func SetMTU(t *testing.T, ns netns.NsHandle, link string, mtu int) {
	t.Helper()
	h := Handle(t, ns)
	l, err := h.LinkByName(link)
	if err == nil {
		err = h.LinkSetMTU(l, mtu)
	}
	if err != nil {
		t.Fatalf("set MTU %d on %s: %v", mtu, link, err)
	}
}

// Forwarding turns IPv4 forwarding on in ns: it routes.
func Forwarding(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	In(t, ns, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644) })
}
