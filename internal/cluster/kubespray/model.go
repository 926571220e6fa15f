package kubespray

import (
	"fmt"
	"sort"
)

// source is a hosts file parsed into groups and hosts, before Kubespray's
// dynamic groups and the group_vars/host_vars directories are applied. The
// INI and the YAML parser both build one.
type source struct {
	file     string // path for messages
	groups   map[string]*group
	hosts    []*hostDef // in file order
	byName   map[string]*hostDef
	warnings []string
}

type group struct {
	name     string
	line     int      // where it was first seen
	parents  []string // groups this one is a child of ("all" is implicit)
	children []string
	vars     []varDef // set in the hosts file, in order
}

// varDef is one variable assignment and where it was written.
type varDef struct {
	name  string
	value any
	line  int
}

type hostDef struct {
	name   string
	line   int      // first mention
	groups []string // groups it is listed in directly
	vars   []varDef // inline vars, in order; later ones win
}

func newSource(file string) *source {
	s := &source{file: file, groups: map[string]*group{}, byName: map[string]*hostDef{}}
	s.group("all", 0)
	s.group("ungrouped", 0)
	return s
}

func (s *source) warn(line int, msg, hint string) {
	s.warnings = append(s.warnings, locate(s.file, line, msg, hint))
}

// group returns the named group, creating it on first sight.
func (s *source) group(name string, line int) *group {
	g := s.groups[name]
	if g == nil {
		g = &group{name: name, line: line}
		s.groups[name] = g
	}
	return g
}

// maxHosts bounds an inventory: Kubespray clusters are thousands of nodes at
// most, and a host range like node[0:99999999] is a typo, not a cluster.
const maxHosts = 10000

// addHost lists a host in a group (a host may be listed in several).
func (s *source) addHost(name string, line int, groupName string) (*hostDef, error) {
	h := s.byName[name]
	if h == nil {
		if len(s.hosts) >= maxHosts {
			return nil, &Error{File: s.file, Line: line, Msg: fmt.Sprintf("more than %d hosts", maxHosts),
				Hint: "check the host ranges ([a:b]) in this file"}
		}
		h = &hostDef{name: name, line: line}
		s.hosts = append(s.hosts, h)
		s.byName[name] = h
	}
	for _, g := range h.groups {
		if g == groupName {
			return h, nil
		}
	}
	h.groups = append(h.groups, groupName)
	return h, nil
}

// addChild makes child a child group of parent, refusing a loop as Ansible
// does ("creates a recursive dependency loop").
func (s *source) addChild(parent, child string, line int) error {
	if child == "all" || child == parent || s.isAncestor(child, parent) {
		return &Error{File: s.file, Line: line, Msg: fmt.Sprintf("group %s as a child of %s makes a loop", quote(child), quote(parent)),
			Hint: "a group cannot contain itself, directly or through its children"}
	}
	p, c := s.group(parent, line), s.group(child, line)
	for _, x := range p.children {
		if x == child {
			return nil
		}
	}
	p.children = append(p.children, child)
	c.parents = append(c.parents, parent)
	return nil
}

// isAncestor reports whether a is name or above it.
func (s *source) isAncestor(a, name string) bool {
	seen := map[string]bool{}
	var up func(n string) bool
	up = func(n string) bool {
		if n == a {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		g := s.groups[n]
		if g == nil {
			return false
		}
		for _, p := range g.parents {
			if up(p) {
				return true
			}
		}
		return false
	}
	return up(name)
}

// withAncestors adds to set every group above the named ones.
func (s *source) withAncestors(set map[string]bool, names ...string) {
	for _, n := range names {
		if set[n] {
			continue
		}
		set[n] = true
		if g := s.groups[n]; g != nil {
			s.withAncestors(set, g.parents...)
		}
	}
}

// depths gives Ansible's group depth: children of all are 1, their children
// 2, and a group reachable along several paths takes the longest. Variables of
// deeper groups win.
func (s *source) depths() map[string]int {
	memo := map[string]int{"all": 0}
	var d func(n string) int
	d = func(n string) int {
		if v, ok := memo[n]; ok {
			return v
		}
		memo[n] = 0 // loops are refused in addChild; this only guards
		best := 1
		if g := s.groups[n]; g != nil {
			for _, p := range g.parents {
				best = max(best, d(p)+1)
			}
		}
		memo[n] = best
		return best
	}
	for n := range s.groups {
		d(n)
	}
	return memo
}

// sortGroups orders groups as Ansible applies their variables: by depth, then name.
func (s *source) sortGroups(names []string) {
	depth := s.depths()
	sort.Slice(names, func(i, j int) bool {
		if depth[names[i]] != depth[names[j]] {
			return depth[names[i]] < depth[names[j]]
		}
		return names[i] < names[j]
	})
}

// maxGroups bounds the groups of one inventory, for the same reason as maxHosts.
const maxGroups = 10000

func (s *source) tooManyGroups(line int) error {
	if len(s.groups) <= maxGroups {
		return nil
	}
	return &Error{File: s.file, Line: line, Msg: fmt.Sprintf("more than %d groups", maxGroups),
		Hint: "this does not look like a Kubespray inventory"}
}
