package kubespray

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// clusterVars builds Inventory.Vars in Ansible's order for a k8s_cluster host
// (vars/manager.py): the hosts file's all vars, then group_vars/all, then the
// hosts file's vars of each group from the shallowest to k8s_cluster, then
// group_vars/ of those groups in the same order. So group_vars/k8s_cluster
// beats both a [k8s_cluster:vars] section and group_vars/all.
func (l *loader) clusterVars() error {
	set := map[string]bool{}
	l.src.withAncestors(set, "k8s_cluster")
	delete(set, "all")
	var groups []string
	for g := range set {
		groups = append(groups, g)
	}
	l.src.sortGroups(groups)
	l.cluster = set
	l.cluster["all"] = true

	for k, v := range Defaults {
		l.inv.Vars[k] = v
		l.inv.Source[k] = "default"
	}
	if err := l.apply(l.inv.HostsFile, l.src.groups["all"].vars); err != nil {
		return err
	}
	if err := l.applyGroupVars("all"); err != nil {
		return err
	}
	for _, g := range groups {
		if grp := l.src.groups[g]; grp != nil {
			if err := l.apply(l.inv.HostsFile, grp.vars); err != nil {
				return err
			}
		}
	}
	for _, g := range groups {
		if err := l.applyGroupVars(g); err != nil {
			return err
		}
	}
	return nil
}

// apply checks and sets variables from rel (relative to the inventory dir).
func (l *loader) apply(rel string, defs []varDef) error {
	path := filepath.Join(l.inv.Dir, rel)
	for _, d := range defs {
		if err := l.checkVar(path, d); err != nil {
			return err
		}
		l.inv.Vars[d.name] = d.value
		l.inv.Source[d.name] = fmt.Sprintf("%s:%d", rel, d.line)
	}
	return nil
}

func (l *loader) applyGroupVars(group string) error {
	if !safeName(group) {
		return nil
	}
	files, err := l.varsFiles(filepath.Join("group_vars", group))
	if err != nil {
		return err
	}
	for _, f := range files {
		defs, err := l.readVars(f)
		if err != nil {
			return err
		}
		if err := l.apply(f, defs); err != nil {
			return err
		}
	}
	return nil
}

// otherGroupVars checks the hosts file's variables of the other groups (a
// bad value there breaks Ansible as much as anywhere) and warns when one of
// them sets a variable podpath reads: its hosts do not see Inventory.Vars.
func (l *loader) otherGroupVars() error {
	names := make([]string, 0, len(l.src.groups))
	for g := range l.src.groups {
		if !l.cluster[g] {
			names = append(names, g)
		}
	}
	sort.Strings(names)
	for _, g := range names {
		for _, d := range l.src.groups[g].vars {
			if err := l.checkVar(l.src.file, d); err != nil {
				return err
			}
			_, known := Defaults[d.name]
			if known || intVars[d.name] || cidrVars[d.name] != 0 {
				l.warn(l.src.file, d.line, fmt.Sprintf("%s is set for group %s only: its hosts use this value, not the cluster-wide one", d.name, quote(g)),
					"set it in group_vars/k8s_cluster/ unless a per-group value is meant")
			}
		}
	}
	return nil
}

// hosts builds Inventory.Hosts: groups, vars (inline, then host_vars files)
// and address.
func (l *loader) hosts() error {
	for _, h := range l.src.hosts {
		host := Host{Name: h.name, Groups: l.groupsOf(h), Vars: map[string]any{}}
		at := map[string]string{} // where each var was set, for warnings
		set := func(path string, d varDef) error {
			if err := l.checkVar(path, d); err != nil {
				return err
			}
			if err := checkAddress(path, d); err != nil {
				return err
			}
			host.Vars[d.name] = d.value
			at[d.name] = fmt.Sprintf("%s:%d", path, d.line)
			return nil
		}
		for _, d := range h.vars {
			if err := set(l.src.file, d); err != nil {
				return err
			}
		}
		if safeName(h.name) {
			files, err := l.varsFiles(filepath.Join("host_vars", h.name))
			if err != nil {
				return err
			}
			for _, f := range files {
				defs, err := l.readVars(f)
				if err != nil {
					return err
				}
				for _, d := range defs {
					if err := set(filepath.Join(l.inv.Dir, f), d); err != nil {
						return err
					}
				}
			}
		}
		vars, err := l.withGroupAddresses(h, host.Vars, at)
		if err != nil {
			return err
		}
		addr, err := l.address(h, vars, at)
		if err != nil {
			return err
		}
		host.Address = addr
		l.inv.Hosts = append(l.inv.Hosts, host)
	}
	return nil
}

