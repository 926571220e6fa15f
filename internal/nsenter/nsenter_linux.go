// Package nsenter runs code inside a named network namespace.
package nsenter

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the named namespace (or the one
// at a path, such as /proc/PID/ns/net, when name starts with /), on a
// goroutine of its own: if the thread cannot be switched back it is left
// locked and dies with the goroutine instead of leaking into other work
// (the pattern of containernetworking's ns.Do). Sockets fn creates stay in
// the namespace after Do returns.
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		open := netns.GetFromName
		if strings.HasPrefix(name, "/") {
			open = netns.GetFromPath
		}
		target, err := open(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", name, err)
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialContext dials from inside the named namespace (or a path's, as Do)
// ("" dials from the
// current one), so a controller can reach an agent that only listens there.
func DialContext(ctx context.Context, ns string, d *net.Dialer, network, addr string) (net.Conn, error) {
	if ns == "" {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := Do(ns, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
