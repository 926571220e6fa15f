package kubespray

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// lookup finds a cluster-wide variable, falling back to Kubespray's defaults
// (their references followed) for a name Vars lacks: Load puts every default
// in Vars, but a caller without an inventory may use a nil or empty one.
func (inv *Inventory) lookup(name string) (any, bool) {
	if inv != nil {
		if v, ok := inv.Vars[name]; ok {
			return v, true
		}
	}
	if _, ok := Defaults[name]; !ok {
		return nil, false
	}
	v, _, _ := follow(Defaults, name, map[string]bool{}, nil)
	return v, true
}

// String is the variable as a template would write it: "" when unset or null.
func (inv *Inventory) String(name string) string {
	v, _ := inv.lookup(name)
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// Int is the variable as a whole number; false when it is unset (calico_mtu
// by default), null, a template, or not a number. Load has already refused
// the variables that must be numbers and are not.
func (inv *Inventory) Int(name string) (int, bool) {
	v, _ := inv.lookup(name)
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		if x <= math.MaxInt {
			return int(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x), true
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, true
		}
	}
	return 0, false
}

// Bool is the variable as Ansible's bool filter reads it (`| bool`, which
// Kubespray's tasks apply): true, "true", "yes", "on", "1", "y", "t" or 1.
// Unset, null and templates are false.
func (inv *Inventory) Bool(name string) bool {
	v, _ := inv.lookup(name)
	switch x := v.(type) {
	case bool:
		return x
	case int:
		return x == 1
	case float64:
		return x == 1
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "y", "yes", "on", "1", "true", "t":
			return true
		}
	}
	return false
}
