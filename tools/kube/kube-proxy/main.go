// Command kube-proxy is Kubernetes' kube-proxy, built from its Go module for
// the lab's real nodes (nftables mode: the lab's kernel has no IPVS).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() { os.Exit(cli.Run(app.NewProxyCommand())) }
