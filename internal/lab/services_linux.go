package lab

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// Service is a process a lab runs from podpath's own binary, as `podpath
// lab NAME --id MARKER …`; not for users. The marker on its command line
// lets `lab down` tell the lab's processes from anyone else's.
type Service struct {
	Name, Short string
	Main        func(ctx context.Context, args []string) error
}

// Services are the lab's own processes.
var Services = []Service{
	{"kube-node", "A Kubernetes lab node's supervisor: mounts, containerd, kubelet, kube-proxy", func(ctx context.Context, args []string) error {
		var o KubeNodeOptions
		fs := serviceFlags("kube-node")
		fs.StringVar(&o.Lab, "lab", "", "lab name")
		fs.StringVar(&o.Node, "node", "", "node name")
		fs.StringVar(&o.NodeBin, "node-bin", "", "directory of containerd and its shim")
		fs.StringVar(&o.KubeBin, "kube-bin", "", "directory of kubelet and kube-proxy")
		if err := parseService(fs, args); err != nil {
			return err
		}
		return RunKubeNode(ctx, o)
	}},
	{"forward", "Carry loopback connections to an address inside a lab namespace", func(ctx context.Context, args []string) error {
		fs := serviceFlags("forward")
		netns := fs.String("netns", "", "namespace to dial from")
		to := fs.String("to", "", "address to dial")
		listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
		ready := fs.String("ready", "", "file to write the listening address to")
		if err := parseService(fs, args); err != nil {
			return err
		}
		return RunForward(ctx, *netns, *to, *listen, *ready)
	}},
	{"registry", "Serve the lab's container registry", func(ctx context.Context, args []string) error {
		fs := serviceFlags("registry")
		listen := fs.String("listen", "", "address to listen on")
		dir := fs.String("dir", "", "blob directory")
		ready := fs.String("ready", "", "file to write the listening address to")
		if err := parseService(fs, args); err != nil {
			return err
		}
		return RunRegistry(ctx, *listen, *dir, *ready)
	}},
	{"pause", "Hold a Pod sandbox's namespaces (the lab's pause image)", func(_ context.Context, args []string) error {
		if err := parseService(serviceFlags("pause"), args); err != nil {
			return err
		}
		return RunPause()
	}},
	{"calico-node", "The lab's stand-in for calico-node (Calico's images are not available in the lab)", func(ctx context.Context, args []string) error {
		if err := parseService(serviceFlags("calico-node"), args); err != nil {
			return err
		}
		return RunCalicoNode(ctx, CalicoNodeFromEnv())
	}},
}

func serviceFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("podpath lab "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("id", "", "marker on the command line (lab down signals only its own processes)")
	return fs
}

func parseService(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}
