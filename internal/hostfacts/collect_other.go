//go:build !linux

package hostfacts

import (
	"context"
	"errors"
	"fmt"
)

// Collect needs Linux: netlink, /proc/sys and nftables.
func Collect(ctx context.Context, opts Options) (*Facts, error) {
	return nil, fmt.Errorf("host facts need Linux (netlink, /proc/sys, nftables): run podpath facts on a Linux node: %w", errors.ErrUnsupported)
}
