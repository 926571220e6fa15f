// Command containerd is containerd v2, built from its Go module for the lab's
// real nodes (podpath lab up --kubernetes). The same main as upstream's
// cmd/containerd: the builtins import registers the CRI, snapshotter and
// runtime plugins.
package main

import (
	"context"
	"fmt"
	"os"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
	"github.com/containerd/containerd/v2/cmd/containerd/command"
)

func main() {
	if err := command.App().Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "containerd:", err)
		os.Exit(1)
	}
}
