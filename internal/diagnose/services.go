package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"podpath/internal/model"
)

// ServiceOK: every probe of a Service check came through.
func ServiceOK(p model.Pair) bool {
	return p.Reachable && p.TCPConnectMs != nil && p.TransferBytes > 0 && !p.Stalled && len(p.Errors) == 0
}

// ServiceFailure says in a few words what of a Service check failed.
func ServiceFailure(p model.Pair) string {
	switch {
	case !p.Reachable && p.TCPConnectMs == nil:
		return "no UDP echo and no TCP handshake"
	case !p.Reachable:
		return "no UDP echo"
	case p.TCPConnectMs == nil:
		return "no TCP handshake"
	case p.Stalled:
		return "the upload stalled"
	case len(p.Errors) > 0:
		return p.Errors[0]
	}
	return "the upload did not arrive"
}

// servicePaths judges the Service checks against the direct Pod traffic
// of the same pairs. Only a check whose direct pair worked counts: when
// Pod traffic itself fails, the Pod network's findings say why and a
// Service could not do better. A sender whose every check fails, towards
// backends other senders reach, is that node's kube-proxy (the DNAT is
// done on the sending node); a backend no sender reaches through its
// Service while they reach it directly is that Service's path to it.
func servicePaths(st *state) []model.Finding {
	s := &serviceJudge{ev: st.ev, explained: st.isExplained}
	s.judge()
	return s.findings
}

// serviceRule is a rule giving servicePaths' findings of one ID: the
// judgement is made whole, each ID ranks where it belongs.
func serviceRule(id string) func(*state) {
	return func(s *state) {
		for _, f := range servicePaths(s) {
			if f.ID == id {
				s.add(f, nil)
			}
		}
	}
}

type serviceJudge struct {
	ev        *Evidence
	explained func(model.Pair) bool // by a finding ranked earlier
	findings  []model.Finding
}

func (s *serviceJudge) add(f model.Finding, _ []model.Pair) { s.findings = append(s.findings, f) }

