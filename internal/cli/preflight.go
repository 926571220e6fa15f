//go:build !agentonly

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/agent"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kubespray"
	"podpath/internal/deploy"
	"podpath/internal/doctor"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/netplan"
	"podpath/internal/plan"
	"podpath/internal/report"
)

// DefaultPreflightTimeout bounds a preflight run.
const DefaultPreflightTimeout = 30 * time.Second

type preflightFlags struct {
	inventory, kubesprayDir, tokenFile, output, backend string
	outputFile                                          string
	timeout                                             time.Duration
}

func newPreflight(s Streams) *cobra.Command {
	var f preflightFlags
	c := &cobra.Command{
		Use:   "preflight (--inventory FILE | --kubespray-inventory DIR --token-file F)",
		Short: "Check the future nodes' network before installing: path MTU, the ports the cluster needs, modules, clocks",
		Long: `preflight talks to a podpath agent started on each future node and checks, for every node pair:
the underlay's path MTU (and the calico_mtu it allows), that TCP 179 (BGP), 5473 (Typha), 6443
(API server), 10250 (kubelet), 2379-2380 (etcd) and UDP 4789 (VXLAN) pass between the nodes (the
agents open temporary listeners where nothing listens yet, and say when something already holds
a port), the kernel modules the encapsulation needs, rp_filter, and clock skew between the
nodes. It gives a verdict per node and the calico_mtu to set.

Make one token, then start the agent on every node with it (one static binary, as root,
removed with the files):
  head -c32 /dev/urandom | base64 > pp.token
  scp podpath pp.token NODE:/tmp/ && ssh NODE \
    '/tmp/podpath agent --listen $(hostname -I | cut -d" " -f1):7946 --name $(hostname) --token-file /tmp/pp.token'
Then from any machine that reaches them (exit 1 when a node fails):
  podpath preflight --kubespray-inventory inventory/mycluster --token-file pp.token`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runPreflight(c.Context(), s, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.inventory, "inventory", "", "podpath inventory of the nodes and their agents")
	fl.StringVar(&f.kubesprayDir, "kubespray-inventory", "", "Kubespray inventory directory: agents at each host's address, port 7946")
	fl.StringVar(&f.tokenFile, "token-file", "", "agent token (default: the inventory's tokenFile)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text, json or html")
	fl.StringVar(&f.outputFile, "output-file", "", "write the report here instead of standard output (created before anything runs; removed if the run ends without a whole report)")
	fl.StringVar(&f.backend, "backend", "", "calico_network_backend to check for: vxlan, bird or none (default: the Kubespray inventory's, else vxlan)")
	fl.DurationVar(&f.timeout, "timeout", DefaultPreflightTimeout, "bound on the whole run (more than 0)")
	return c
}

// preflightNode is a future node and what the cluster will run on it.
type preflightNode struct {
	controlPlane, etcd bool
}

func runPreflight(ctx context.Context, s Streams, f *preflightFlags) error {
	if err := checkOutput(f.output, "text", "json", "html"); err != nil {
		return err
	}
	if err := positiveDuration("timeout", f.timeout); err != nil {
		return err
	}
	if f.backend != "" && !slices.Contains(calicoBackends, f.backend) {
		return usageError{fmt.Errorf("--backend %q: use vxlan, bird or none", f.backend)}
	}
	out, err := openOutput(s, f.outputFile)
	if err != nil {
		return err
	}
	defer out.discard()
	inv, roles, nw, err := preflightInventory(f)
	if err != nil {
		return err
	}
	backend, encap := nw.Backend, nw.Encapsulation()
	token, err := inv.Token(f.tokenFile)
	if err != nil {
		return usageError{err}
	}
	jobs := plan.Mesh(inv, model.LayerNode)
	if len(jobs) == 0 {
		return usageError{fmt.Errorf("preflight needs agents on at least two nodes")}
	}
	interrupted := ctx.Err // the run's own timeout below is not an interruption
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	start := time.Now()
	prog := newProgress(s.Err)
	defer prog.done()
	r := &measure.Runner{Token: token}
	defer r.Close()
	ports := neededPorts(backend, nw.Typha)
	prog.say("podpath preflight: opening temporary listeners on %d nodes…", len(inv.Nodes))
	unavailable := listenAll(ctx, token, jobs, ports, f.timeout)
	defer unlistenAll(ctx, token, jobs)
	prog.say("podpath preflight: probing %d node pairs (path MTU and %d ports)…", len(jobs)*(len(jobs)-1), len(ports))
	req := agent.ProbeRequest{PathMTU: true, RTT: &agent.Series{Count: 3, IntervalMs: 10}}
	for _, p := range ports {
		req.Ports = append(req.Ports, agent.PortCheck{Proto: p.Proto, Port: p.Port})
	}
	rep := &model.Report{}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Nodes = r.Facts(ctx, inv) })
	rep.Pairs = model.PairsOf(r.Run(ctx, jobs, req))
	wg.Wait()
	if interrupted() != nil {
		return errInterrupted
	}
	if !doctor.AnyAnswer(rep.Pairs) {
		return fmt.Errorf("no agent answered (first error: %s)", doctor.FirstError(rep.Pairs))
	}
	in := netplan.PreflightInput{Encap: encap, Pairs: rep.Pairs.Slice(), Facts: map[string]*model.Facts{},
		Skew: map[string]time.Duration{}, Encaps: map[string]bool{encap: true}}
	for _, n := range inv.Nodes {
		in.Nodes = append(in.Nodes, n.Name)
	}
	for _, ni := range rep.Nodes {
		var fc model.Facts
		if ni.Error != "" || json.Unmarshal(ni.Facts, &fc) != nil {
			continue
		}
		in.Facts[ni.Name] = &fc
		if !fc.CollectedAt.IsZero() {
			in.Skew[ni.Name] = fc.CollectedAt.Sub(ni.ReceivedAt)
		}
	}
	for _, p := range rep.Pairs.All() {
		role := roles[p.To]
		for _, ps := range p.Ports {
			if !portFor(ps.Port, role) {
				continue
			}
			in.Ports = append(in.Ports, netplan.PortResult{From: p.From, To: p.To, Proto: ps.Proto, Port: ps.Port, State: ps.State,
				Unavailable: unavailable[p.To+"/"+ps.Proto+"/"+strconv.Itoa(ps.Port)]})
		}
	}
	res := netplan.Preflight(in)
	rep.Findings = res.Findings
	rep.DurationMs = float64(time.Since(start)) / float64(time.Millisecond)
	rep.Config = &model.Config{Source: "preflight", Backend: backend, PodMTU: res.RecommendedMTU}
	for _, n := range in.Nodes {
		rep.Config.Notes = append(rep.Config.Notes, fmt.Sprintf("%s: %s", n, res.Verdict[n]))
	}
	prog.done()
	switch f.output {
	case "json":
		err = report.JSON(out, rep)
	case "html":
		err = report.HTML(out, rep)
	default:
		preflightText(out, in.Nodes, res, rep)
	}
	if err := out.finish(err); err != nil {
		return err
	}
	return findingsExit(res.Findings)
}

