// Command kubectl is Kubernetes' kubectl, of the cluster's version: the
// lab's demo and tests type what operators type (kubectl run, exec, logs).
package main

import (
	"os"

	// Client auth plugins (exec, OIDC), as upstream's kubectl has them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck // as upstream's main
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
