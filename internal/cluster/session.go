// Package cluster is what a command measures: a session holding the
// agents as an inventory, the token they take, how to dial each one, and
// what to undo at the end. Load opens an inventory file; Open deploys a
// run's agents into the cluster of a kubeconfig.
package cluster

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
	"podpath/internal/model"
	"podpath/internal/plan"
)

// Session is one run's agents.
type Session struct {
	Inventory *inventory.Inventory
	Token     string
	// Connect makes the client for an agent (through the API server's Pod
	// proxy on a cluster); nil dials it directly.
	Connect func(plan.Endpoint) *agent.Client
	// Cluster is what the API server said; nil for an inventory file.
	Cluster   *kube.Cluster
	Namespace string               // the run's own, on a cluster
	Clients   kubernetes.Interface // nil for an inventory file
	Dynamic   dynamic.Interface
	// Services are the run's Services, one per backend Pod agent, for
	// the Service checks; ServicesSkipped says why there are none.
	Services        []deploy.ServiceOf
	ServicesSkipped string
	// ServicesCreated is when the last of them was created.
	ServicesCreated time.Time
	// DNS is the cluster DNS the DNS checks ask; DNSLarge the run's name
	// with a large answer (fully qualified); DNSSkipped says why there
	// are no DNS checks.
	DNS        *kube.DNS
	DNSLarge   string
	DNSSkipped string
	undo       func()
}

// Load opens an inventory file; tokenFile, when given, replaces the
// inventory's own tokenFile.
func Load(path, tokenFile string) (*Session, error) {
	inv, err := inventory.Load(path)
	if err != nil {
		return nil, err
	}
	tok, err := inv.Token(tokenFile)
	if err != nil {
		return nil, err
	}
	return &Session{Inventory: inv, Token: tok}, nil
}

// Close removes what the session deployed; a second call does nothing.
func (s *Session) Close() {
	if s.undo != nil {
		s.undo()
		s.undo = nil
	}
}

// Config is what a report says about the configuration the run read.
func (s *Session) Config() *model.Config {
	c := &model.Config{Source: "inventory"}
	if s.Inventory.Network != nil {
		n := s.Inventory.Network
		c.Install, c.Backend, c.PodMTU, c.PodCIDR, c.Sources = n.Install, n.Backend, n.PodMTU, n.PodCIDR, n.Sources
	}
	if s.Cluster == nil {
		return c
	}
	c.Source, c.CNI, c.Namespace = "cluster", s.Cluster.CNI.Name, s.Namespace
	if s.ServicesSkipped != "" {
		c.Notes = append(c.Notes, "Service checks skipped: "+s.ServicesSkipped)
	}
	if s.DNSSkipped != "" {
		c.Notes = append(c.Notes, "cluster DNS checks skipped: "+s.DNSSkipped)
	}
	if s.DNS != nil && s.DNSSkipped == "" {
		for _, p := range s.DNS.Pods {
			if !p.Ready {
				c.Notes = append(c.Notes, "CoreDNS Pod "+p.Name+" on "+p.Node+" is not Ready: not asked (kube-proxy sends it nothing either)")
			}
		}
	}
	if cal := s.Cluster.Calico; cal != nil {
		c.LogErrors = cal.LogErrors
		if cal.LogsUnavailable != "" {
			c.Notes = append(c.Notes, cal.LogsUnavailable)
		}
		if c.Backend == "bgp" || len(cal.BGP.Peers) > 0 {
			mesh := "on (default)"
			if cal.BGP.NodeMesh != nil && !*cal.BGP.NodeMesh {
				mesh = "off"
			}
			c.Notes = append(c.Notes, fmt.Sprintf("BGP: node-to-node mesh %s, AS %d, %d BGPPeer(s) %s", mesh, cal.BGP.ASNumber, len(cal.BGP.Peers), strings.Join(cal.BGP.Peers, ", ")))
		}
		for _, n := range s.Cluster.Nodes {
			if n.Ready && len(cal.Blocks) > 0 && len(cal.Blocks[n.Name]) == 0 {
				c.Notes = append(c.Notes, fmt.Sprintf("node %s has no Pod address block (no BlockAffinity): Calico has not set it up yet", n.Name))
			}
		}
	}
	for _, n := range s.Cluster.Nodes {
		if !n.Ready {
			c.NotReady = append(c.NotReady, n.Name)
		}
		if n.Cordoned {
			c.Cordoned = append(c.Cordoned, n.Name)
		}
	}
	return c
}
