//go:build !agentonly

package cli

import (
	"github.com/spf13/cobra"

	"podpath/internal/lab"
)

// The processes a Kubernetes lab runs from podpath's own binary; not for
// users, hence hidden. Each takes --id, a marker on its command line that
// lets `lab down` tell the lab's processes from anyone else's.
func newLabServices() []*cobra.Command {
	var id string
	marker := func(c *cobra.Command) {
		c.Flags().StringVar(&id, "id", "", "marker on the command line (lab down signals only its own processes)")
		c.Hidden = true
		c.Args = cobra.NoArgs
	}
	var node lab.KubeNodeOptions
	kubeNode := &cobra.Command{
		Use:   "kube-node",
		Short: "A Kubernetes lab node's supervisor: mounts, containerd, kubelet, kube-proxy",
		RunE:  func(c *cobra.Command, _ []string) error { return lab.RunKubeNode(c.Context(), node) },
	}
	marker(kubeNode)
	kubeNode.Flags().StringVar(&node.Lab, "lab", "", "lab name")
	kubeNode.Flags().StringVar(&node.Node, "node", "", "node name")
	kubeNode.Flags().StringVar(&node.NodeBin, "node-bin", "", "directory of containerd and its shim")
	kubeNode.Flags().StringVar(&node.KubeBin, "kube-bin", "", "directory of kubelet and kube-proxy")

	var netns, to, listen, ready, dir string
	forward := &cobra.Command{
		Use:   "forward",
		Short: "Carry loopback connections to an address inside a lab namespace",
		RunE:  func(c *cobra.Command, _ []string) error { return lab.RunForward(c.Context(), netns, to, listen, ready) },
	}
	marker(forward)
	forward.Flags().StringVar(&netns, "netns", "", "namespace to dial from")
	forward.Flags().StringVar(&to, "to", "", "address to dial")
	forward.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	forward.Flags().StringVar(&ready, "ready", "", "file to write the listening address to")

	registry := &cobra.Command{
		Use:   "registry",
		Short: "Serve the lab's container registry",
		RunE:  func(c *cobra.Command, _ []string) error { return lab.RunRegistry(c.Context(), listen, dir, ready) },
	}
	marker(registry)
	registry.Flags().StringVar(&listen, "listen", "", "address to listen on")
	registry.Flags().StringVar(&dir, "dir", "", "blob directory")
	registry.Flags().StringVar(&ready, "ready", "", "file to write the listening address to")

	pause := &cobra.Command{
		Use:   "pause",
		Short: "Hold a Pod sandbox's namespaces (the lab's pause image)",
		RunE:  func(*cobra.Command, []string) error { return lab.RunPause() },
	}
	marker(pause)

	calicoNode := &cobra.Command{
		Use:   "calico-node",
		Short: "The lab's stand-in for calico-node (Calico's images are not available in the lab)",
		RunE: func(c *cobra.Command, _ []string) error {
			return lab.RunCalicoNode(c.Context(), lab.CalicoNodeFromEnv())
		},
	}
	marker(calicoNode)
	return []*cobra.Command{kubeNode, forward, registry, pause, calicoNode}
}
