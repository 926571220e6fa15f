//go:build !agentonly && !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newLab, off Linux, is the lab's name and a refusal: the lab is network
// namespaces, veth, VXLAN, nftables and BIRD, which only Linux has.
func newLab(Streams) *cobra.Command {
	return &cobra.Command{
		Use:                "lab",
		Short:              "Build, break and remove the built-in lab (Linux only)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("podpath lab needs Linux: the lab is network namespaces, veth, VXLAN, nftables and BIRD; run it on a Linux machine as root")
		},
	}
}