// preflightNet is the planned network preflight checks for.
type preflightNet struct {
	netplan.Input
	Typha bool
}

// preflightInventory reads the nodes, their roles and the planned network
// (Kubespray's variables, or --backend and Kubespray's defaults).
func preflightInventory(f *preflightFlags) (*inventory.Inventory, map[string]preflightNode, preflightNet, error) {
	roles := map[string]preflightNode{}
	var nw preflightNet
	switch {
	case (f.inventory == "") == (f.kubesprayDir == ""):
		return nil, nil, nw, usageError{fmt.Errorf("give either --inventory FILE or --kubespray-inventory DIR")}
	case f.inventory != "":
		inv, err := inventory.Load(f.inventory)
		if err != nil {
			return nil, nil, nw, usageError{err}
		}
		for _, n := range inv.Nodes {
			roles[n.Name] = preflightNode{controlPlane: true, etcd: true} // unknown: check everything
		}
		nw.Backend = f.backend
		if nw.Backend == "" {
			nw.Backend = "vxlan"
		}
		if nw.Backend == "vxlan" {
			nw.VXLANMode = "Always"
		}
		return inv, roles, nw, nil
	}
	ks, err := kubespray.Load(f.kubesprayDir)
	if err != nil {
		return nil, nil, nw, usageError{err}
	}
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind}
	for _, h := range ks.Hosts {
		if !inK8s(h.Groups) && !slices.Contains(h.Groups, "etcd") {
			continue
		}
		if h.Address == "" {
			return nil, nil, nw, usageError{fmt.Errorf("host %s has no ip, access_ip or ansible_host: preflight needs its address", h.Name)}
		}
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: h.Name, Address: h.Address,
			Agent: net.JoinHostPort(h.Address, strconv.Itoa(deploy.AgentPort))})
		roles[h.Name] = preflightNode{controlPlane: slices.Contains(h.Groups, "kube_control_plane"), etcd: slices.Contains(h.Groups, "etcd")}
	}
	nw.Backend = ks.String("calico_network_backend")
	if f.backend != "" {
		nw.Backend = f.backend
	}
	nw.VXLANMode, nw.IPIPMode = ks.String("calico_vxlan_mode"), ks.String("calico_ipip_mode")
	nw.WireGuard, nw.Typha = ks.Bool("calico_wireguard_enabled"), ks.Bool("typha_enabled")
	return inv, roles, nw, nil
}

// neededPorts: what the chosen backend uses, and Kubernetes' own.
func neededPorts(backend string, typha bool) []netplan.Port {
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

// portFor: the API server's port matters towards control-plane nodes,
// etcd's towards etcd members; the rest towards every node.
func portFor(port int, role preflightNode) bool {
	switch port {
	case 6443:
		return role.controlPlane
	case 2379, 2380:
		return role.etcd
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

func preflightText(w io.Writer, nodes []string, res *netplan.PreflightResult, rep *model.Report) {
	fmt.Fprintf(w, "Recommended calico_mtu: %d\n\n", res.RecommendedMTU)
	fmt.Fprintln(w, "node verdicts:")
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-12s %s\n", n, strings.ToUpper(res.Verdict[n]))
	}
	fmt.Fprintln(w)
	report.FindingsText(w, res.Findings)
	report.MTUText(w, &model.Report{Pairs: rep.Pairs, DurationMs: rep.DurationMs})
	fmt.Fprintf(w, "preflight of %d nodes in %.1fs\n", len(nodes), rep.DurationMs/1000)
}
