// Package preflight is preflight's run on the future nodes' agents: the
// temporary listeners, every pair's path MTU and ports, every node's host
// facts, and netplan's verdicts on them. The command reads the inventory
// and renders; Run does the rest, and closes its listeners however it
// ends.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/doctor"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/netplan"
	"podpath/internal/plan"
)

// Role is what the cluster will run on a node.
type Role struct {
	ControlPlane, Etcd bool
}

// Options is one run.
type Options struct {
	Inventory *inventory.Inventory
	Token     string
	Roles     map[string]Role // by node; a node without one is checked for everything
	Backend   string          // calico_network_backend: vxlan, bird or none
	Encap     string          // the encapsulation (netplan.Input.Encapsulation)
	Typha     bool
	Timeout   time.Duration
	Say       func(format string, a ...any) // progress; nil: nothing is said
}

// Result is a run's report (pairs, host facts, findings, the configuration
// with a note per node) and netplan's verdicts.
type Result struct {
	Report *model.Report
	Nodes  []string
	*netplan.PreflightResult
}

// ErrTooFew: preflight needs agents on two nodes at least.
var ErrTooFew = errors.New("preflight needs agents on at least two nodes")

// Run checks every pair of o.Inventory's nodes.
func Run(ctx context.Context, o Options) (*Result, error) {
	say := func(format string, a ...any) {
		if o.Say != nil {
			o.Say(format, a...)
		}
	}
	inv := o.Inventory
	jobs := plan.Mesh(inv, model.LayerNode)
	if len(jobs) == 0 {
		return nil, ErrTooFew
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	r := &measure.Runner{Token: o.Token}
	defer r.Close()
	ports := NeededPorts(o.Backend, o.Typha)
	say("podpath preflight: opening temporary listeners on %d nodes…", len(inv.Nodes))
	unavailable := listenAll(ctx, o.Token, jobs, ports, o.Timeout)
	defer unlistenAll(ctx, o.Token, jobs)
	say("podpath preflight: probing %d node pairs (path MTU and %d ports)…", len(jobs)*(len(jobs)-1), len(ports))
	req := agent.ProbeRequest{PathMTU: true, RTT: &agent.Series{Count: 3, IntervalMs: 10}}
	for _, p := range ports {
		req.Ports = append(req.Ports, agent.PortCheck{Proto: p.Proto, Port: p.Port})
	}
	rep := &model.Report{}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Nodes = r.Facts(ctx, inv) })
	rep.Pairs = model.PairsOf(r.Run(ctx, jobs, req))
	wg.Wait()
	if !doctor.AnyAnswer(rep.Pairs) {
		return nil, fmt.Errorf("no agent answered (first error: %s)", doctor.FirstError(rep.Pairs))
	}
	in := netplan.PreflightInput{Encap: o.Encap, Pairs: rep.Pairs.Slice(), Facts: map[string]*model.Facts{},
		Skew: map[string]time.Duration{}, Encaps: map[string]bool{o.Encap: true}}
	for _, n := range inv.Nodes {
		in.Nodes = append(in.Nodes, n.Name)
	}
	for _, ni := range rep.Nodes {
		fc := ni.Facts
		if ni.Error != "" || fc == nil {
			continue
		}
		in.Facts[ni.Name] = fc
		if !fc.CollectedAt.IsZero() {
			in.Skew[ni.Name] = fc.CollectedAt.Sub(ni.ReceivedAt)
		}
	}
	for _, p := range rep.Pairs.All() {
		role, ok := o.Roles[p.To]
		if !ok {
			role = Role{ControlPlane: true, Etcd: true}
		}
		for _, ps := range p.Ports {
			if !PortFor(ps.Port, role) {
				continue
			}
			in.Ports = append(in.Ports, netplan.PortResult{From: p.From, To: p.To, Proto: ps.Proto, Port: ps.Port, State: ps.State,
				Unavailable: unavailable[p.To+"/"+ps.Proto+"/"+strconv.Itoa(ps.Port)]})
		}
	}
	res := netplan.Preflight(in)
	rep.Findings = res.Findings
	rep.DurationMs = float64(time.Since(start)) / float64(time.Millisecond)
	rep.Config = &model.Config{Source: "preflight", Backend: o.Backend, PodMTU: res.RecommendedMTU}
	for _, n := range in.Nodes {
		rep.Config.Notes = append(rep.Config.Notes, fmt.Sprintf("%s: %s", n, res.Verdict[n]))
	}
	return &Result{Report: rep, Nodes: in.Nodes, PreflightResult: res}, nil
}

// NeededPorts: what the chosen backend uses, and Kubernetes' own.
func NeededPorts(backend string, typha bool) []netplan.Port {
	var out []netplan.Port
	for _, p := range netplan.Ports {
		switch {
		case p.Port == 179 && backend != "bird":
		case p.Port == 4789 && backend != "vxlan":
		case p.Port == 5473 && !typha:
		default:
			out = append(out, p)
		}
	}
	return out
}

// PortFor: the API server's port matters towards control-plane nodes,
// etcd's towards etcd members; the rest towards every node.
func PortFor(port int, role Role) bool {
	switch port {
	case 6443:
		return role.ControlPlane
	case 2379, 2380:
		return role.Etcd
	}
	return true
}

// unlistenAll closes the temporary listeners at once, also after Ctrl-C
// (ctx may be done: the calls get a few seconds of their own).
func unlistenAll(ctx context.Context, token string, jobs []plan.Job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { _ = agent.NewClient(j.From.Name(), j.From.Agent, token, j.From.Netns).Unlisten(ctx) })
	}
	wg.Wait()
}

// listenAll tells every agent its peers (its UDP listeners answer only
// them) and opens the temporary listeners; the answer says which ports are
// already held (by what the node runs) or failed.
func listenAll(ctx context.Context, token string, jobs []plan.Job, ports []netplan.Port, d time.Duration) map[string]string {
	req := agent.ListenRequest{Seconds: int(min(max(d, time.Second)/time.Second, agent.MaxListenSeconds))}
	for _, p := range ports {
		req.Ports = append(req.Ports, agent.PortCheck{Proto: p.Proto, Port: p.Port})
	}
	var mu sync.Mutex
	out := map[string]string{}
	fail := func(node, why string) {
		for _, p := range ports {
			out[node+"/"+p.Proto+"/"+strconv.Itoa(p.Port)] = "no listener: " + why
		}
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			c := agent.NewClient(j.From.Name(), j.From.Agent, token, j.From.Netns)
			var peers []agent.Peer
			for _, p := range j.Peers {
				peers = append(peers, agent.Peer{Name: p.Name(), Address: p.Agent})
			}
			err := c.SetPeers(ctx, peers)
			var resp *agent.ListenResponse
			if err == nil {
				resp, err = c.Listen(ctx, req)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail(j.From.Node, err.Error())
				return
			}
			for _, l := range resp.Ports {
				key := j.From.Node + "/" + l.Proto + "/" + strconv.Itoa(l.Port)
				switch {
				case l.Taken:
					out[key] = "something on " + j.From.Node + " already holds it"
				case !l.Listening:
					out[key] = "no listener: " + l.Error
				}
			}
		})
	}
	wg.Wait()
	return out
}
