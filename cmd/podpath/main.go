// Command podpath finds out why Pods on different Kubernetes nodes cannot
// talk to each other, proves it with measurements, and fixes it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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
	endProfile := profile(os.Getenv("PODPATH_CPUPROFILE"), os.Getenv("PODPATH_MEMPROFILE"))
	code := cli.Run(ctx, cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	endProfile()
	stop()
	os.Exit(code)
}

// profile writes a CPU profile of the run to cpu and a heap profile at its
// end to mem, when set (PODPATH_CPUPROFILE, PODPATH_MEMPROFILE: how the
// benchmarks look inside the controller). A file that cannot be made is
// said once and skipped.
func profile(cpu, mem string) (end func()) {
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "podpath: PODPATH_CPUPROFILE: %v\n", err)
			f = nil
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem == "" {
			return
		}
		m, err := os.Create(mem)
		if err == nil {
			runtime.GC()
			err = pprof.WriteHeapProfile(m)
			m.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "podpath: PODPATH_MEMPROFILE: %v\n", err)
		}
	}
}
