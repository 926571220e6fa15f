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
	order    []string           // group names in the order first seen
	edges    map[[2]string]bool // parent → child links made
	depth    map[string]int     // Ansible's group depth, once the file is read
	hosts    []*hostDef         // in file order
	byName   map[string]*hostDef
	warnings []string
}

type group struct {
	name     string
	line     int      // where it was first seen
	parents  []string // groups this one is a child of ("all" is implicit)
	children []childEdge
	vars     []varDef // set in the hosts file, in order
}

// childEdge is a child group and the line that made it one.
type childEdge struct {
	name string
	line int
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
	s := &source{file: file, groups: map[string]*group{}, byName: map[string]*hostDef{}, edges: map[[2]string]bool{}}
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
		s.order = append(s.order, name)
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

// addChild makes child a child group of parent. Loops through other groups
// are found once the file is read (checkLoops): checking on every edge costs
// a walk up the graph each time.
func (s *source) addChild(parent, child string, line int) error {
	if child == "all" || child == parent {
		return loopError(s.file, parent, child, line)
	}
	edge := [2]string{parent, child}
	if s.edges[edge] {
		return nil
	}
	s.edges[edge] = true
	p, c := s.group(parent, line), s.group(child, line)
	p.children = append(p.children, childEdge{child, line})
	c.parents = append(c.parents, parent)
	return nil
}

func loopError(file, parent, child string, line int) error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf("group %s as a child of %s makes a loop", quote(child), quote(parent)),
		Hint: "a group cannot contain itself, directly or through its children"}
}

// checkLoops refuses a group that contains itself through its children, as
// Ansible does ("creates a recursive dependency loop"), naming the edge that
// closes the loop. One depth-first walk over the groups in the order seen.
func (s *source) checkLoops() error {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var walk func(name string) error
	walk = func(name string) error {
		state[name] = open
		for _, c := range s.groups[name].children {
			switch state[c.name] {
			case open:
				return loopError(s.file, name, c.name, c.line)
			case unseen:
				if err := walk(c.name); err != nil {
					return err
				}
			}
		}
		state[name] = done
		return nil
	}
	for _, name := range s.order {
		if state[name] == unseen {
			if err := walk(name); err != nil {
				return err
			}
		}
	}
	return nil
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
	if s.depth != nil {
		return s.depth // the groups no longer change once Load uses this
	}
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
	s.depth = memo
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
