//go:build !agentonly

package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/cluster"
	"podpath/internal/deploy"
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
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			n, err := deploy.DeleteByLabel(c.Context(), cs, deploy.RunSelector)
			if apierrors.IsForbidden(err) {
				return fmt.Errorf("not allowed to list and delete podpath's namespaces (%s): bind the user to %s", apierrors.ReasonForError(err), deploy.DoctorRole)
			}
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
