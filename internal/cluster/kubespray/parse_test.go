package kubespray

import (
	"reflect"
	"strings"
	"testing"
)

// The INI value rules are Python's: these cases follow ast.literal_eval.
func TestINIValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"1450", 1450},
		{"-5", -5},
		{"1_000", 1000},
		{"0x10", 16},
		{"1.5", 1.5},
		{"1450 # the MTU", 1450},
		{`"1450"`, "1450"},
		{`'a' "b"`, "ab"},
		{`'it\'s'`, "it's"},
		{`r'\d'`, `\d`},
		{"True", true},
		{"False", false},
		{"None", nil},
		{"true", "true"},
		{"0644", "0644"}, // Python 3 refuses leading zeros
		{"10.3.0.1", "10.3.0.1"},
		{"bird # comment", "bird # comment"},
		{"[1, 'a']", []any{1, "a"}},
		{"(1,)", []any{1}},
		{"(1)", 1},
		{"1, 2", []any{1, 2}},
		{"{'a': 1}", map[string]any{"a": 1}},
		{"{1, 2}", []any{1, 2}},
		{"{1 2}", "{1 2}"},
		{"[1, 2", "[1, 2"},
		{"1j", "1j"},
		{"--1", "--1"},
		{"", ""},
		{"1,\x00", "1,\x00"},
		{strings.Repeat("[", 500), strings.Repeat("[", 500)},
	}
	for _, tt := range tests {
		if got := iniValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("iniValue(%q) = %#v; want %#v", tt.in, got, tt.want)
		}
	}
}

func TestShlexSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"node1 ansible_host=95.54.0.12  # ip=10.3.0.1", []string{"node1", "ansible_host=95.54.0.12"}},
		{`node1 a="x y" b='c d'`, []string{"node1", "a=x y", "b=c d"}},
		{`node1 a=b#c`, []string{"node1", "a=b"}},
		{`node1 a="b#c"`, []string{"node1", "a=b#c"}},
		{`node1 a=\#`, []string{"node1", "a=#"}},
		{`a "x\"y" "x\ny"`, []string{"a", `x"y`, `x\ny`}},
		{`a ''`, []string{"a", ""}},
	}
	for _, tt := range tests {
		got, err := shlexSplit(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shlexSplit(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`a "b`, `a b\`, `a 'b`} {
		if _, err := shlexSplit(bad); err == nil {
			t.Errorf("shlexSplit(%q) succeeded; want an error", bad)
		}
	}
}

func TestHostPattern(t *testing.T) {
	tests := []struct {
		in    string
		names []string
		port  int
	}{
		{"node1", []string{"node1"}, 0},
		{"node1:2222", []string{"node1"}, 2222},
		{"10.0.0.1:22", []string{"10.0.0.1"}, 22},
		{"fd00::1", []string{"fd00::1"}, 0},
		{"[fd00::1]:22", []string{"fd00::1"}, 22},
		{"node[1:3]", []string{"node1", "node2", "node3"}, 0},
		{"node[01:10:4]", []string{"node01", "node05", "node09"}, 0},
		{"rack-[a:c]", []string{"rack-a", "rack-b", "rack-c"}, 0},
		{"n[1:2]-[a:b]:22", []string{"n1-a", "n1-b", "n2-a", "n2-b"}, 22},
		{"node[:1]", []string{"node0", "node1"}, 0},
		{"node[0:9223372036854775807:9223372036854775807]", []string{"node0", "node9223372036854775807"}, 0},
	}
	for _, tt := range tests {
		names, port, err := hostPattern(tt.in)
		if err != nil || !reflect.DeepEqual(names, tt.names) || port != tt.port {
			t.Errorf("hostPattern(%q) = %q, %d, %v; want %q, %d", tt.in, names, port, err, tt.names, tt.port)
		}
	}
	for _, bad := range []string{"node[1:]", "node[1]", "node[01:100]", "node[c:a]", "node[1:3:0]", "node[0:100000]",
		"node[1:3", "node:", "node:99999", "", strings.Repeat("x", 2000), strings.Repeat("[0:1]", 40)} {
		if names, _, err := hostPattern(bad); err == nil {
			t.Errorf("hostPattern(%q) = %d names; want an error", bad, len(names))
		}
	}
}
