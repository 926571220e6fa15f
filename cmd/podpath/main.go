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

// programs are other programs this binary is when called by their name
// (a CNI plugin in the lab's nodes): a build adds them in its own files.
var programs = map[string]func(){}

func main() {
	if run, ok := programs[filepath.Base(os.Args[0])]; ok {
		run()
		return
	}
	if filepath.Base(os.Args[0]) == cli.PluginName {
		cli.CommandName = "kubectl podpath"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
