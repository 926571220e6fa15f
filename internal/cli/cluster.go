//go:build !agentonly

package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"podpath/internal/cluster"
	"podpath/internal/deploy"
	"podpath/internal/version"
)

// kubeFlags select a cluster as kubectl does, and how to deploy the agents.
type kubeFlags struct {
	config *genericclioptions.ConfigFlags
	image  string
	wait   time.Duration
}

func (k *kubeFlags) register(c *cobra.Command) {
	k.config = genericclioptions.NewConfigFlags(true)
	k.config.AddFlags(c.Flags())
	if ns := c.Flags().Lookup("namespace"); ns != nil {
		ns.Usage = "namespace podpath creates for this run's agents and deletes afterwards (default podpath-<run id>; must not exist)"
	}
	c.Flags().StringVar(&k.image, "image", DefaultImage(), "podpath image the agents run (cluster mode)")
	c.Flags().DurationVar(&k.wait, "wait-timeout", deploy.DefaultWaitTimeout, "how long to wait for the agents to be ready (cluster mode; more than 0)")
}

// options are the flags as what cluster.Open takes, progress to say.
func (k *kubeFlags) options(say func(string, ...any)) (*rest.Config, cluster.Options, error) {
	if err := positiveDuration("wait-timeout", k.wait); err != nil {
		return nil, cluster.Options{}, err
	}
	cfg, err := cluster.RESTConfig(k.config)
	// -n names the run's own namespace, not the kubeconfig context's.
	return cfg, cluster.Options{Image: k.image, Namespace: *k.config.Namespace, Wait: k.wait, Say: say}, err
}

// positiveDuration refuses a duration flag's value of 0 or less.
func positiveDuration(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s %s: must be more than 0, e.g. 30s or 2m", flag, d)
	}
	return nil
}

// DefaultImage is the agent image of this build.
func DefaultImage() string { return version.Image() }
