// Command coredns is CoreDNS built from its Go module for the lab's cluster
// DNS, with the plugins Kubespray's Corefile names (errors, health, ready,
// kubernetes, prometheus, forward, cache, loop, reload, loadbalance) and log:
// CoreDNS's documented way of building with a chosen plugin set, instead of
// its main package's every plugin and their cloud SDKs.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() { coremain.Run() }
