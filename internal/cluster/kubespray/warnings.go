package kubespray

import (
	"fmt"
	"sort"
	"strings"
)

// groupWarnings flags groups Kubespray does not use: the old names it still
// maps (deprecated), and unknown groups that hold hosts, which are valid
// Ansible but often a typo (kube_nodes for kube_node).
func (l *loader) groupWarnings() {
	direct := map[string]bool{}
	for _, h := range l.src.hosts {
		for _, g := range h.groups {
			direct[g] = true
		}
	}
	groups := make([]*group, 0, len(l.src.groups))
	for _, g := range l.src.groups {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].line != groups[j].line {
			return groups[i].line < groups[j].line
		}
		return groups[i].name < groups[j].name
	})
	for _, g := range groups {
		if now, ok := legacyGroups[g.name]; ok {
			l.inv.Warnings = append(l.inv.Warnings, locate(l.src.file, g.line,
				fmt.Sprintf("group %s is deprecated: use %s", g.name, now), "Kubespray still maps it, for now"))
			continue
		}
		if kubesprayGroups[g.name] || !direct[g.name] {
			continue
		}
		hint := "valid Ansible, but no Kubespray role runs on it by this name"
		if guess := strings.ReplaceAll(g.name, "-", "_"); kubesprayGroups[guess] {
			hint = "did you mean " + guess + "? Kubespray does not map this name"
		}
		l.inv.Warnings = append(l.inv.Warnings, locate(l.src.file, g.line, fmt.Sprintf("group %s is not one Kubespray knows", quote(g.name)), hint))
	}
}

// varWarnings notes variable combinations Kubespray handles surprisingly.
func (l *loader) varWarnings() {
	_, mtu := l.inv.Vars["calico_mtu"]
	if veth, ok := l.inv.Vars["calico_veth_mtu"]; ok && veth != nil && !mtu {
		l.inv.Warnings = append(l.inv.Warnings, locate(l.where("calico_veth_mtu"), 0,
			"calico_veth_mtu is set but calico_mtu is not: Kubespray's calico-node template ignores calico_veth_mtu then",
			"set calico_mtu too"))
	}
	if _, ok := l.inv.Vars["enable_dual_stack_networks"]; ok {
		l.inv.Warnings = append(l.inv.Warnings, locate(l.where("enable_dual_stack_networks"), 0,
			"enable_dual_stack_networks is deprecated", "use ipv4_stack and ipv6_stack"))
	}
}

// checkResolved checks typed variables whose value Load did not see written:
// Kubespray's defaults and values reached through a {{ reference }}.
func (l *loader) checkResolved() error {
	names := make([]string, 0, len(cidrVars)+len(intVars))
	for n := range cidrVars {
		names = append(names, n)
	}
	for n := range intVars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v, ok := l.inv.Vars[n]
		src := l.inv.Source[n]
		if !ok || !(src == "default" || strings.Contains(src, " (= ")) {
			continue
		}
		if err := l.checkVar(l.where(n), varDef{n, v, 0}); err != nil {
			return err
		}
	}
	return nil
}
