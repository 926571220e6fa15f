//go:build !linux

package demo

import (
	"context"
	"errors"
	"io"
)

// Run refuses: the demo builds the lab's Kubernetes nodes in network
// namespaces, which only Linux has.
func Run(context.Context, io.Writer, string, bool) error {
	return errors.New("podpath demo needs Linux (it builds the lab's nodes in network namespaces); run it on a Linux machine as root")
}
