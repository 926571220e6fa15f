package kubespray

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Ansible's own patterns (plugins/inventory/ini.py): a section is [name] or
// [name:type] with an optional comment; a [x:children] line is one group name.
var (
	sectionRE   = regexp.MustCompile(`^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`)
	groupNameRE = regexp.MustCompile(`^([^:\]\s]+)\s*(?:#.*)?$`)
	// commentInValue finds a comment Ansible keeps inside a [x:vars] value.
	commentInValue = regexp.MustCompile(`\s#`)
)

// childRef is a `[parent:children]` line, checked once every group is known:
// Ansible lets a child group be defined further down the file.
type childRef struct {
	parent, child string
	line          int
}

// parseINI reads an Ansible INI inventory (Kubespray's inventory.ini).
func parseINI(file string, data []byte) (*source, error) {
	s := newSource(file)
	defined := map[string]bool{"all": true, "ungrouped": true}
	varsAt := map[string]int{} // first [g:vars] line per group
	var children []childRef
	groupName, state := "ungrouped", "hosts"
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		if !utf8.ValidString(text) {
			return nil, &Error{File: file, Line: line, Msg: "not UTF-8 text", Hint: "save the file as UTF-8"}
		}
		if m := sectionRE.FindStringSubmatch(text); m != nil {
			groupName, state = m[1], m[2]
			switch state {
			case "", "hosts", "children":
				if state == "" {
					state = "hosts"
				}
				defined[groupName] = true
			case "vars":
				if _, ok := varsAt[groupName]; !ok {
					varsAt[groupName] = line
				}
			default:
				return nil, &Error{File: file, Line: line, Msg: fmt.Sprintf("section %s has the unknown type %s", quote(text), quote(state)),
					Hint: "use [group], [group:children] or [group:vars]"}
			}
			s.group(groupName, line)
			if err := s.tooManyGroups(line); err != nil {
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
			return nil, &Error{File: file, Line: line, Msg: fmt.Sprintf("%s is not a valid section header", quote(text)),
				Hint: "write [group], [group:children] or [group:vars] with no spaces inside the brackets"}
		}
		var err error
		switch state {
		case "hosts":
			err = s.iniHost(text, line, groupName)
		case "vars":
			err = s.iniVar(text, line, groupName)
		case "children":
			m := groupNameRE.FindStringSubmatch(text)
			if m == nil {
				return nil, &Error{File: file, Line: line, Msg: fmt.Sprintf("%s in [%s:children] is not a group name", quote(text), groupName),
					Hint: "list one group per line; hosts go in [" + groupName + "]"}
			}
			children = append(children, childRef{groupName, m[1], line})
		}
		if err != nil {
			return nil, err
		}
	}
	if err := s.iniGroupsDefined(defined, varsAt, children); err != nil {
		return nil, err
	}
	for _, c := range children {
		if err := s.addChild(c.parent, c.child, c.line); err != nil {
			return nil, err
		}
	}
	if err := s.checkLoops(); err != nil {
		return nil, err
	}
	return s, nil
}

// iniGroupsDefined reports the first group that a [x:vars] section or a
// [x:children] line names but no [x] or [x:children] section defines, as
// Ansible refuses such an inventory.
func (s *source) iniGroupsDefined(defined map[string]bool, varsAt map[string]int, children []childRef) error {
	var errs []*Error
	for g, line := range varsAt {
		if !defined[g] {
			errs = append(errs, &Error{File: s.file, Line: line, Msg: fmt.Sprintf("[%s:vars] is for a group that is not defined", g),
				Hint: fmt.Sprintf("add a [%s] section with its hosts, or fix the group name", g)})
		}
	}
	for _, c := range children {
		if !defined[c.child] {
			errs = append(errs, &Error{File: s.file, Line: c.line, Msg: fmt.Sprintf("[%s:children] names the group %s, which is not defined", c.parent, quote(c.child)),
				Hint: fmt.Sprintf("add a [%s] section with its hosts, or fix the group name", c.child)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return errs[0]
}

// iniHost reads `name [key=value ...]`, the host entry of a group section.
func (s *source) iniHost(text string, line int, groupName string) error {
	tokens, err := shlexSplit(text)
	if err != nil {
		return &Error{File: s.file, Line: line, Msg: "cannot split the host line: " + err.Error(), Hint: "close the quote or escape the character"}
	}
	if len(tokens) == 0 {
		return &Error{File: s.file, Line: line, Msg: "empty host entry", Hint: "write the host name first"}
	}
	if tokens[0] == "---" || strings.HasSuffix(tokens[0], ":") && len(tokens) == 1 {
		return &Error{File: s.file, Line: line, Msg: fmt.Sprintf("%s looks like YAML, not an INI host line", quote(text)),
			Hint: "a YAML inventory must be named hosts.yaml or hosts.yml"}
	}
	names, port, err := hostPattern(tokens[0])
	if err != nil {
		return &Error{File: s.file, Line: line, Msg: err.Error(), Hint: "write name, name:port or a range like node[1:3]"}
	}
	var vars []varDef
	if port != 0 {
		vars = append(vars, varDef{"ansible_port", port, line})
	}
	for _, t := range tokens[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return &Error{File: s.file, Line: line, Msg: fmt.Sprintf("%s after the host name is not key=value", quote(t)),
				Hint: "host variables are key=value; quote a value that has spaces"}
		}
		vars = append(vars, varDef{k, iniValue(v), line})
	}
	for _, n := range names {
		h, err := s.addHost(n, line, groupName)
		if err != nil {
			return err
		}
		h.vars = append(h.vars, vars...)
	}
	return nil
}

// iniVar reads `key=value` in a [group:vars] section. Unlike a host line the
// value runs to the end of the line: Ansible neither splits it nor strips a
// comment, so a comment after a word ends up in the value.
func (s *source) iniVar(text string, line int, groupName string) error {
	k, v, ok := strings.Cut(text, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" {
		return &Error{File: s.file, Line: line, Msg: fmt.Sprintf("%s in [%s:vars] is not key=value", quote(text), groupName),
			Hint: "write one key=value per line; hosts go in [" + groupName + "]"}
	}
	val := iniValue(v)
	if str, isStr := val.(string); isStr && commentInValue.MatchString(str) {
		s.warn(line, fmt.Sprintf("%s is %s: Ansible keeps comments in [%s:vars] values", k, quote(str), groupName),
			"put the comment on its own line")
	}
	g := s.group(groupName, line)
	g.vars = append(g.vars, varDef{k, val, line})
	return nil
}
