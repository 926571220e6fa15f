// Command podpath finds out why Pods on different Kubernetes nodes cannot
// talk to each other, proves it with measurements, and fixes it.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"podpath/internal/cli"
)

func main() {
	if filepath.Base(os.Args[0]) == cli.PluginName {
		cli.CommandName = "kubectl podpath"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
