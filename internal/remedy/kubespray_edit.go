package remedy

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The inventory variables Kubespray takes the Calico MTU from. calico_veth_mtu counts only when
// calico_mtu is set too; then Pods get calico_mtu and the tunnels calico_veth_mtu.
const (
	mtuKey  = "calico_mtu"
	vethKey = "calico_veth_mtu"
)

// appendedComment goes above a calico_mtu line that podpath adds to a file that never mentioned it.
const appendedComment = "# Set by podpath: Kubespray re-applies this file on every run and reverts an MTU changed only with kubectl."

// commentedMTU is the sample's commented-out default, "# calico_mtu: 1500".
var commentedMTU = regexp.MustCompile(`^[ \t]*#[ \t]*calico_mtu[ \t]*:`)

// setKubesprayMTU returns src with calico_mtu (and calico_veth_mtu, if set) set to mtu.
//
// yaml.v3 only finds the keys and their positions; the edit is made on the original bytes. A round
// trip through yaml.v3 would reflow comments, blank lines, quoting and indentation of a file that
// is mostly comments people read and diff against Kubespray's sample. Lines keep their endings, so
// CRLF and a missing final newline survive.
func setKubesprayMTU(src []byte, mtu int) ([]byte, []string, error) {
	keys, err := topLevelKeys(src, mtuKey, vethKey)
	if err != nil {
		return nil, nil, err
	}
	lines := splitLines(string(src))
	want := strconv.Itoa(mtu)
	var warnings []string
	mtuVal, vethVal := keys[mtuKey], keys[vethKey]
	if vethVal != nil {
		// Both must agree, or Pods and tunnels run with different MTUs.
		if err := setScalar(lines, vethKey, vethVal, want); err != nil {
			return nil, nil, err
		}
		if mtuVal == nil {
			warnings = append(warnings, fmt.Sprintf("calico_veth_mtu (%s) alone was ignored by Kubespray: it is "+
				"used only when calico_mtu is set too, so the cluster ran on Calico's auto-detected MTU; "+
				"calico_mtu is now set to %d, and calico_veth_mtu to the same value", vethVal.Value, mtu))
		}
	}
	switch i := commentedDefault(lines); {
	case mtuVal != nil:
		err = setScalar(lines, mtuKey, mtuVal, want)
	case i >= 0:
		lines[i] = mtuKey + ": " + want + lineEnding(lines[i])
	default:
		lines = appendMTU(lines, want)
	}
	if err != nil {
		return nil, nil, err
	}
	out := []byte(strings.Join(lines, ""))
	if err := checkEdit(src, out, mtu, vethVal != nil); err != nil {
		return nil, nil, err
	}
	return out, warnings, nil
}

// topLevelKeys parses src and returns the value nodes of the named top-level keys that are set.
// Each must be a plain scalar (a number, or empty), the only kind edited in place safely.
func topLevelKeys(src []byte, names ...string) (map[string]*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err // yaml.v3 names the line
	}
	found := map[string]*yaml.Node{}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return found, nil // empty, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file is not a mapping of variables", root.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		for _, name := range names {
			if key.Value != name {
				continue
			}
			if line, dup := seen[name]; dup {
				return nil, fmt.Errorf("lines %d and %d both set %s (Ansible uses the last): remove one", line, key.Line, name)
			}
			seen[name] = key.Line
			if val.Kind != yaml.ScalarNode || val.Style != 0 {
				return nil, fmt.Errorf("line %d: %s is not a plain scalar like 1400 (quoted, tagged, a block, "+
					"an alias or a collection); Kubespray writes the MTU only for a plain number: fix it by hand", key.Line, name)
			}
			found[name] = val
		}
	}
	return found, nil
}

// setScalar replaces the plain scalar val in its line, keeping what surrounds it (indentation,
// a trailing comment, the line ending).
func setScalar(lines []string, name string, val *yaml.Node, want string) error {
	i := val.Line - 1
	line := lines[i]
	at := byteOffset(line, val.Column, i == 0)
	if !strings.HasPrefix(line[at:], val.Value) {
		return fmt.Errorf("line %d: %s spans several lines: fix it by hand", val.Line, name)
	}
	if val.Value == "" && at > 0 && line[at-1] == ':' {
		want = " " + want // "calico_mtu:" with no value: yaml.v3 points just past the colon
	}
	lines[i] = line[:at] + want + line[at+len(val.Value):]
	return nil
}

// byteOffset turns yaml.v3's 1-based column, which counts characters and skips a byte order mark,
// into a byte offset in line.
func byteOffset(line string, column int, first bool) int {
	at := 0
	if first {
		at = len(line) - len(strings.TrimPrefix(line, "\uFEFF"))
	}
	for n := 1; n < column && at < len(line); n++ {
		_, size := utf8.DecodeRuneInString(line[at:])
		at += size
	}
	return at
}

// commentedDefault returns the index of the first "# calico_mtu: ..." line, or -1.
func commentedDefault(lines []string) int {
	for i, l := range lines {
		if commentedMTU.MatchString(l) {
			return i
		}
	}
	return -1
}

// appendMTU adds calico_mtu at the end, after a blank line and a comment saying who set it and why.
func appendMTU(lines []string, want string) []string {
	eol := "\n"
	if len(lines) > 0 && strings.HasSuffix(lines[0], "\r\n") {
		eol = "\r\n"
	}
	n := len(lines)
	noFinalEOL := n > 0 && lineEnding(lines[n-1]) == ""
	if noFinalEOL {
		lines[n-1] += eol
	}
	if n > 0 && strings.TrimSpace(lines[n-1]) != "" {
		lines = append(lines, eol)
	}
	lines = append(lines, appendedComment+eol, mtuKey+": "+want+eol)
	if noFinalEOL {
		last := len(lines) - 1
		lines[last] = strings.TrimSuffix(lines[last], eol)
	}
	return lines
}

// checkEdit reads both versions as Ansible would: the MTU variables must now be mtu and every
// other variable unchanged. An edit broken by an unusual layout (a flow mapping, a comment line
// inside a block scalar) becomes an error instead of a broken inventory.
func checkEdit(src, out []byte, mtu int, veth bool) error {
	before, after := map[string]any{}, map[string]any{}
	if err := yaml.Unmarshal(src, &before); err != nil {
		return err
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		return fmt.Errorf("the edited file would not parse (%w): set %s: %d by hand", err, mtuKey, mtu)
	}
	for _, k := range []string{mtuKey, vethKey} {
		if (k == mtuKey || veth) && after[k] != any(mtu) {
			return fmt.Errorf("the edit did not leave %s at %d (the file's layout is unusual): set it by hand", k, mtu)
		}
		delete(before, k)
		delete(after, k)
	}
	if !reflect.DeepEqual(before, after) {
		return fmt.Errorf("the edit would change other variables (the file's layout is unusual): set %s: %d by hand", mtuKey, mtu)
	}
	return nil
}

// splitLines splits s into lines that keep their endings.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// lineEnding is line's "\r\n", "\n", or "" for a last line without one.
func lineEnding(line string) string {
	switch {
	case strings.HasSuffix(line, "\r\n"):
		return "\r\n"
	case strings.HasSuffix(line, "\n"):
		return "\n"
	}
	return ""
}