func (s *serviceJudge) judge() {
	if len(s.ev.Services) == 0 {
		return
	}
	// The direct pair each check is compared with: Pod to Pod for a
	// ClusterIP, host to host for a NodePort.
	direct := map[pairKey]bool{}
	for _, p := range s.ev.Pairs.All() {
		if DirectWorks(p) && !s.explained(p) {
			direct[keyOf(p)] = true
		}
	}
	directOf := map[model.Layer]model.Layer{model.LayerService: model.LayerPod, model.LayerNodePort: model.LayerNode}
	// What each node's kube-proxy did: the ClusterIP checks sent from it,
	// the NodePort checks received by it.
	byProxy := map[pairKey][]model.Pair{} // (layer, node, ""): checks node's kube-proxy took part in
	okTo := map[pairKey]int{}             // checks that passed, by (layer, "", to) and (layer, from, "")
	var failing []model.Pair
	for _, p := range s.ev.Services {
		if !p.Measured() || !direct[pairKey{directOf[p.Layer], p.From, p.To}] {
			continue
		}
		proxy := p.From
		if p.Layer == model.LayerNodePort {
			proxy = p.To
		}
		byProxy[pairKey{p.Layer, proxy, ""}] = append(byProxy[pairKey{p.Layer, proxy, ""}], p)
		if ServiceOK(p) {
			okTo[pairKey{p.Layer, "", p.To}]++
			okTo[pairKey{p.Layer, p.From, ""}]++
		} else {
			failing = append(failing, p)
		}
	}
	if len(failing) == 0 {
		return
	}
	done := map[pairKey]bool{}
	for _, n := range s.ev.Nodes {
		var bad []model.Pair
		for _, layer := range []model.Layer{model.LayerService, model.LayerNodePort} {
			ps := byProxy[pairKey{layer, n, ""}]
			if len(ps) == 0 || slices.ContainsFunc(ps, ServiceOK) {
				continue
			}
			// The other end works with other kube-proxies (a ClusterIP
			// check's backend reached from other senders, a NodePort
			// check's sender reaching other nodes), or n failed several,
			// or n's kube-proxy says it is not working: n's kube-proxy.
			elsewhere := slices.ContainsFunc(ps, func(p model.Pair) bool {
				if layer == model.LayerNodePort {
					return okTo[pairKey{layer, p.From, ""}] > 0
				}
				return okTo[pairKey{layer, "", p.To}] > 0
			})
			if elsewhere || len(ps) >= 2 || s.kubeProxyDown(n) {
				bad = append(bad, ps...)
			}
		}
		if len(bad) == 0 {
			continue
		}
		for _, p := range bad {
			done[keyOf(p)] = true
		}
		s.proxyFails(n, bad)
	}
	// A backend no sender reaches through its ClusterIP, while they reach
	// it directly and reach other backends.
	in := map[string][]model.Pair{}
	for _, p := range failing {
		if p.Layer == model.LayerService && !done[keyOf(p)] {
			in[p.To] = append(in[p.To], p)
		}
	}
	for _, n := range s.ev.Nodes {
		ps := in[n]
		if len(ps) < 2 || okTo[pairKey{model.LayerService, "", n}] > 0 {
			continue
		}
		for _, p := range ps {
			done[keyOf(p)] = true
		}
		s.add(model.Finding{
			ID: ServicePathFailing, Severity: Error, Title: "Services to " + n + "'s Pods fail",
			Summary: "Pods on other nodes reach " + n + "'s Pods directly, and not through a Service in front of them, from any node: the DNAT'd traffic, or its answers, are lost on the way to or from " + n + ".",
			Nodes:   []string{n}, Evidence: capLines(checkLines(ps), maxEvidence),
			Remedy: &model.Remedy{Summary: "Look at what treats DNAT'd traffic differently on " + n + ": a firewall rule on the Pod's own port or a policy on its Pods, conntrack (ct state invalid drops), reverse-path filtering.",
				Commands: []string{"conntrack -S   # on " + n + ": insert_failed, drop", "nft list ruleset | grep -n 'ct state invalid'   # on " + n}},
		}, nil)
	}
	var rest []model.Pair
	for _, p := range failing {
		if !done[keyOf(p)] {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		var nodes []string
		for _, p := range rest {
			for _, n := range []string{p.From, p.To} {
				if !slices.Contains(nodes, n) {
					nodes = append(nodes, n)
				}
			}
		}
		s.add(model.Finding{
			ID: ServicePathFailing, Severity: Warning, Title: fmt.Sprintf("%s through a Service fail", count(len(rest), "check")),
			Summary: "These nodes reach each other directly and not through a Service in front of the backend, while their other Service checks pass: a rule, or conntrack, that treats these flows differently; or a sync kube-proxy had not finished.",
			Nodes:   nodes, Evidence: capLines(checkLines(rest), maxEvidence),
		}, nil)
	}
}

// proxyFails is the finding for a node whose kube-proxy's part of every
// Service check failed (its Pods reach no ClusterIP, other nodes reach no
// NodePort of it) while the same ends reach each other directly, in the
// words kube-proxy's state on the node allows.
func (s *serviceJudge) proxyFails(n string, ps []model.Pair) {
	ev := checkLines(ps)
	f, ok := s.ev.Facts[n]
	var kp model.KubeProxy
	if ok && f != nil {
		kp = f.KubeProxy
	}
	if kp.HealthzAddress != "" {
		ev = append(ev, fmt.Sprintf("kube-proxy's /healthz on %s (%s): %s", n, kp.HealthzAddress, healthWords(kp)))
	}
	if kp.RulesError != "" {
		ev = append(ev, "kube-proxy's rules on "+n+": could not be read: "+kp.RulesError)
	} else if ok {
		ev = append(ev, "kube-proxy's rule sets in "+n+"'s kernel: "+orWord(strings.Join(kp.Rules, ", "), "none"))
	}
	if udpOnly(ps) {
		ev = append(ev, "UDP through the Services came back and TCP did not: besides kube-proxy, the VXLAN checksum-offload trap (TCP through a Service lost while direct Pod traffic works, calico #4727) fits this")
	}
	ev = capLines(ev, maxEvidence)
	var what []string
	if slices.ContainsFunc(ps, func(p model.Pair) bool { return p.Layer == model.LayerService }) {
		what = append(what, n+"'s Pods reach other nodes' Pods directly and through no Service")
	}
	if slices.ContainsFunc(ps, func(p model.Pair) bool { return p.Layer == model.LayerNodePort }) {
		what = append(what, "other nodes reach "+n+" directly and through none of its NodePorts")
	}
	seen := strings.Join(what, "; ")
	noRules := ok && kp.RulesError == "" && len(kp.Rules) == 0
	pods := "kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide --field-selector spec.nodeName=" + n
	switch kp.Healthz {
	case model.KubeProxyNotListening:
		lost := "so the Services created since it stopped are not in " + n + "'s rules"
		if noRules {
			lost = "and none of its rules are in " + n + "'s kernel (as after a reboot it did not come back from): every Service, old and new, fails through " + n
		}
		s.add(model.Finding{
			ID: KubeProxyDown, Severity: Error, Title: "kube-proxy not running on " + n,
			Summary: seen + ", and nothing answers kube-proxy's health port on " + n + ": kube-proxy is not running there, " + lost + ". The Pod network is fine.",
			Nodes:   []string{n}, Evidence: ev,
			Remedy: &model.Remedy{Summary: "Start kube-proxy on " + n + " again and read why it stopped.",
				Commands: []string{pods, "kubectl -n kube-system logs <that pod> --previous", "kubectl -n kube-system delete pod <that pod>   # the DaemonSet starts a new one", "systemctl status kube-proxy   # where it runs as a service"}},
		}, nil)
	case model.KubeProxyUnhealthy:
		s.add(model.Finding{
			ID: KubeProxyDown, Severity: Error, Title: "kube-proxy unhealthy on " + n,
			Summary: seen + ", and kube-proxy on " + n + " reports itself unhealthy: it has not applied the cluster's Services in time. The Pod network is fine.",
			Nodes:   []string{n}, Evidence: ev,
			Remedy: &model.Remedy{Summary: "Read kube-proxy's log on " + n + ": it says why its rules are not applied (API server unreachable, nftables or iptables errors).",
				Commands: []string{pods, "kubectl -n kube-system logs <that pod>"}},
		}, nil)
	default:
		summary := seen + ", while other nodes' Service checks with the same ends pass: " + n + "'s Service rules (kube-proxy's DNAT) are missing or stale."
		if len(what) == 1 && ps[0].Layer == model.LayerNodePort {
			summary = seen + ", while other nodes' NodePorts answer the same senders: what " + n + " does with traffic to its NodePorts, kube-proxy's NodePort rules or a firewall on the node-port range (30000-32767 unless the API server's --service-node-port-range says otherwise)."
		}
		if kp.Healthz == model.KubeProxyHealthy {
			summary += " kube-proxy answers healthy there: something else removed or overrides its rules (a firewall service reloading its own ruleset), or it lost touch with the API server."
		}
		s.add(model.Finding{
			ID: ServicePathFailing, Severity: Error, Title: "Services fail through " + n,
			Summary: summary, Nodes: []string{n}, Evidence: ev,
			Remedy: &model.Remedy{Summary: "Compare " + n + "'s Service rules with a working node's, and restart kube-proxy there to rewrite them.",
				Commands: []string{"nft list table ip kube-proxy | grep -c 'ip daddr'   # on " + n + " and on a working node (iptables mode: iptables-save -t nat | grep -c KUBE-SVC)", pods}},
		}, nil)
	}
}

// DirectWorks: what was measured of a direct Pod pair came through: the
// echoes, a full-sized packet, the handshakes and the upload. A path that
// fails directly fails through a Service too, and is the Pod network's
// finding, not kube-proxy's.
func DirectWorks(p model.Pair) bool {
	return p.Known() && p.Reachable && p.FullSizeLost == 0 && !p.Stalled &&
		(p.TCPConnectTried == 0 || p.TCPConnectMs != nil) && (p.PathMTU == 0 || p.IfaceMTU == 0 || p.PathMTU >= p.IfaceMTU)
}

// kubeProxyDown: n's kube-proxy does not answer its health port, or says
// it is unhealthy.
func (s *serviceJudge) kubeProxyDown(n string) bool {
	f := s.ev.Facts[n]
	return f != nil && (f.KubeProxy.Healthz == model.KubeProxyNotListening || f.KubeProxy.Healthz == model.KubeProxyUnhealthy)
}

// checkLines are the evidence lines of Service checks.
func checkLines(ps []model.Pair) []string {
	var ev []string
	for _, p := range ps {
		direct := "direct to the same Pod: answered"
		if p.Layer == model.LayerNodePort {
			direct = "host to host: answered"
		}
		line := fmt.Sprintf("%s → %s via %s: %s; %s", p.From, p.To, orWord(p.Service, "its Service"), ServiceFailure(p), direct)
		if p.Retried != "" {
			line += " (" + p.Retried + ")"
		}
		ev = append(ev, line)
	}
	return ev
}

// udpOnly: every check's UDP echoes came back, and TCP did not get through.
func udpOnly(ps []model.Pair) bool {
	for _, p := range ps {
		if !p.Reachable {
			return false
		}
	}
	return true
}

// healthWords says what kube-proxy's /healthz answered.
func healthWords(kp model.KubeProxy) string {
	switch kp.Healthz {
	case model.KubeProxyHealthy:
		return "healthy"
	case model.KubeProxyNotListening:
		return "nothing listens (" + kp.HealthzDetail + ")"
	case model.KubeProxyUnhealthy:
		return "unhealthy (" + kp.HealthzDetail + ")"
	}
	return "no answer (" + orWord(kp.HealthzDetail, "not asked") + ")"
}

func orWord(s, none string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return none
}