// withGroupAddresses adds to a host's vars the address variables its groups
// set in the hosts file (`[kube_node:vars] ansible_user=…` style), which rank
// below the host's own, deeper groups winning as in Ansible.
func (l *loader) withGroupAddresses(h *hostDef, vars map[string]any, at map[string]string) (map[string]any, error) {
	set := l.ancestry(h)
	merged := map[string]any{}
	for _, grp := range l.addressGroups() {
		if !set[grp.name] {
			continue
		}
		for _, d := range grp.vars {
			if _, own := vars[d.name]; own || d.name != "ip" && d.name != "access_ip" && d.name != "ansible_host" {
				continue
			}
			if err := checkAddress(l.src.file, d); err != nil {
				return nil, err
			}
			merged[d.name] = d.value
			at[d.name] = fmt.Sprintf("%s:%d", l.src.file, d.line)
		}
	}
	if len(merged) == 0 {
		return vars, nil
	}
	for k, v := range vars {
		merged[k] = v
	}
	return merged, nil
}

// addressGroups are the groups whose hosts-file vars set an address, in
// Ansible's order (usually none: addresses are per host).
func (l *loader) addressGroups() []*group {
	if l.addrGroups != nil {
		return *l.addrGroups
	}
	var names []string
	for name, g := range l.src.groups {
		for _, d := range g.vars {
			if d.name == "ip" || d.name == "access_ip" || d.name == "ansible_host" {
				names = append(names, name)
				break
			}
		}
	}
	l.src.sortGroups(names)
	groups := make([]*group, len(names))
	for i, n := range names {
		groups[i] = l.src.groups[n]
	}
	l.addrGroups = &groups
	return groups
}

// address picks the host's address. A templated value is not evaluated: it
// is skipped with a warning. A host with none of the three is valid Ansible
// (it connects to the name) unless the name could never resolve.
func (l *loader) address(h *hostDef, vars map[string]any, at map[string]string) (string, error) {
	found := false
	for _, name := range addressVars {
		v, ok := vars[name]
		if !ok {
			continue
		}
		found = true
		if isTemplate(v) {
			l.inv.Warnings = append(l.inv.Warnings, locate(at[name], 0, fmt.Sprintf("host %s: %s is the template %s, which podpath does not evaluate", quote(h.name), name, show(v)),
				"the address is taken from the next of ip, access_ip, ansible_host"))
			continue
		}
		if s, ok := v.(string); ok {
			return strings.TrimSpace(s), nil
		}
	}
	if !found && !isIP(h.name) && !validHostname(h.name) {
		return "", &Error{File: l.src.file, Line: h.line, Msg: fmt.Sprintf("host %s has no ip, access_ip or ansible_host, and its name is not a hostname or IP address", quote(h.name)),
			Hint: "add ansible_host=<address>"}
	}
	return "", nil
}

// groupsOf lists the host's groups: those it is listed in, their parents,
// and what Kubespray's dynamic_groups role adds at the start of every play.
func (l *loader) groupsOf(h *hostDef) []string {
	set := map[string]bool{}
	for g := range l.ancestry(h) {
		set[g] = true
	}
	for old, now := range legacyGroups {
		if set[old] {
			l.src.withAncestors(set, now)
		}
	}
	for _, g := range k8sClusterMembers {
		if set[g] {
			l.src.withAncestors(set, "k8s_cluster")
			break
		}
	}
	delete(set, "all")
	// Ansible keeps a host in ungrouped only while it is in no other group.
	if len(set) == 0 {
		set["ungrouped"] = true
	} else if len(set) > 1 {
		delete(set, "ungrouped")
	}
	groups := make([]string, 0, len(set))
	for g := range set {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	return groups
}

// ancestry is the set of groups a host is in through the hosts file: those it
// is listed in and their parents. Hosts listed in the same groups share one
// walk up the graph; read-only for callers.
func (l *loader) ancestry(h *hostDef) map[string]bool {
	key := strings.Join(h.groups, "\x00")
	if set, ok := l.ancestors[key]; ok {
		return set
	}
	set := map[string]bool{}
	l.src.withAncestors(set, h.groups...)
	if l.ancestors == nil {
		l.ancestors = map[string]map[string]bool{}
	}
	l.ancestors[key] = set
	return set
}
