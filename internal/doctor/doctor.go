// Package doctor is the doctor's pipeline, in the order the data flows:
// the agents of an inventory (a file's, or the one a cluster's run
// deployed) → a plan of every pair → the paced measurements, beside every
// node's host facts → the evidence → the diagnosis → the report. The
// doctor command and fix mtu's check and re-check call Run; rendering the
// report, and what the exit code says, are theirs.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kube"
	"podpath/internal/diagnose"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/plan"
)

// DefaultTimeout bounds a doctor run: what has not answered by then is
// reported as unknown. One minute: a thousand nodes' every pair checked
// and a covering subset measured in depth, paced so the run does not
// measure its own load.
const DefaultTimeout = 60 * time.Second

// Probes is what the doctor measures on the pairs it measures in depth:
// path MTU, a short UDP and ICMP echo series, TCP handshakes and a 300 KB
// upload that must not stall.
var Probes = agent.ProbeRequest{
	PathMTU:       true,
	RTT:           &agent.Series{Count: 10, IntervalMs: 10},
	ICMP:          &agent.Series{Count: 5, IntervalMs: 10},
	TCPConnect:    2,
	TransferBytes: 300_000,
}

// Options is one run.
type Options struct {
	Layers []model.Layer
	// FullMesh measures every pair in depth (measure.Pace).
	FullMesh bool
	// Timeout bounds the run; 0: DefaultTimeout for each address family
	// measured (a dual-stack cluster's IPv6 pass gets as long again).
	Timeout time.Duration
	// Say hears each step as it starts (progress); nil: nothing is said.
	Say func(format string, a ...any)
}

func (o Options) say(format string, a ...any) {
	if o.Say != nil {
		o.Say(format, a...)
	}
}

// ErrNothingToDiagnose: the inventory has fewer than two agents on every
// layer asked for.
var ErrNothingToDiagnose = errors.New("nothing to diagnose: fewer than two agents")

// Run probes every pair of the session's agents, reads every node's host
// facts, diagnoses and returns the report, all within o.Timeout. It fails
// only when nothing could be asked at all; an agent that does not answer
// is in the report.
func Run(ctx context.Context, s *cluster.Session, o Options) (*model.Report, error) {
	jobs := plan.Mesh(s.Inventory, o.Layers...)
	if len(jobs) == 0 {
		return nil, ErrNothingToDiagnose
	}
	jobs6 := plan.Mesh6(s.Inventory, o.Layers...)
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
		if len(jobs6) > 0 {
			o.Timeout *= 2
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	pairs, layers := 0, map[model.Layer]bool{}
	for _, j := range jobs {
		pairs += len(j.Peers)
		layers[j.Layer] = true
	}
	layerWord := "layer"
	if len(layers) > 1 {
		layerWord = "layers"
	}
	o.say("podpath doctor: probing %d pairs on %d %s and reading %d nodes' host facts…", pairs, len(layers), layerWord, len(s.Inventory.Nodes))
	r := &measure.Runner{Token: s.Token, Connect: s.Connect}
	defer r.Close()
	rep := &model.Report{Config: s.Config()}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Nodes = r.Facts(ctx, s.Inventory) })
	pace := measure.Pace{FullMesh: o.FullMesh, Class: linkClass(s.Inventory), Say: o.Say}
	rep.Pairs = r.Paced(ctx, jobs, Probes, pace)
	// A dual-stack cluster's IPv6 addresses: the same mesh again, after
	// the first, since the agents take them as their peers in its place.
	var pairs6 model.Pairs
	if len(jobs6) > 0 {
		o.say("podpath doctor: the same over IPv6…")
		pairs6 = r.Paced(ctx, jobs6, Probes, pace)
	}
	// After the mesh, not beside it: the agents' peers become the
	// Services for this step. Pod agents check ClusterIPs (pod layer),
	// host agents NodePorts (node layer).
	sj := slices.DeleteFunc(serviceJobs(s), func(j plan.Job) bool {
		return j.Layer == model.LayerService && !slices.Contains(o.Layers, model.LayerPod) ||
			j.Layer == model.LayerNodePort && !slices.Contains(o.Layers, model.LayerNode)
	})
	if len(sj) > 0 {
		n := 0
		for _, j := range sj {
			n += len(j.Peers)
		}
		o.say("podpath doctor: %d checks through %d Services…", n, len(s.Services))
		run, skipped := withDirectPath(sj, rep.Pairs)
		rep.Services = append(checkServices(ctx, r, s, run), skipped...)
	}
	// The cluster DNS, from every node's Pods: what applications feel
	// first when the Pod network or a firewall goes wrong.
	if dj := dnsJobs(s); len(dj) > 0 && slices.Contains(o.Layers, model.LayerPod) {
		o.say("podpath doctor: asking the cluster DNS from %d nodes' Pods (%s and %d CoreDNS Pods)…", len(dj), s.DNS.Service, len(s.DNS.Pods))
		rep.DNS = checkDNS(ctx, r, s, dj)
	}
	wg.Wait()
	o.say("podpath doctor: diagnosing…")
	ev := evidence(s.Inventory, rep)
	if s.Cluster != nil {
		clusterEvidence(&ev, s.Cluster)
	}
	if len(ev.Facts) == 0 && !AnyAnswer(rep.Pairs) && !AnyAnswer(pairs6) {
		return nil, fmt.Errorf("no agent answered within %s (first error: %s)", o.Timeout, FirstError(rep.Pairs))
	}
	rep.Findings = diagnose.Diagnose(ev)
	if pairs6.Len() > 0 {
		rep.Findings = diagnose.WithIPv6(rep.Findings, diagnose.Diagnose(ipv6Evidence(s.Inventory, ev, pairs6)))
		rep.Pairs = model.Join(rep.Pairs, pairs6)
	}
	rep.DurationMs = float64(time.Since(start)) / float64(time.Millisecond)
	return rep, nil
}

