package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"podpath/internal/nsenter"
)

// netnsDir is where iproute2 (and so `ip netns list`) keeps named namespaces.
const netnsDir = nsenter.NetnsDir

// inNetns runs fn inside the named namespace.
func inNetns(name string, fn func() error) error { return nsenter.Do(name, fn) }

// createNetns makes a named namespace the way `ip netns add` does.
func createNetns(name string) error {
	if err := nsenter.ShareNetnsDir(); err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if serr := netns.Set(orig); serr != nil {
			errc <- fmt.Errorf("return from new netns %s: %w", name, serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	return nil
}

// deleteNetns removes a named namespace; a missing one is not an error.
func deleteNetns(name string) error {
	if err := netns.DeleteNamed(name); err != nil && !os.IsNotExist(err) {
		if _, serr := os.Stat(filepath.Join(netnsDir, name)); os.IsNotExist(serr) {
			return nil
		}
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// listNetns returns the named namespaces whose names start with prefix.
func listNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nsHandle is an open namespace with a netlink handle bound to it.
type nsHandle struct {
	name string
	fd   netns.NsHandle
	nl   *netlink.Handle
}

func openNS(name string) (*nsHandle, error) {
	fd, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	nl, err := netlink.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("netlink in netns %s: %w", name, err)
	}
	return &nsHandle{name: name, fd: fd, nl: nl}, nil
}

func (h *nsHandle) Close() {
	h.nl.Close()
	h.fd.Close()
}

// sysctl writes a /proc/sys value inside the namespace. key is in path form
// ("net/ipv4/conf/vxlan.calico/rp_filter"), since interface names hold dots.
func (h *nsHandle) sysctl(key, value string) error {
	return inNetns(h.name, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, h.name, err)
		}
		return nil
	})
}

// link looks a link up by name, saying where it looked when it is missing.
// sysctls sets each key to its value, in order.
func (h *nsHandle) sysctls(kvs [][2]string) error {
	for _, kv := range kvs {
		if err := h.sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func (h *nsHandle) link(name string) (netlink.Link, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %s in %s: %w", name, h.name, err)
	}
	return l, nil
}
