package netplan

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"podpath/internal/diagnose"
	"podpath/internal/model"

	"podpath/internal/calico"
)

// Preflight finding IDs.
const (
	PortBlocked  = "port-blocked"
	ClockSkew    = "clock-skew"
	PreflightMTU = "underlay-mtu"
)

// MaxClockSkew: etcd and TLS start to misbehave beyond this between nodes.
const MaxClockSkew = time.Second

// Port is a port a Calico/Kubernetes cluster needs between its nodes.
type Port struct {
	Proto string
	Port  int
	What  string
}

// Ports are the ports preflight checks between every pair of future nodes.
var Ports = []Port{
	{"tcp", 179, "BGP (calico-node's BIRD)"},
	{"tcp", 5473, "Typha"},
	{"tcp", 6443, "kube-apiserver"},
	{"tcp", 10250, "kubelet"},
	{"tcp", 2379, "etcd clients"},
	{"tcp", 2380, "etcd peers"},
	{"udp", 4789, "VXLAN"},
}

// PortResult is one port checked from one node to another.
type PortResult struct {
	From, To    string
	Proto       string
	Port        int
	State       string // open | refused | closed | filtered
	Unavailable string // the receiving agent could not listen there and nothing answered
}

// PreflightInput is what the agents measured on the future nodes.
type PreflightInput struct {
	Nodes  []string
	Encap  string       // vxlan | ipip | wireguard | none
	Pairs  []model.Pair // node layer: path MTU, reachability
	Ports  []PortResult
	Facts  map[string]*model.Facts
	Skew   map[string]time.Duration // node's clock minus the controller's
	Encaps map[string]bool          // modules the encapsulation needs, by module name
}

// PreflightResult is the verdict.
type PreflightResult struct {
	Findings       []model.Finding
	RecommendedMTU int
	Verdict        map[string]string // node → pass | warn | fail
}

// Preflight judges the future nodes.
func Preflight(in PreflightInput) *PreflightResult {
	r := &PreflightResult{Verdict: map[string]string{}}
	for _, n := range in.Nodes {
		r.Verdict[n] = "pass"
	}
	overhead := calico.Overhead(in.Encap)
	mtuFindings(in, r, overhead)
	portFindings(in, r)
	moduleFindings(in, r)
	skewFindings(in, r)
	for _, f := range r.Findings {
		for _, n := range f.Nodes {
			switch {
			case f.Severity == model.SeverityError:
				r.Verdict[n] = "fail"
			case f.Severity == model.SeverityWarning && r.Verdict[n] == "pass":
				r.Verdict[n] = "warn"
			}
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		return severity(r.Findings[i].Severity) < severity(r.Findings[j].Severity)
	})
	return r
}

// mtuFindings: the underlay's path MTU decides calico_mtu; a path that
// carries less than the hosts' interfaces is the seed case in waiting.
func mtuFindings(in PreflightInput, r *PreflightResult, overhead int) {
	min, iface := 0, 0
	var limited, unreachable []model.Pair
	for _, p := range in.Pairs {
		if !p.Reachable {
			unreachable = append(unreachable, p)
			continue
		}
		if p.PathMTU == 0 {
			continue
		}
		if min == 0 || p.PathMTU < min {
			min = p.PathMTU
		}
		if p.IfaceMTU > iface {
			iface = p.IfaceMTU
		}
		if p.IfaceMTU > 0 && p.PathMTU < p.IfaceMTU {
			limited = append(limited, p)
		}
	}
	if len(unreachable) > 0 {
		// One node whose agent is not running fails every pair it is in:
		// blame the node the failures have in common, not every destination.
		nodes := diagnose.Localize(unreachable, slices.All(in.Pairs))
		var ev []string
		for _, p := range unreachable {
			line := fmt.Sprintf("%s → %s: nothing crossed", p.From, p.To)
			switch {
			case p.Unknown != "":
				line = fmt.Sprintf("%s → %s: not measured (%s)", p.From, p.To, p.Unknown)
			case p.NoAgent:
				line += fmt.Sprintf(" (%s's host replied ICMP port unreachable: no agent runs there)", p.To)
			case len(p.Errors) > 0:
				line += " (" + p.Errors[0] + ")"
			}
			ev = append(ev, line)
		}
		title := fmt.Sprintf("%d node pairs cannot reach each other", len(unreachable))
		if len(nodes) > 0 {
			title = "Unreachable: " + strings.Join(nodes, ", ")
		}
		r.Findings = append(r.Findings, model.Finding{ID: diagnose.NodeUnreachable, Severity: model.SeverityError,
			Title: title, Nodes: nodes, Pairs: refs(unreachable), Evidence: ev,
			Summary: "No probe crossed: the nodes cannot talk at all (routing, a firewall, or the agent is not running there)."})
	}
	if min == 0 {
		return
	}
	r.RecommendedMTU = min - overhead
	nodes := diagnose.Localize(limited, slices.All(in.Pairs))
	var ev []string
	for _, p := range limited {
		ev = append(ev, fmt.Sprintf("%s → %s: %d of %d bytes cross", p.From, p.To, p.PathMTU, p.IfaceMTU))
	}
	title := fmt.Sprintf("Recommended calico_mtu: %d", r.RecommendedMTU)
	sev, summary := model.SeverityInfo, fmt.Sprintf("Every path carries %d bytes; %s takes %d.", min, in.Encap, overhead)
	if len(limited) > 0 {
		where := "some paths"
		if len(nodes) > 0 {
			where = "paths to and from " + strings.Join(nodes, ", ")
		}
		sev = model.SeverityWarning
		title = fmt.Sprintf("The underlay carries only %d bytes on %s: calico_mtu %d", min, where, r.RecommendedMTU)
		summary = fmt.Sprintf("The hosts' interfaces allow %d bytes but %s carry %d, without an error: Calico's auto-detection looks at the interface and would pick %d. Set calico_mtu: %d before installing, or make the network carry %d bytes.",
			iface, where, min, iface-overhead, r.RecommendedMTU, iface)
	}
	r.Findings = append(r.Findings, model.Finding{ID: PreflightMTU, Severity: sev, Title: title, Summary: summary,
		Nodes: nodes, Pairs: refs(limited), Evidence: ev,
		Remedy: &model.Remedy{MTU: r.RecommendedMTU, Summary: fmt.Sprintf("calico_mtu: %d in group_vars/k8s_cluster/k8s-net-calico.yml", r.RecommendedMTU)}})
}

