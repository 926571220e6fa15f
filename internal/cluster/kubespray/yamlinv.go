package kubespray

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// parseYAMLInventory reads an Ansible YAML inventory (hosts.yaml):
//
//	all:
//	  hosts: {node1: {ansible_host: 10.0.0.1, ip: 10.0.0.1}}
//	  children:
//	    kube_control_plane: {hosts: {node1: }}
//	  vars: {calico_mtu: 1450}
func parseYAMLInventory(file string, data []byte) (*source, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	s := newSource(file)
	r := newYAMLReader(file, s.warn)
	top, err := r.deref(root)
	if err != nil {
		return nil, err
	}
	if isNull(top) { // an empty file: no hosts, as Ansible reads it
		return s, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: top.Line, Msg: fmt.Sprintf("the top level is %s, not a mapping of groups", kind(top)),
			Hint: "start with all: and put hosts:, children: and vars: under it"}
	}
	groups, err := r.entries(top)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := s.yamlGroup(r, g, ""); err != nil {
			return nil, err
		}
	}
	if err := s.checkLoops(); err != nil {
		return nil, err
	}
	return s, nil
}

// yamlGroup reads one group: hosts, children (groups, recursively) and vars.
func (s *source) yamlGroup(r *yamlReader, e entry, parent string) error {
	s.group(e.key, e.line)
	if err := s.tooManyGroups(e.line); err != nil {
		return err
	}
	if parent != "" {
		if err := s.addChild(parent, e.key, e.line); err != nil {
			return err
		}
	}
	n, err := r.deref(e.val)
	if err != nil || isNull(n) {
		return err
	}
	if n.Kind != yaml.MappingNode {
		return &Error{File: s.file, Line: n.Line, Msg: fmt.Sprintf("group %s is %s, not a mapping", quote(e.key), kind(n)),
			Hint: "give the group hosts:, children: or vars: as mappings"}
	}
	// An alias back into a group being read (a: &x {children: {b: {children: {a: *x}}}})
	// would recurse without end; it is a loop whichever names it uses.
	if r.active[n] {
		return loopError(s.file, parent, e.key, e.line)
	}
	r.active[n] = true
	defer delete(r.active, n)
	sections, err := r.entries(n)
	if err != nil {
		return err
	}
	for _, sec := range sections {
		switch sec.key {
		case "hosts", "children", "vars":
			if err := s.yamlSection(r, e.key, sec); err != nil {
				return err
			}
		default:
			s.warn(sec.line, fmt.Sprintf("group %s has the key %s, which Ansible skips", quote(e.key), quote(sec.key)),
				"only hosts:, children: and vars: belong in a group; a child group goes under children:")
		}
	}
	return nil
}

// yamlSection reads the hosts:, children: or vars: of group g. Ansible takes a
// bare name as a one-entry mapping (`hosts: node1`), and nothing as empty.
func (s *source) yamlSection(r *yamlReader, g string, sec entry) error {
	n, err := r.deref(sec.val)
	if err != nil || isNull(n) {
		return err
	}
	var items []entry
	switch {
	case n.Kind == yaml.ScalarNode && sec.key != "vars":
		items = []entry{{n.Value, n.Line, nil}}
	case n.Kind == yaml.MappingNode:
		if items, err = r.entries(n); err != nil {
			return err
		}
	default:
		hint := "write each entry as `name:` on its own line, with its variables indented below"
		if sec.key == "vars" {
			hint = "write the variables as name: value lines"
		}
		return &Error{File: s.file, Line: n.Line, Msg: fmt.Sprintf("%s of group %s is %s, not a mapping", sec.key, quote(g), kind(n)), Hint: hint}
	}
	for _, it := range items {
		var err error
		switch sec.key {
		case "hosts":
			err = s.yamlHost(r, g, it)
		case "children":
			err = s.yamlGroup(r, it, g)
		case "vars":
			var v any
			if v, err = r.value(it.val); err == nil {
				grp := s.group(g, it.line)
				grp.vars = append(grp.vars, varDef{it.key, v, it.line})
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// yamlHost reads `name:` or `name: {var: value}` under a group's hosts:.
func (s *source) yamlHost(r *yamlReader, g string, it entry) error {
	names, port, err := hostPattern(it.key)
	if err != nil {
		return &Error{File: s.file, Line: it.line, Msg: err.Error(), Hint: "write name, name:port or a range like node[1:3]"}
	}
	var vars []varDef
	if port != 0 {
		vars = append(vars, varDef{"ansible_port", port, it.line})
	}
	if it.val != nil {
		n, err := r.deref(it.val)
		if err != nil {
			return err
		}
		if !isNull(n) {
			if n.Kind != yaml.MappingNode {
				return &Error{File: s.file, Line: n.Line, Msg: fmt.Sprintf("host %s is %s, not a mapping of its variables", quote(it.key), kind(n)),
					Hint: fmt.Sprintf("write %s: {ansible_host: <address>}", it.key)}
			}
			es, err := r.entries(n)
			if err != nil {
				return err
			}
			for _, e := range es {
				v, err := r.value(e.val)
				if err != nil {
					return err
				}
				vars = append(vars, varDef{e.key, v, e.line})
			}
		}
	}
	for _, name := range names {
		h, err := s.addHost(name, it.line, g)
		if err != nil {
			return err
		}
		h.vars = append(h.vars, vars...)
	}
	return nil
}
