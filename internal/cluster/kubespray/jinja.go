package kubespray

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// refRE matches the two template shapes Kubespray's defaults use for the
// variables podpath reads: a plain reference, `{{ kube_pods_subnet }}`
// (calico_pool_cidr), and a reference with a literal fallback,
// `{{ enable_dual_stack_networks | default(false) }}` (ipv6_stack). Anything
// else is Jinja that Load keeps as text rather than half-evaluate.
var refRE = regexp.MustCompile(`^\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default\(\s*([^()]*?)\s*\)\s*)?-?\}\}$`)

// resolve replaces each cluster-wide variable whose value is one of those
// shapes with the value it refers to, the way Ansible would render it: lazily,
// so a default that refers to kube_pods_subnet follows the inventory's
// kube_pods_subnet, not Kubespray's.
func (l *loader) resolve() {
	raw := l.inv.Vars
	resolved := make(map[string]any, len(raw))
	for _, name := range sortedKeys(raw) { // sorted: warnings in a stable order
		v, via, ok := follow(raw, name, map[string]bool{}, l.loopWarning)
		resolved[name] = v
		if ok && via != "" {
			if src := l.inv.Source[via]; src != "" && src != l.inv.Source[name] {
				l.inv.Source[name] += " (= " + via + ", " + src + ")"
			}
		}
	}
	l.inv.Vars = resolved
}

func (l *loader) loopWarning(name, text string) {
	l.inv.Warnings = append(l.inv.Warnings, locate(l.where(name), 0, name+" refers to itself through "+quote(text),
		"Ansible stops with a recursive loop: give it a value"))
}

// follow follows name's references in raw to a final value. via is the
// variable the value came from when it was a reference; ok is false for a
// loop, which Ansible would refuse as a recursive template: the text stays,
// and onLoop (if any) hears of it.
func follow(raw map[string]any, name string, visiting map[string]bool, onLoop func(name, text string)) (v any, via string, ok bool) {
	v = raw[name]
	s, isStr := v.(string)
	if !isStr {
		return v, "", true
	}
	m := refRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return v, "", true
	}
	if visiting[name] {
		if onLoop != nil {
			onLoop(name, s)
		}
		return v, "", false
	}
	visiting[name] = true
	defer delete(visiting, name)
	target, fallback := m[1], m[2]
	if _, known := raw[target]; known {
		rv, rvia, ok := follow(raw, target, visiting, onLoop)
		if !ok {
			return v, "", false
		}
		if rvia == "" {
			rvia = target
		}
		return rv, rvia, true
	}
	if fallback != "" {
		if lit, ok := jinjaLiteral(fallback); ok {
			return lit, "", true
		}
	}
	return v, "", true
}

// jinjaLiteral reads a Jinja literal: true/false (any case, as Jinja), none,
// a number or a quoted string.
func jinjaLiteral(s string) (any, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	case "none":
		return nil, true
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, true
	}
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] && !strings.ContainsRune(s[1:len(s)-1], rune(s[0])) {
		return s[1 : len(s)-1], true
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
