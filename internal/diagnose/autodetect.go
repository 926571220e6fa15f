package diagnose

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"podpath/internal/calico"
	"podpath/internal/model"
)

// MTUAutodetect: Felix detected the host MTU on another interface than the
// one the node's traffic to the other nodes leaves by, and so set a Pod
// MTU that does not fit that interface, or wastes it.
const MTUAutodetect = "mtu-autodetect-wrong-interface"

// felixChoice is what Felix made of one node's interfaces.
type felixChoice struct {
	node      string
	host      calico.HostMTU
	file      int    // the Pod MTU Felix wrote
	uplink    string // the interface the routes to the other nodes use
	uplinkMTU int
	inUse     bool // some Pod interface has Felix's MTU
}

// mtuAutodetect works out, per node, the host MTU Felix's auto-detection
// picks from the node's interfaces and mtuIfacePattern, and compares it
// with the interface the node's routes to the other nodes use. It speaks
// only where the MTU file Felix wrote is what that detection gives (Felix
// ran and no MTU was set), the uplink is known, and the two differ: a
// Pod MTU above what the uplink carries (error when Pods have it) or
// below it (warning: every packet smaller than it could be).
func mtuAutodetect(s *state) {
	pattern := s.ev.Network.MTUIfacePattern // one Felix refuses gives no choice below
	overhead := s.overhead()
	var wrong []felixChoice
	for _, n := range s.ev.Nodes {
		if c, ok := s.felixChoice(n, pattern, overhead); ok {
			wrong = append(wrong, c)
		}
	}
	if len(wrong) == 0 {
		return
	}
	sev, nodes, ev := Warning, []string{}, []string{}
	best := 0
	for _, c := range wrong {
		nodes = append(nodes, c.node)
		if c.host.MTU > c.uplinkMTU && c.inUse {
			sev = Error
		}
		if b := c.uplinkMTU - overhead; best == 0 || b < best {
			best = b
		}
		took := fmt.Sprintf("took %s's MTU %d", strings.Join(c.host.From, ", "), c.host.MTU)
		if c.host.Fallback {
			took = fmt.Sprintf("matched no interface and fell back to %d", calico.FallbackHostMTU)
		}
		ev = append(ev, fmt.Sprintf("node %s: Felix %s and wrote Pod MTU %d; the routes to the other nodes leave by %s, MTU %d, which %s; Pods there fit %d",
			c.node, took, c.file, c.uplink, c.uplinkMTU, matchWord(pattern, c.uplink), c.uplinkMTU-overhead))
	}
	title := fmt.Sprintf("Felix detected the host MTU on the wrong interface on %s", nodesOrAll(nodes))
	summary := "Calico's Felix takes the host MTU from the smallest running interface whose name matches mtuIfacePattern (default " + calico.DefaultMTUIfacePattern +
		": bond*, br*, team* and VPN devices never match; with none it assumes 1460), subtracts the encapsulation and writes the Pod MTU the CNI plugin gives new Pods. On these nodes that is not the interface the traffic to the other nodes uses."
	if sev == Error {
		summary += " The Pods' MTU is larger than that interface carries: full-size packets are lost while small ones pass."
	} else {
		summary += " The Pod MTU is smaller than it could be, or larger where no Pod has it yet: new Pods get it."
	}
	r := s.mtuRemedy(best, "", 0)
	uplinks := uplinkPattern(wrong)
	r.Summary = fmt.Sprintf("Point Felix at the uplink: FelixConfiguration default mtuIfacePattern %s (or calico-node's FELIX_MTUIFACEPATTERN), then restart calico-node and the Pods. Or set the MTU explicitly, which Felix's detection then no longer decides: ", uplinks) + r.Summary
	inJSON := strings.ReplaceAll(uplinks, `\`, `\\`) // a JSON string in the patch
	r.Commands = append([]string{fmt.Sprintf(`kubectl patch felixconfiguration default --type merge -p '{"spec":{"mtuIfacePattern":"%s"}}' && kubectl -n kube-system rollout restart daemonset calico-node`, inJSON)}, r.Commands...)
	s.add(model.Finding{ID: MTUAutodetect, Severity: sev, Title: title, Summary: summary, Nodes: nodes, Evidence: capLines(ev, maxEvidence), Remedy: r}, nil)
}

// felixChoice is Felix's choice on node n when it is the wrong one.
func (s *state) felixChoice(n, pattern string, overhead int) (felixChoice, bool) {
	f := s.ev.Facts[n]
	if f == nil || f.Calico.MTUFile.Value <= 0 {
		return felixChoice{}, false // no Felix, or nothing it wrote to judge
	}
	var ifaces []calico.Iface
	mtu := map[string]int{}
	for _, l := range f.Links {
		ifaces = append(ifaces, calico.Iface{Name: l.Name, MTU: l.MTU, Running: calico.Running(l.State == model.LinkUp, l.OperState)})
		mtu[l.Name] = l.MTU
	}
	host, err := calico.FelixHostMTU(ifaces, pattern)
	if err != nil || f.Calico.MTUFile.Value != host.MTU-overhead {
		return felixChoice{}, false // an MTU set explicitly decided it, not the detection
	}
	c := felixChoice{node: n, host: host, file: f.Calico.MTUFile.Value}
	for _, peer := range s.ev.Nodes {
		if peer == n || s.ev.Addresses[peer] == "" {
			continue
		}
		dev := routeDev(f, s.ev.Addresses[peer])
		if dev == "" || mtu[dev] == 0 {
			continue
		}
		if c.uplink == "" || mtu[dev] < c.uplinkMTU {
			c.uplink, c.uplinkMTU = dev, mtu[dev]
		}
	}
	if c.uplink == "" || c.uplinkMTU == host.MTU {
		return felixChoice{}, false // unknown, or the choice is right whichever interface it came from
	}
	pod, _ := podAndTunnelMTU(f, s.tunnelDevice())
	c.inUse = slices.Contains(pod, c.file)
	return c, true
}

func matchWord(pattern, name string) string {
	if calico.Matches(pattern, name) {
		return "mtuIfacePattern matches"
	}
	return "mtuIfacePattern does not match"
}

// uplinkPattern is an mtuIfacePattern naming exactly the uplinks found.
func uplinkPattern(cs []felixChoice) string {
	var names []string
	for _, c := range cs {
		q := regexp.QuoteMeta(c.uplink)
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	sort.Strings(names)
	return "^(" + strings.Join(names, "|") + ")$"
}
