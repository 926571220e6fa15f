//go:build !agentonly

package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"podpath/internal/cluster"
)

func newCleanup(s Streams) *cobra.Command {
	kf := genericclioptions.NewConfigFlags(true)
	c := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what an interrupted podpath run left in the cluster",
		Long: `cleanup deletes every namespace of a podpath run (labelled app.kubernetes.io/managed-by=podpath
and podpath.io/run), and with them the agents, their token and everything else a run created. A
run removes its own objects on success, failure, timeout and Ctrl-C; cleanup is for a run that
was killed outright.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := cluster.RESTConfig(kf)
			if err != nil {
				return err
			}
			n, err := cluster.RemoveRuns(c.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "removed %d podpath namespace(s)\n", n)
			return nil
		},
	}
	kf.AddFlags(c.Flags())
	// Every podpath namespace goes, found by label across the cluster: a
	// namespace flag would suggest a scope cleanup does not have.
	_ = c.Flags().MarkHidden("namespace")
	return c
}
