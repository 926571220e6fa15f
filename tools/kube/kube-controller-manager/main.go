// Command kube-controller-manager is Kubernetes' kube-controller-manager, built from its Go module for the
// tests' real control plane.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
