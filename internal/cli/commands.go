//go:build !agentonly

package cli

import "github.com/spf13/cobra"

// commands are podpath's verbs.
func commands(s Streams) []*cobra.Command {
	return []*cobra.Command{newVersion(s), newLab(s), newDemo(s), newDoctor(s), newAgent(s), newMTU(s), newPerf(s),
		newFacts(s), newCleanup(s), newFix(s), newPlan(s), newPreflight(s)}
}

const rootHelp = `podpath finds out why Pods on different Kubernetes nodes cannot talk to each other,
proves it with measurements, and says what to change. It knows Calico deeply.

See it work on the built-in lab, a Calico-style cluster made of network namespaces:
  podpath demo                                  # the seed case: break, diagnose, fix, re-check

or step by step:
  podpath lab up --agents                       # 3 nodes, VXLAN, as Kubespray sets up Calico
  podpath lab fault add underlay-mtu=node3:1400 # the underlay towards node3 carries 1400 bytes
  podpath doctor --inventory /run/podpath/lab/podpath/inventory.yaml
  podpath lab down

On a cluster (your kubeconfig; the binary also runs as kubectl-podpath):
  kubectl podpath doctor --image REGISTRY/podpath:TAG
  kubectl podpath fix mtu                       # dry run; --apply to change, restart and re-check

Before the cluster exists:
  podpath plan --kubespray-inventory inventory/mycluster
  podpath preflight --kubespray-inventory inventory/mycluster --token-file pp.token`
