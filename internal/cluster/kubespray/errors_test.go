package kubespray

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every error names the file and line to fix, on one line.
func TestLoadErrors(t *testing.T) {
	const node = "[kube_node]\nnode1 ip=10.0.0.1\n"
	tests := []struct {
		name  string
		files map[string]string
		at    string // "file:line", relative to the inventory dir
		want  string
	}{
		{"ini_not_host_or_var", map[string]string{"inventory.ini": "[kube_node]\nnode1 10.0.0.1\n"},
			"inventory.ini:2", `"10.0.0.1" after the host name is not key=value`},
		{"ini_var_without_equals", map[string]string{"inventory.ini": node + "[kube_node:vars]\n\ncalico_mtu 1450\n"},
			"inventory.ini:5", `"calico_mtu 1450" in [kube_node:vars] is not key=value`},
		{"ini_bad_section", map[string]string{"inventory.ini": node + "[kube node]\n"},
			"inventory.ini:3", `"[kube node]" is not a valid section header`},
		{"ini_unknown_suffix", map[string]string{"inventory.ini": node + "[kube_node:hosts]\n[kube_node:var]\n"},
			"inventory.ini:4", `section "[kube_node:var]" has the unknown type "var"`},
		{"ini_undefined_child", map[string]string{"inventory.ini": node + "[k8s_cluster:children]\nkube_node\nkube_control_plane\n"},
			"inventory.ini:5", `[k8s_cluster:children] names the group "kube_control_plane", which is not defined`},
		{"ini_child_not_a_name", map[string]string{"inventory.ini": node + "[k8s_cluster:children]\nkube_node x\n"},
			"inventory.ini:4", `"kube_node x" in [k8s_cluster:children] is not a group name`},
		{"ini_vars_undefined_group", map[string]string{"inventory.ini": "[kube_nodes:vars]\nx=1\n" + node},
			"inventory.ini:1", `[kube_nodes:vars] is for a group that is not defined`},
		{"ini_group_loop", map[string]string{"inventory.ini": "[a:children]\nb\n[b:children]\na\n"},
			"inventory.ini:4", `group "a" as a child of "b" makes a loop`},
		{"ini_group_self", map[string]string{"inventory.ini": "[a:children]\na\n"},
			"inventory.ini:2", `group "a" as a child of "a" makes a loop`},
		{"ini_unclosed_quote", map[string]string{"inventory.ini": "[kube_node]\nnode1 a=\"b\n"},
			"inventory.ini:2", `no closing quotation`},
		{"ini_bad_range", map[string]string{"inventory.ini": "[kube_node]\nnode[3:1:0]\n"},
			"inventory.ini:2", `step "0" is not a positive number`},
		{"ini_is_yaml", map[string]string{"inventory.ini": "all:\n  hosts:\n"},
			"inventory.ini:1", `looks like YAML`},
		{"yaml_group_not_mapping", map[string]string{"hosts.yaml": "all:\n  children:\n    kube_node: [node1]\n"},
			"hosts.yaml:3", `group "kube_node" is a list, not a mapping`},
		{"yaml_hosts_not_mapping", map[string]string{"hosts.yaml": "all:\n  children:\n    kube_node:\n      hosts:\n        - node1\n"},
			"hosts.yaml:5", `hosts of group "kube_node" is a list, not a mapping`},
		{"yaml_host_not_mapping", map[string]string{"hosts.yaml": "all:\n  hosts:\n    node1: 10.0.0.1\n"},
			"hosts.yaml:3", `host "node1" is a scalar "10.0.0.1", not a mapping of its variables`},
		{"yaml_top_not_mapping", map[string]string{"hosts.yaml": "- all\n"},
			"hosts.yaml:1", `the top level is a list, not a mapping of groups`},
		{"yaml_group_loop", map[string]string{"hosts.yml": "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n"},
			"hosts.yml:7", `group "a" as a child of "b" makes a loop`},
		{"yaml_alias_group_loop", map[string]string{"hosts.yml": "all:\n  children:\n    a: &x\n      children:\n        b:\n          children:\n            c: *x\n"},
			"hosts.yml:7", `alias *x refers to itself`},
		{"yaml_bad_syntax", map[string]string{"hosts.yaml": "all:\n  hosts:\n\tnode1:\n"},
			"hosts.yaml:3", `bad YAML: found character that cannot start any token`},
		{"yaml_bad_syntax_line_1", map[string]string{"hosts.yaml": "all: hosts: x\n"},
			"hosts.yaml:1", `bad YAML: mapping values are not allowed in this context`},
		{"group_vars_bad_yaml", map[string]string{"inventory.ini": node, "group_vars/k8s_cluster/k8s-net-calico.yml": "calico_mtu: 1450\n\tcalico_veth_mtu: 1430\n"},
			"group_vars/k8s_cluster/k8s-net-calico.yml:2", `bad YAML`},
		{"group_vars_two_documents", map[string]string{"inventory.ini": node, "group_vars/all.yml": "a: 1\n---\nb: 2\n"},
			"group_vars/all.yml:2", `a second YAML document`},
		{"group_vars_not_mapping", map[string]string{"inventory.ini": node, "group_vars/all/x.yml": "# vars\n- calico_mtu: 1450\n"},
			"group_vars/all/x.yml:2", `the top level is a list, not variables`},
		{"yaml_alias_loop", map[string]string{"inventory.ini": node, "group_vars/all.yml": "a: &x [*x]\n"},
			"group_vars/all.yml:1", `alias *x refers to itself`},
		{"yaml_merge_scalar", map[string]string{"inventory.ini": node, "group_vars/all.yml": "a: 1\nb: {<<: 0}\n"},
			"group_vars/all.yml:2", `a scalar "0" where a mapping belongs (merge (<<) only mappings)`},
		{"host_bad_name_no_address", map[string]string{"inventory.ini": "[kube_node]\nnode1\nnode_2!\n"},
			"inventory.ini:3", `host "node_2!" has no ip, access_ip or ansible_host, and its name is not a hostname or IP address`},
		{"host_nul_name", map[string]string{"inventory.ini": "\x00"},
			"inventory.ini:1", `host "\x00" has no ip`},
		{"host_bad_ip", map[string]string{"inventory.ini": "[kube_node]\nnode1 ip=10.0.0.300\n"},
			"inventory.ini:2", `ip is "10.0.0.300", not an IP address`},
		{"host_ip_is_name", map[string]string{"hosts.yaml": "all:\n  hosts:\n    node1:\n      ip: node1.lan\n"},
			"hosts.yaml:4", `ip is "node1.lan", not an IP address`},
		{"host_bad_ansible_host", map[string]string{"inventory.ini": "[kube_node]\nnode1 ansible_host=bad/host\n"},
			"inventory.ini:2", `ansible_host is "bad/host", not an IP address or hostname`},
		{"host_empty_ip", map[string]string{"inventory.ini": "[kube_node]\nnode1 ip=\n"},
			"inventory.ini:2", `ip is empty`},
		{"host_vars_bad_access_ip", map[string]string{"inventory.ini": node, "host_vars/node1.yml": "\naccess_ip: 1.2.3\n"},
			"host_vars/node1.yml:2", `access_ip is "1.2.3", not an IP address`},
		{"group_bad_ansible_host", map[string]string{"inventory.ini": node + "[kube_node:vars]\nansible_host=a b\n"},
			"inventory.ini:4", `ansible_host is "a b", not an IP address or hostname`},
		{"cidr_not_cidr", map[string]string{"inventory.ini": node, "group_vars/k8s_cluster/k8s-cluster.yml": "kube_pods_subnet: 10.233.64.0\n"},
			"group_vars/k8s_cluster/k8s-cluster.yml:1", `kube_pods_subnet is "10.233.64.0", not a CIDR`},
		{"cidr_host_bits", map[string]string{"inventory.ini": node + "[all:vars]\nkube_service_addresses=10.233.0.1/18\n"},
			"inventory.ini:4", `kube_service_addresses is "10.233.0.1/18", which has host bits set (Kubespray's check wants the network address: 10.233.0.0/18)`},
		{"cidr_wrong_family", map[string]string{"inventory.ini": node, "group_vars/all.yml": "x: 1\ncalico_pool_cidr_ipv6: 10.1.0.0/16\n"},
			"group_vars/all.yml:2", `calico_pool_cidr_ipv6 is "10.1.0.0/16", an IPv4 network`},
		{"cidr_number", map[string]string{"inventory.ini": node, "group_vars/all.yml": "kube_pods_subnet_ipv6: 6\n"},
			"group_vars/all.yml:1", `kube_pods_subnet_ipv6 is "6", not a CIDR`},
		{"cidr_through_reference", map[string]string{"inventory.ini": node, "group_vars/all.yml": "net: 10.0.0.0\ncalico_pool_cidr: \"{{ net }}\"\n"},
			"group_vars/all.yml:2", `calico_pool_cidr is "10.0.0.0", not a CIDR`},
		{"int_not_int", map[string]string{"inventory.ini": node, "group_vars/k8s_cluster/k8s-net-calico.yml": "\n\ncalico_mtu: 1450b\n"},
			"group_vars/k8s_cluster/k8s-net-calico.yml:3", `calico_mtu is "1450b", not an integer (write a whole number, e.g. calico_mtu: 1450)`},
		{"int_decimal", map[string]string{"inventory.ini": node, "group_vars/all.yml": "calico_veth_mtu: 1430.0\n"},
			"group_vars/all.yml:1", `calico_veth_mtu is 1430, a decimal (write calico_veth_mtu: 1430)`},
		{"int_bool", map[string]string{"inventory.ini": node, "group_vars/all.yml": "kubelet_max_pods: yes\n"},
			"group_vars/all.yml:1", `kubelet_max_pods is "true", not an integer`},
		{"int_ini_vars", map[string]string{"inventory.ini": node + "[all:vars]\nkube_network_node_prefix=/24\n"},
			"inventory.ini:4", `kube_network_node_prefix is "/24", not an integer`},
		{"int_host_var", map[string]string{"inventory.ini": "[kube_node]\nnode1 calico_pool_blocksize=big\n"},
			"inventory.ini:2", `calico_pool_blocksize is "big", not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.files)
			_, err := Load(dir)
			checkErr(t, err, filepath.Join(dir, tt.at)+": ", tt.want)
		})
	}
}

func checkErr(t *testing.T, err error, prefix, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded; want %s%s", prefix, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, want) {
		t.Errorf("error = %s\nwant   %s…%s", msg, prefix, want)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("error %T is not an *Error", err)
	}
}

func TestLoadNoHostsFile(t *testing.T) {
	dir := tree(t, map[string]string{"group_vars/all/all.yml": "a: 1\n", "hosts/keep": ""})
	_, err := Load(dir)
	checkErr(t, err, dir+": ", "no hosts file: looked for hosts.yaml, hosts.yml, inventory.ini, hosts.ini, hosts "+
		"(pass the Kubespray inventory directory, the one holding inventory.ini and group_vars/, e.g. inventory/mycluster)")
	_, err = Load(filepath.Join(dir, "missing"))
	checkErr(t, err, filepath.Join(dir, "missing")+": ", "no such directory")
}

func TestLoadTooLarge(t *testing.T) {
	dir := tree(t, map[string]string{"inventory.ini": "[kube_node]\nnode1\n"})
	big := filepath.Join(dir, "group_vars", "all.yml")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, []byte("a: '"+strings.Repeat("x", MaxFileBytes)+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	checkErr(t, err, big+": ", "more than 4 MiB")
}

func TestLoadVaultedHostsFile(t *testing.T) {
	dir := tree(t, map[string]string{"hosts.yml": "$ANSIBLE_VAULT;1.1;AES256\n3132\n"})
	_, err := Load(dir)
	checkErr(t, err, filepath.Join(dir, "hosts.yml")+": ", "encrypted with ansible-vault")
}

// A default that is wrong (after a careless edit of Defaults) has no line.
func TestLoadBadDefault(t *testing.T) {
	old := Defaults["kube_service_addresses"]
	Defaults["kube_service_addresses"] = "10.233.0.0"
	defer func() { Defaults["kube_service_addresses"] = old }()
	_, err := Load(tree(t, map[string]string{"inventory.ini": ""}))
	checkErr(t, err, "Kubespray defaults: ", `kube_service_addresses is "10.233.0.0", not a CIDR`)
}
