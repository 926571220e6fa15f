//go:build !agentonly

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kubespray"
	"podpath/internal/deploy"
	"podpath/internal/model"
	"podpath/internal/netplan"
	"podpath/internal/preflight"
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

func runPreflight(ctx context.Context, s Streams, f *preflightFlags) error {
	if err := checkOutput(f.output, "text", "json", "html"); err != nil {
		return err
	}
	if err := positiveDuration("timeout", f.timeout); err != nil {
		return err
	}
	if f.backend != "" && !slices.Contains(calicoBackends, f.backend) {
		return fmt.Errorf("--backend %q: use vxlan, bird or none", f.backend)
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
	token, err := inv.Token(f.tokenFile)
	if err != nil {
		return err
	}
	interrupted := ctx.Err // the run's own timeout is not an interruption
	prog := newProgress(s.Err)
	defer prog.done()
	res, err := preflight.Run(ctx, preflight.Options{Inventory: inv, Token: token, Roles: roles, Backend: nw.Backend,
		Encap: nw.Encapsulation(), Typha: nw.Typha, Timeout: f.timeout, Say: prog.say})
	if interrupted() != nil {
		return errInterrupted
	}
	if errors.Is(err, preflight.ErrTooFew) {
		return err
	}
	if err != nil {
		return err
	}
	rep := res.Report
	prog.done()
	switch f.output {
	case "json":
		err = report.JSON(out, rep)
	case "html":
		err = report.HTML(out, rep)
	default:
		preflightText(out, res.Nodes, res.PreflightResult, rep)
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
func preflightInventory(f *preflightFlags) (*inventory.Inventory, map[string]preflight.Role, preflightNet, error) {
	roles := map[string]preflight.Role{}
	var nw preflightNet
	switch {
	case (f.inventory == "") == (f.kubesprayDir == ""):
		return nil, nil, nw, fmt.Errorf("give either --inventory FILE or --kubespray-inventory DIR")
	case f.inventory != "":
		inv, err := inventory.Load(f.inventory)
		if err != nil {
			return nil, nil, nw, err
		}
		for _, n := range inv.Nodes {
			roles[n.Name] = preflight.Role{ControlPlane: true, Etcd: true} // unknown: check everything
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
		return nil, nil, nw, err
	}
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind}
	for _, h := range ks.Hosts {
		if !inK8s(h.Groups) && !slices.Contains(h.Groups, "etcd") {
			continue
		}
		if h.Address == "" {
			return nil, nil, nw, fmt.Errorf("host %s has no ip, access_ip or ansible_host: preflight needs its address", h.Name)
		}
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: h.Name, Address: h.Address,
			Agent: net.JoinHostPort(h.Address, strconv.Itoa(deploy.AgentPort))})
		roles[h.Name] = preflight.Role{ControlPlane: slices.Contains(h.Groups, "kube_control_plane"), Etcd: slices.Contains(h.Groups, "etcd")}
	}
	nw.Backend = ks.String("calico_network_backend")
	if f.backend != "" {
		nw.Backend = f.backend
	}
	nw.VXLANMode, nw.IPIPMode = ks.String("calico_vxlan_mode"), ks.String("calico_ipip_mode")
	nw.WireGuard, nw.Typha = ks.Bool("calico_wireguard_enabled"), ks.Bool("typha_enabled")
	return inv, roles, nw, nil
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
