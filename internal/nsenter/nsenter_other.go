//go:build !linux

package nsenter

import (
	"context"
	"errors"
	"net"
)

// ErrNotLinux: network namespaces are Linux's; elsewhere only dials from
// the current network ("" namespace) work.
var ErrNotLinux = errors.New("network namespaces need Linux")

// NetnsDir is where `ip netns` keeps named namespaces (Linux only).
const NetnsDir = "/var/run/netns"

// Do refuses: there are no network namespaces to enter.
func Do(string, func() error) error { return ErrNotLinux }

// DialContext dials from the current network; a named namespace is refused.
func DialContext(ctx context.Context, ns string, d *net.Dialer, network, addr string) (net.Conn, error) {
	if ns != "" {
		return nil, ErrNotLinux
	}
	return d.DialContext(ctx, network, addr)
}

// ShareNetnsDir refuses, as Do.
func ShareNetnsDir() error { return ErrNotLinux }
