//go:build agentonly

package cli

import "github.com/spf13/cobra"

// commands, in the agent image's build (`-tags agentonly`), are only what
// runs on the nodes: the agent, in both modes, and the version. Leaving
// the rest out leaves out their libraries (kubectl's, the reports', the
// lab's), whose pages would otherwise be a third of an agent's memory.
func commands(s Streams) []*cobra.Command {
	return []*cobra.Command{newVersion(s), newAgent(s)}
}

const rootHelp = `podpath's agent build, for the agent image: the node agent (podpath agent --help),
on demand for podpath doctor, mtu, perf and preflight (--mode api, the default) or continuously
as the Helm chart's monitor (--mode monitor). The full podpath has every other command.`