func refs(ps []model.Pair) []model.PairRef {
	var out []model.PairRef
	for _, p := range ps {
		out = append(out, model.PairRef{From: p.From, To: p.To, Layer: p.Layer})
	}
	return out
}

// portFindings: one finding per destination node and port that did not
// answer from some node.
func portFindings(in PreflightInput, r *PreflightResult) {
	type key struct {
		to, proto string
		port      int
	}
	from := map[key][]string{}
	states := map[key][]string{}
	var order []key
	for _, p := range in.Ports {
		if p.State == "open" {
			continue
		}
		k := key{p.To, p.Proto, p.Port}
		if from[k] == nil {
			order = append(order, k)
		}
		from[k] = append(from[k], p.From)
		line := fmt.Sprintf("%s → %s %s/%d: %s", p.From, p.To, p.Proto, p.Port, p.State)
		if p.Unavailable != "" {
			line += " (" + p.Unavailable + ")"
		}
		states[k] = append(states[k], line)
	}
	for _, k := range order {
		what := ""
		for _, p := range Ports {
			if p.Proto == k.proto && p.Port == k.port {
				what = " (" + p.What + ")"
			}
		}
		r.Findings = append(r.Findings, model.Finding{ID: PortBlocked, Severity: model.SeverityError,
			Title:    fmt.Sprintf("%s %d%s to %s is blocked from %s", strings.ToUpper(k.proto), k.port, what, k.to, strings.Join(from[k], ", ")),
			Summary:  "The cluster will need this port between its nodes; a host firewall, security group or network ACL drops it.",
			Nodes:    []string{k.to},
			Evidence: states[k],
			Remedy: &model.Remedy{Summary: fmt.Sprintf("Allow %s %d to %s from the other nodes (host firewall, cloud security group, switch ACL).", strings.ToUpper(k.proto), k.port, k.to),
				Commands: []string{fmt.Sprintf("nft list ruleset | grep -n 'dport %d'   # on %s", k.port, k.to)}}})
	}
}

// moduleFindings: the kernel modules the encapsulation needs, and the
// sysctls Calico relies on.
func moduleFindings(in PreflightInput, r *PreflightResult) {
	for _, n := range in.Nodes {
		f := in.Facts[n]
		if f == nil {
			continue
		}
		for _, m := range f.KernelModules {
			if in.Encaps[m.Name] && m.State == model.ModuleMissing {
				r.Findings = append(r.Findings, model.Finding{ID: diagnose.KernelModuleMissing, Severity: model.SeverityError,
					Title: fmt.Sprintf("Kernel module %s missing on %s", m.Name, n), Nodes: []string{n},
					Summary:  fmt.Sprintf("%s encapsulation needs it; this kernel (%s) cannot load it.", in.Encap, f.Kernel),
					Evidence: []string{m.Evidence},
					Remedy:   &model.Remedy{Summary: "Install the kernel's extra modules package, or plan another encapsulation."}})
			}
		}
		if v := f.Sysctls.RPFilterAll; v != nil && *v == 1 {
			r.Findings = append(r.Findings, model.Finding{ID: diagnose.RPFilterStrict, Severity: model.SeverityWarning,
				Title: "Strict rp_filter on " + n, Nodes: []string{n},
				Summary: "net.ipv4.conf.all.rp_filter = 1: Calico needs loose (2) or off; calico-node refuses to start with strict filtering on some set-ups.",
				Remedy:  &model.Remedy{Summary: "sysctl -w net.ipv4.conf.all.rp_filter=2 and persist it."}})
		}
	}
}

func skewFindings(in PreflightInput, r *PreflightResult) {
	var nodes []string
	for n := range in.Skew {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if d := in.Skew[n]; d > MaxClockSkew || d < -MaxClockSkew {
			r.Findings = append(r.Findings, model.Finding{ID: ClockSkew, Severity: model.SeverityWarning,
				Title: fmt.Sprintf("%s's clock is %s off", n, d.Round(time.Millisecond)), Nodes: []string{n},
				Summary: "etcd, certificates and logs need the nodes' clocks in step (within a second).",
				Remedy:  &model.Remedy{Summary: "Run an NTP client (chrony, systemd-timesyncd) on every node."}})
		}
	}
}