// AnyAnswer: some pair was measured.
func AnyAnswer(pairs model.Pairs) bool {
	for _, p := range pairs.All() {
		if p.Measured() {
			return true
		}
	}
	return false
}

// FirstError is the first reason a pair was not measured, or its first
// error: what to say when no agent answered.
func FirstError(pairs model.Pairs) string {
	for _, p := range pairs.All() {
		if p.Unknown != "" {
			return p.Unknown
		}
	}
	for _, p := range pairs.All() {
		if len(p.Errors) > 0 {
			return p.Errors[0]
		}
	}
	return "none"
}

// linkClass is a node's link class for the covering subset: its
// address's /24 (IPv4) or /64 (IPv6), the nodes one router apart at most
// in most clusters.
func linkClass(inv *inventory.Inventory) func(node string) string {
	class := map[string]string{}
	for _, n := range inv.Nodes {
		if a, err := netip.ParseAddr(n.Address); err == nil {
			bits := 24
			if a.Is6() && !a.Is4In6() {
				bits = 64
			}
			p, _ := a.Prefix(bits)
			class[n.Name] = p.String()
		}
	}
	return func(node string) string { return class[node] }
}

// evidence assembles what the rules look at from the inventory and the run.
func evidence(inv *inventory.Inventory, rep *model.Report) diagnose.Evidence {
	ev := diagnose.Evidence{Addresses: map[string]string{}, Pairs: rep.Pairs, Services: rep.Services, DNS: rep.DNS,
		Facts: map[string]*model.Facts{}, FactErrors: map[string]string{}}
	if inv.Network != nil {
		ev.Network = *inv.Network
	}
	for _, n := range inv.Nodes {
		ev.Nodes = append(ev.Nodes, n.Name)
		ev.Addresses[n.Name] = n.Address
	}
	for _, n := range rep.Nodes {
		if n.Error != "" || n.Facts == nil {
			ev.FactErrors[n.Name] = strings.TrimSpace(n.Error)
			continue
		}
		ev.Facts[n.Name] = n.Facts
	}
	return ev
}

// ipv6Evidence is ev for a dual-stack cluster's IPv6 pass: its pairs,
// the nodes' IPv6 addresses (so the rules take IPv6's overhead), the same
// facts; the Service and DNS checks are the first pass's.
func ipv6Evidence(inv *inventory.Inventory, ev diagnose.Evidence, pairs6 model.Pairs) diagnose.Evidence {
	ev.Family, ev.Pairs, ev.Services, ev.DNS = model.FamilyIPv6, pairs6, nil, nil
	ev.Addresses = map[string]string{}
	for _, n := range inv.Nodes {
		ev.Addresses[n.Name] = n.Address6
	}
	return ev
}

// clusterEvidence adds what only the API server knows: node readiness and
// cordons, IPPools that carry an (ignored) mtu.
func clusterEvidence(ev *diagnose.Evidence, cl *kube.Cluster) {
	for _, n := range cl.Nodes {
		if !n.Ready {
			if ev.NotReady == nil {
				ev.NotReady = map[string]string{}
			}
			ev.NotReady[n.Name] = n.ReadyReason
		}
		if n.Cordoned {
			ev.Cordoned = append(ev.Cordoned, n.Name)
		}
	}
	if cl.Calico == nil {
		return
	}
	for n, pod := range cl.Calico.NodePods {
		if ev.CalicoPods == nil {
			ev.CalicoPods = map[string]diagnose.CalicoPod{}
		}
		ev.CalicoPods[n] = diagnose.CalicoPod{Name: pod, Ready: cl.Calico.NodeReady[n], LogErrors: cl.Calico.LogErrors[n]}
	}
	for _, p := range cl.Calico.IPPools {
		if p.MTU > 0 {
			if ev.IPPoolMTUs == nil {
				ev.IPPoolMTUs = map[string]int{}
			}
			ev.IPPoolMTUs[p.Name] = p.MTU
		}
	}
}
