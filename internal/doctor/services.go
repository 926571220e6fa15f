package doctor

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/plan"
)

// ServiceProbes is what each Service check measures: UDP echoes, TCP
// handshakes and a bulk upload, the three ways traffic through a
// Service breaks apart (kube-proxy's DNAT missing: all; the VXLAN
// checksum-offload trap: TCP only, and bulk data last). No ICMP: a
// ClusterIP does not answer ping in kube-proxy's iptables and nftables
// modes, and that is no fault.
var ServiceProbes = agent.ProbeRequest{
	RTT:           &agent.Series{Count: 5, IntervalMs: 10},
	TCPConnect:    2,
	TransferBytes: 300_000,
}

// ServiceTargets is how many other nodes' Services each node's Pod agent
// goes through: enough that a node whose kube-proxy fails fails them
// all while the same backends answer other senders.
const ServiceTargets = 3

// serviceRetryWait is how long a failed Service check waits before it is
// measured once more, alone: kube-proxy applies a new Service within a
// second (its minSyncPeriod), later on a loaded node; a second look keeps
// that lag from reading as a fault.
const serviceRetryWait = 2 * time.Second

// serviceSettle is how long after its Services were created the Service
// checks start at the earliest: kube-proxy syncs at most once per
// minSyncPeriod (1 s by default), and a check before then measures
// kube-proxy's pace, not the network.
const serviceSettle = 1500 * time.Millisecond

// serviceJobs plans the Service checks: each node's Pod agent towards the
// ClusterIPs of the next ServiceTargets backends on other nodes (in the
// order of the Services), and each node's host agent towards the same
// backends' nodes at their NodePorts, so every backend is reached from
// several senders and every sender reaches several backends.
func serviceJobs(s *cluster.Session) []plan.Job {
	if len(s.Services) < 2 {
		return nil
	}
	address := map[string]string{}
	for _, n := range s.Inventory.Nodes {
		address[n.Name] = n.Address
	}
	var jobs []plan.Job
	for i, n := range s.Inventory.Nodes {
		var backends []deploy.ServiceOf
		for k := 0; k < len(s.Services) && len(backends) < ServiceTargets; k++ {
			if svc := s.Services[(i+1+k)%len(s.Services)]; svc.Node != n.Name {
				backends = append(backends, svc)
			}
		}
		if len(n.Pods) > 0 && n.Pods[0].Agent != "" {
			p := n.Pods[0]
			j := plan.Job{Layer: model.LayerService, From: plan.Endpoint{Node: n.Name, Pod: p.Name, Agent: p.Agent, Netns: p.Netns}}
			for _, svc := range backends {
				// The backend's own name: its sink signs what it received with it.
				j.Peers = append(j.Peers, plan.Endpoint{Node: svc.Node, Pod: svc.Pod, Agent: svc.Address})
			}
			jobs = append(jobs, j)
		}
		if n.Agent != "" {
			j := plan.Job{Layer: model.LayerNodePort, From: plan.Endpoint{Node: n.Name, Agent: n.Agent, Netns: n.Netns}}
			for _, svc := range backends {
				ip, err := netip.ParseAddr(address[svc.Node])
				if err != nil || svc.NodePort == 0 {
					continue
				}
				j.Peers = append(j.Peers, plan.Endpoint{Node: svc.Node, Pod: svc.Pod, Agent: netip.AddrPortFrom(ip, uint16(svc.NodePort)).String()})
			}
			jobs = append(jobs, j)
		}
	}
	return slices.DeleteFunc(jobs, func(j plan.Job) bool { return len(j.Peers) == 0 })
}

// withDirectPath keeps, of the planned checks, those whose direct path
// (Pod to Pod for a ClusterIP, host to host for a NodePort) came through
// whole in the mesh, and returns the others as checks not made: through a
// Service such a path fails as well, and the Pod or node network's
// findings say why; measuring it again would only cost the run time.
func withDirectPath(jobs []plan.Job, mesh model.Pairs) ([]plan.Job, []model.Pair) {
	works := map[[3]string]bool{}
	for _, p := range mesh.All() {
		if diagnose.DirectWorks(p) {
			works[[3]string{string(p.Layer), p.From, p.To}] = true
		}
	}
	var keep []plan.Job
	var skipped []model.Pair
	for _, j := range jobs {
		direct, what := model.LayerPod, "the direct Pod path"
		if j.Layer == model.LayerNodePort {
			direct, what = model.LayerNode, "the path host to host"
		}
		k := plan.Job{Layer: j.Layer, From: j.From}
		for _, peer := range j.Peers {
			if works[[3]string{string(direct), j.From.Node, peer.Node}] {
				k.Peers = append(k.Peers, peer)
				continue
			}
			skipped = append(skipped, model.Pair{From: j.From.Node, To: peer.Node, Layer: j.Layer, FromPod: j.From.Pod, ToPod: peer.Pod,
				Unknown: "not checked: " + what + " from " + j.From.Node + " to " + peer.Node + " did not come through whole (the findings on it say why)"})
		}
		if len(k.Peers) > 0 {
			keep = append(keep, k)
		}
	}
	return keep, skipped
}

// checkServices runs the Service checks, then once more, alone, those
// that failed.
func checkServices(ctx context.Context, r *measure.Runner, s *cluster.Session, jobs []plan.Job) []model.Pair {
	byPod := map[string]deploy.ServiceOf{}
	for _, svc := range s.Services {
		byPod[svc.Pod] = svc
	}
	if wait := time.Until(s.ServicesCreated.Add(serviceSettle)); wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	pairs := r.Run(ctx, jobs, ServiceProbes)
	name := func(j plan.Job, p *model.Pair) {
		for _, peer := range j.Peers {
			if peer.Node == p.To {
				svc := byPod[peer.Pod]
				p.Service = svc.Name + " " + peer.Agent
				if j.Layer == model.LayerNodePort {
					p.Service = svc.Name + " NodePort " + peer.Agent
				}
			}
		}
	}
	var again []plan.Job
	k := 0
	for _, j := range jobs {
		var failed []plan.Endpoint
		for _, peer := range j.Peers {
			if p := &pairs[k]; p.Measured() && !diagnose.ServiceOK(*p) {
				failed = append(failed, peer)
			}
			k++
		}
		if len(failed) > 0 {
			again = append(again, plan.Job{Layer: j.Layer, From: j.From, Peers: failed})
		}
	}
	if len(again) > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(serviceRetryWait):
			retried := r.Run(ctx, again, ServiceProbes)
			for _, q := range retried {
				i := slices.IndexFunc(pairs, func(p model.Pair) bool { return p.Layer == q.Layer && p.From == q.From && p.To == q.To })
				if i < 0 || !q.Measured() {
					continue
				}
				q.Retried = "measured again " + serviceRetryWait.String() + " later: " + diagnose.ServiceFailure(pairs[i])
				pairs[i] = q
			}
		}
	}
	k = 0
	for _, j := range jobs {
		for range j.Peers {
			name(j, &pairs[k])
			k++
		}
	}
	return pairs
}
