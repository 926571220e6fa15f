//go:build !agentonly && linux

package cli

import (
	"github.com/spf13/cobra"

	"podpath/internal/lab"
)

// newLabServices are the processes a lab runs from podpath's own binary
// (lab.Services); hidden, and their flags are the lab's.
func newLabServices() []*cobra.Command {
	var out []*cobra.Command
	for _, svc := range lab.Services {
		out = append(out, &cobra.Command{
			Use: svc.Name, Short: svc.Short, Hidden: true, DisableFlagParsing: true,
			RunE: func(c *cobra.Command, args []string) error { return svc.Main(c.Context(), args) },
		})
	}
	return out
}
