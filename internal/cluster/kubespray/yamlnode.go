package kubespray

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseYAML returns the root node of the one YAML document in data, or nil for
// an empty file. Ansible's loader (PyYAML get_single_data) refuses a second
// document, so it is an error here too rather than silently ignored.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(file, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document",
			Hint: "Ansible reads one document per file: remove the extra ---"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(file, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into a located one. yaml.v3 leaves the line
// out when the problem is on line 1 (it treats mark 0 as unknown), so such an
// error is reproduced with a blank line prepended and its line taken back by one.
func yamlError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		var n yaml.Node
		err2 := yaml.NewDecoder(bytes.NewReader(append([]byte("\n"), data...))).Decode(&n)
		if m := yamlLineRE.FindStringSubmatch(fmt.Sprint(err2)); m != nil && m[2] == msg {
			line, _ = strconv.Atoi(m[1])
			line--
		}
	}
	return &Error{File: file, Line: line, Msg: "bad YAML: " + msg, Hint: "fix the YAML syntax"}
}

// entry is one key of a YAML mapping with the line it is written on.
type entry struct {
	key  string
	line int
	val  *yaml.Node
}

// yamlReader converts YAML nodes to plain Go values the way Ansible's YAML 1.1
// loader sees them. It bounds alias expansion: a few lines of anchors can
// otherwise describe billions of nodes.
type yamlReader struct {
	file   string
	budget int // nodes left to visit
	active map[*yaml.Node]bool
	warn   func(line int, msg, hint string)
}

const yamlNodeBudget = 1 << 20

func newYAMLReader(file string, warn func(line int, msg, hint string)) *yamlReader {
	return &yamlReader{file: file, budget: yamlNodeBudget, active: map[*yaml.Node]bool{}, warn: warn}
}

func (r *yamlReader) errorf(n *yaml.Node, hint, format string, args ...any) error {
	return &Error{File: r.file, Line: n.Line, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// deref follows aliases, refusing one that refers to itself. A nil node (a
// name given as a bare scalar, `children: kube_node`, has no value node)
// stays nil, which isNull reads as null.
func (r *yamlReader) deref(n *yaml.Node) (*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil || r.active[n.Alias] {
			return nil, r.errorf(n, "remove the self-reference", "alias *%s refers to itself", n.Value)
		}
		n = n.Alias
	}
	r.budget--
	if r.budget < 0 {
		return nil, r.errorf(n, "expand the aliases by hand", "aliases expand to more than %d YAML nodes", yamlNodeBudget)
	}
	return n, nil
}

// isNull reports a YAML null (`~`, `null` or nothing at all).
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return "a scalar " + quote(n.Value)
	}
	return "not a mapping"
}

// entries lists a mapping's keys in order with merge keys (<<) applied: keys
// written in the mapping win over merged ones, as in PyYAML. A key written
// twice keeps its last value, as Ansible does, with a warning.
func (r *yamlReader) entries(n *yaml.Node) ([]entry, error) {
	n, err := r.deref(n)
	if err != nil || n == nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, r.errorf(n, "merge (<<) only mappings", "%s where a mapping belongs", kind(n))
	}
	if !r.active[n] { // a caller may have marked it already (yamlGroup)
		r.active[n] = true
		defer delete(r.active, n)
	}
	var own, merged []entry
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			m, err := r.mergeEntries(v)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		kd, err := r.deref(k)
		if err != nil {
			return nil, err
		}
		if kd.Kind != yaml.ScalarNode {
			return nil, r.errorf(k, "use a plain name as the key", "a mapping key that is %s", kind(kd))
		}
		if j, dup := seen[kd.Value]; dup {
			r.warn(k.Line, fmt.Sprintf("key %s repeated (first on line %d): the last one wins", quote(kd.Value), own[j].line), "remove one")
			own[j] = entry{kd.Value, k.Line, v}
			continue
		}
		seen[kd.Value] = len(own)
		own = append(own, entry{kd.Value, k.Line, v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = len(own)
			own = append(own, e)
		}
	}
	return own, nil
}

// mergeEntries reads the value of a merge key: a mapping or a list of them,
// the earlier ones winning.
func (r *yamlReader) mergeEntries(v *yaml.Node) ([]entry, error) {
	v, err := r.deref(v)
	if err != nil {
		return nil, err
	}
	if v.Kind != yaml.SequenceNode {
		return r.entries(v)
	}
	var all []entry
	for _, m := range v.Content {
		e, err := r.entries(m)
		if err != nil {
			return nil, err
		}
		all = append(all, e...)
	}
	return all, nil
}

// value converts a node: maps, lists, and scalars as Ansible types them.
func (r *yamlReader) value(n *yaml.Node) (any, error) {
	d, err := r.deref(n)
	if err != nil || d == nil {
		return nil, err
	}
	switch d.Kind {
	case yaml.MappingNode:
		es, err := r.entries(d)
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(es))
		for _, e := range es {
			if m[e.key], err = r.value(e.val); err != nil {
				return nil, err
			}
		}
		return m, nil
	case yaml.SequenceNode:
		if !r.active[d] {
			r.active[d] = true
			defer delete(r.active, d)
		}
		l := make([]any, 0, len(d.Content))
		for _, c := range d.Content {
			v, err := r.value(c)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		return scalar(d), nil
	}
	return nil, r.errorf(d, "", "unexpected YAML node")
}

// yaml11Bools are the plain words PyYAML (YAML 1.1, what Ansible uses) reads as
// booleans but yaml.v3 (YAML 1.2) reads as strings: `calico_bpf_enabled: yes` is true.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

func scalar(n *yaml.Node) any {
	tag := n.ShortTag()
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 && tag == "!!str" {
		if b, ok := yaml11Bools[n.Value]; ok {
			return b
		}
	}
	switch tag {
	case "!!null":
		return nil
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err == nil {
			return v
		}
	}
	// Strings, timestamps, binary, and Ansible's own tags (!vault, !unsafe):
	// their text is what a template would see.
	return n.Value
}
