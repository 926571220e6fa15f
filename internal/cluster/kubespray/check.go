package kubespray

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// cidrVars must hold a network range of the given IP version; Kubespray's
// validate_inventory role asserts them with ipaddr('net') (a network address,
// no host bits) when the stack is on. Checked here regardless: a broken value
// is a mistake even while its stack is off.
var cidrVars = map[string]int{
	"kube_pods_subnet": 4, "kube_service_addresses": 4, "calico_pool_cidr": 4,
	"kube_pods_subnet_ipv6": 6, "kube_service_addresses_ipv6": 6, "calico_pool_cidr_ipv6": 6,
}

// intVars must be whole numbers: templates write them into configs that
// Calico and the kubelet parse as integers.
var intVars = map[string]bool{
	"calico_mtu": true, "calico_veth_mtu": true,
	"calico_pool_blocksize": true, "calico_pool_blocksize_ipv6": true,
	"kubelet_max_pods": true, "kube_network_node_prefix": true, "kube_network_node_prefix_ipv6": true,
	"calico_vxlan_port": true, "calico_vxlan_vni": true,
}

// isTemplate reports a value Ansible would render with Jinja. Load does not
// evaluate templates, so it cannot check them either.
func isTemplate(v any) bool {
	s, ok := v.(string)
	return ok && (strings.Contains(s, "{{") || strings.Contains(s, "{%"))
}

// checkVar checks one assignment of a typed variable where it is written.
func (l *loader) checkVar(file string, d varDef) error {
	if isTemplate(d.value) {
		return nil
	}
	if ver, ok := cidrVars[d.name]; ok {
		if msg, hint := badCIDR(d.name, d.value, ver); msg != "" {
			return &Error{File: file, Line: d.line, Msg: msg, Hint: hint}
		}
	}
	if intVars[d.name] {
		return l.checkInt(file, d)
	}
	return nil
}

// badCIDR says what is wrong with a CIDR variable's value, or "".
func badCIDR(name string, v any, ver int) (msg, hint string) {
	example := map[int]string{4: "10.233.64.0/18", 6: "fd85:ee78:d8a6:8607::1:0/112"}[ver]
	hint = "write a network such as " + example
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%s is %s, not a CIDR", name, show(v)), hint
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return fmt.Sprintf("%s is %s, not a CIDR", name, quote(s)), hint
	}
	if got := map[bool]int{true: 4, false: 6}[p.Addr().Is4()]; got != ver {
		other := name + "_ipv6"
		if ver == 6 {
			other = strings.TrimSuffix(name, "_ipv6")
		}
		return fmt.Sprintf("%s is %s, an IPv%d network", name, quote(s), got), fmt.Sprintf("%s is for IPv%d; an IPv%d network goes in %s", name, ver, got, other)
	}
	if p.Masked() != p {
		return fmt.Sprintf("%s is %s, which has host bits set", name, quote(s)),
			fmt.Sprintf("Kubespray's check wants the network address: %s", p.Masked())
	}
	if p.IsSingleIP() {
		return fmt.Sprintf("%s is %s, a single address", name, quote(s)), hint
	}
	return "", ""
}

// checkInt accepts an integer, or a string of digits (Ansible templates render
// both the same), with the exception noted for calico_mtu.
func (l *loader) checkInt(file string, d varDef) error {
	switch v := d.value.(type) {
	case int, int64, uint64:
		return nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			// A template writes 1450.0, which no MTU or prefix field parses.
			return &Error{File: file, Line: d.line, Msg: fmt.Sprintf("%s is %v, a decimal", d.name, v), Hint: fmt.Sprintf("write %s: %d", d.name, int64(v))}
		}
	case nil:
		if d.name == "calico_mtu" {
			l.warn(file, d.line, "calico_mtu is empty, which Ansible still counts as defined: Kubespray's calico-node template then sets CNI_MTU and FELIX_*MTU from a value that is not a number",
				"delete the line to leave the MTU to Calico, or give a number")
		}
		return nil
	case string:
		if _, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			if d.name == "calico_mtu" {
				l.warn(file, d.line, fmt.Sprintf("calico_mtu is the string %s, not a number: Kubespray's calico-config template writes the CNI \"mtu\" only for a number", quote(v)),
					"write calico_mtu: "+strings.TrimSpace(v)+" without quotes")
			}
			return nil
		}
	}
	return &Error{File: file, Line: d.line, Msg: fmt.Sprintf("%s is %s, not an integer", d.name, show(d.value)),
		Hint: fmt.Sprintf("write a whole number, e.g. %s: %s", d.name, intExample(d.name))}
}

func intExample(name string) string {
	if v, ok := Defaults[name]; ok {
		return fmt.Sprint(v)
	}
	return "1450"
}

// addressVars name where Ansible and Kubespray reach a host. ip and access_ip
// are what Kubespray binds to and advertises, so they must be IP addresses;
// ansible_host may be a DNS name.
var addressVars = []string{"ip", "access_ip", "ansible_host"}

// checkAddress checks one assignment of a host's address variable.
func checkAddress(file string, d varDef) error {
	if d.name != "ip" && d.name != "access_ip" && d.name != "ansible_host" || isTemplate(d.value) {
		return nil
	}
	s, ok := d.value.(string)
	s = strings.TrimSpace(s)
	switch {
	case ok && isIP(s):
		return nil
	case ok && d.name == "ansible_host" && validHostname(s):
		return nil
	case ok && s == "":
		return &Error{File: file, Line: d.line, Msg: d.name + " is empty", Hint: "give the address or remove " + d.name}
	}
	what := "an IP address"
	if d.name == "ansible_host" {
		what = "an IP address or hostname"
	}
	return &Error{File: file, Line: d.line, Msg: fmt.Sprintf("%s is %s, not %s", d.name, show(d.value), what),
		Hint: fmt.Sprintf("write %s=<address>, e.g. %s=10.3.0.1", d.name, d.name)}
}

// validHostname accepts DNS names (RFC 1123 labels) plus underscores, which
// /etc/hosts and Ansible accept even though DNS does not.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
