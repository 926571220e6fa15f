package kubespray

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fixtureVars reads a Kubespray defaults file the way Load reads group_vars.
func fixtureVars(t *testing.T, name string) map[string]varDef {
	t.Helper()
	l := &loader{inv: &Inventory{Dir: fixtures, Source: map[string]string{}}}
	defs, err := l.readVars(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) == 0 || len(l.inv.Warnings) != 0 {
		t.Fatalf("%s: %d variables, warnings %q", name, len(defs), l.inv.Warnings)
	}
	m := map[string]varDef{}
	for _, d := range defs {
		m[d.name] = d
	}
	return m
}

// Every entry of Defaults is what the Kubespray fixtures say, at the line
// defaults.go notes, so a Kubespray refresh that changes one fails here.
func TestDefaultsMatchKubespray(t *testing.T) {
	files := []string{"kubespray_defaults.main.yml", "calico_defaults.main.yml"}
	vars := map[string]map[string]varDef{}
	for _, f := range files {
		vars[f] = fixtureVars(t, f)
	}
	src, err := os.ReadFile("defaults.go")
	if err != nil {
		t.Fatal(err)
	}
	noted := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*"(\w+)":.*// :(\d+)`).FindAllStringSubmatch(string(src), -1) {
		noted[m[1]], _ = strconv.Atoi(m[2])
	}
	for name, want := range Defaults {
		var in, lines []string
		lineOK := false
		for _, f := range files {
			if d, ok := vars[f][name]; ok {
				// Set in both files (typha_enabled is): equal values, so
				// the order the roles run in does not matter.
				in = append(in, f)
				if !reflect.DeepEqual(d.value, want) {
					t.Errorf("%s: %s is %#v in %s; Defaults has %#v", name, name, d.value, f, want)
				}
				lineOK = lineOK || noted[name] == d.line
				lines = append(lines, f+":"+strconv.Itoa(d.line))
			}
		}
		if len(in) > 0 && !lineOK {
			t.Errorf("%s: defaults.go notes line %d; it is at %v", name, noted[name], lines)
		}
		c, commented := commentedDefaults[name]
		switch {
		case commented && len(in) > 0:
			t.Errorf("%s: now set in %v; take the value from there", name, in)
		case commented:
			if text := fixture(t, c.file); !strings.Contains(text, c.text) {
				t.Errorf("%s: %s no longer says %q", name, c.file, c.text)
			}
		case len(in) == 0:
			t.Errorf("%s: in neither %v: not a Kubespray default", name, files)
		}
	}
	for name := range commentedDefaults {
		if _, ok := Defaults[name]; !ok {
			t.Errorf("%s: in commentedDefaults but not in Defaults", name)
		}
	}
	// The path to the fixtures is relative to this package.
	if abs, _ := filepath.Abs(fixtures); !strings.HasSuffix(abs, filepath.Join("shared", "fixtures", "kubespray")) {
		t.Errorf("fixtures at %s", abs)
	}
}

// calico_mtu is deliberately not a default: Kubespray leaves it undefined
// and Calico then detects the MTU. The fixture must still say so.
func TestCalicoMTUUndefinedInKubespray(t *testing.T) {
	for _, f := range []string{"kubespray_defaults.main.yml", "calico_defaults.main.yml"} {
		if d, ok := fixtureVars(t, f)["calico_mtu"]; ok {
			t.Errorf("%s:%d sets calico_mtu: %v", f, d.line, d.value)
		}
	}
	if _, ok := Defaults["calico_mtu"]; ok {
		t.Error("Defaults sets calico_mtu")
	}
}
