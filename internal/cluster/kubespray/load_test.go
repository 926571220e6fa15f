package kubespray

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixtures holds the real Kubespray files (kubernetes-sigs/kubespray 46dbdd39).
const fixtures = "../../../../shared/fixtures/kubespray"

// tree writes files (path relative to a new temp dir → content) and returns the dir.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return string(b)
}

func load(t *testing.T, files map[string]string) *Inventory {
	t.Helper()
	inv, err := Load(tree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// Kubespray's sample inventory as `cp -r inventory/sample inventory/mycluster`
// leaves it: every host commented out, so no hosts and Kubespray's defaults.
func TestLoadKubespraySample(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini":                             fixture(t, "inventory.ini"),
		"group_vars/k8s_cluster/k8s-cluster.yml":    fixture(t, "k8s-cluster.yml"),
		"group_vars/k8s_cluster/k8s-net-calico.yml": fixture(t, "k8s-net-calico.yml"),
	})
	if len(inv.Hosts) != 0 || inv.HostsFile != "inventory.ini" {
		t.Errorf("hosts = %+v from %s; want none from inventory.ini", inv.Hosts, inv.HostsFile)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings = %q", inv.Warnings)
	}
	strs := map[string]string{
		"kube_pods_subnet":       "10.233.64.0/18",
		"kube_service_addresses": "10.233.0.0/18",
		"calico_pool_cidr":       "10.233.64.0/18",
		"calico_pool_cidr_ipv6":  "fd85:ee78:d8a6:8607::1:0000/112",
		"calico_network_backend": "vxlan",
		"calico_vxlan_mode":      "Always",
		"calico_ipip_mode":       "Never",
		"kube_network_plugin":    "calico",
		"global_as_num":          "64512",
	}
	for name, want := range strs {
		if got := inv.String(name); got != want {
			t.Errorf("String(%s) = %q; want %q", name, got, want)
		}
	}
	ints := map[string]int{"kube_network_node_prefix": 24, "kubelet_max_pods": 110, "calico_pool_blocksize": 26,
		"calico_vxlan_port": 4789, "calico_vxlan_vni": 4096, "global_as_num": 64512}
	for name, want := range ints {
		if got, ok := inv.Int(name); !ok || got != want {
			t.Errorf("Int(%s) = %d, %v; want %d", name, got, ok, want)
		}
	}
	if n, ok := inv.Int("calico_mtu"); ok {
		t.Errorf("Int(calico_mtu) = %d; want unset, as in the sample", n)
	}
	if !inv.Bool("ipv4_stack") || inv.Bool("ipv6_stack") {
		t.Errorf("ipv4_stack %v, ipv6_stack %v; want true, false", inv.Bool("ipv4_stack"), inv.Bool("ipv6_stack"))
	}
	sources := map[string]string{
		"kube_pods_subnet":       "group_vars/k8s_cluster/k8s-cluster.yml:94",
		"calico_pool_blocksize":  "group_vars/k8s_cluster/k8s-net-calico.yml:23",
		"calico_network_backend": "default",
		"calico_pool_cidr":       "default (= kube_pods_subnet, group_vars/k8s_cluster/k8s-cluster.yml:94)",
	}
	for name, want := range sources {
		if got := inv.Source[name]; got != want {
			t.Errorf("Source[%s] = %q; want %q", name, got, want)
		}
	}
	// A template that is not a plain reference stays text.
	if got := inv.String("kube_apiserver_ip"); !strings.HasPrefix(got, "{{ kube_service_subnets.split(',')") {
		t.Errorf("kube_apiserver_ip = %q; want the template kept", got)
	}
}

const threeHostsINI = `# three nodes, stacked etcd
[kube_control_plane]
node1 ansible_host=95.54.0.12 ip=10.3.0.1 etcd_member_name=etcd1

[etcd:children]
kube_control_plane

[kube_node]
node2 ansible_host=95.54.0.13  # ip=10.3.0.2
node3.example.com:2222 calico_rr_id=rr1

[calico_rr]

[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr

[k8s_cluster:vars]
calico_mtu=1450
`

const threeHostsYAML = `all:
  children:
    kube_control_plane:
      hosts:
        node1: {ansible_host: 95.54.0.12, ip: 10.3.0.1, etcd_member_name: etcd1}
    etcd:
      children:
        kube_control_plane:
    kube_node:
      hosts:
        node2:
          ansible_host: 95.54.0.13  # ip: 10.3.0.2
        node3.example.com:2222:
          calico_rr_id: rr1
    calico_rr:
    k8s_cluster:
      children:
        kube_control_plane:
        kube_node:
        calico_rr:
      vars:
        calico_mtu: 1450
`

func TestLoadINIThreeHosts(t *testing.T) {
	inv := load(t, map[string]string{"inventory.ini": threeHostsINI})
	want := []Host{
		{Name: "node1", Address: "10.3.0.1", Groups: []string{"etcd", "k8s_cluster", "kube_control_plane"},
			Vars: map[string]any{"ansible_host": "95.54.0.12", "ip": "10.3.0.1", "etcd_member_name": "etcd1"}},
		{Name: "node2", Address: "95.54.0.13", Groups: []string{"k8s_cluster", "kube_node"},
			Vars: map[string]any{"ansible_host": "95.54.0.13"}},
		{Name: "node3.example.com", Address: "", Groups: []string{"k8s_cluster", "kube_node"},
			Vars: map[string]any{"ansible_port": 2222, "calico_rr_id": "rr1"}},
	}
	if !reflect.DeepEqual(inv.Hosts, want) {
		t.Errorf("hosts =\n%+v\nwant\n%+v", inv.Hosts, want)
	}
	if mtu, ok := inv.Int("calico_mtu"); !ok || mtu != 1450 || inv.Source["calico_mtu"] != "inventory.ini:20" {
		t.Errorf("calico_mtu = %d, %v from %q; want 1450 from inventory.ini:20", mtu, ok, inv.Source["calico_mtu"])
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings = %q", inv.Warnings)
	}
}

// The same cluster as a YAML inventory reads the same.
func TestLoadYAMLSameAsINI(t *testing.T) {
	ini := load(t, map[string]string{"inventory.ini": threeHostsINI})
	yml := load(t, map[string]string{"hosts.yaml": threeHostsYAML})
	if !reflect.DeepEqual(ini.Hosts, yml.Hosts) {
		t.Errorf("YAML hosts =\n%+v\nINI hosts\n%+v", yml.Hosts, ini.Hosts)
	}
	if !reflect.DeepEqual(ini.Vars, yml.Vars) {
		t.Errorf("YAML and INI vars differ")
	}
	if yml.Source["calico_mtu"] != "hosts.yaml:22" || len(yml.Warnings) != 0 {
		t.Errorf("calico_mtu from %q, warnings %q", yml.Source["calico_mtu"], yml.Warnings)
	}
}

// hosts.yaml is looked for before inventory.ini, and Load takes the file too.
func TestLoadFindsHostsFile(t *testing.T) {
	dir := tree(t, map[string]string{"hosts.yaml": threeHostsYAML, "inventory.ini": "[kube_node]\nother\n"})
	inv, err := Load(dir)
	if err != nil || inv.HostsFile != "hosts.yaml" {
		t.Fatalf("Load = %v, %v; want hosts.yaml read", inv, err)
	}
	inv, err = Load(filepath.Join(dir, "inventory.ini"))
	if err != nil || inv.Dir != dir || len(inv.Hosts) != 1 || inv.Hosts[0].Name != "other" {
		t.Fatalf("Load(file) = %+v, %v; want inventory.ini's one host", inv, err)
	}
}

func TestLoadHostVarsOverride(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini":         "[kube_node]\nnode1 ip=10.3.0.1 calico_mtu=1400\nnode2 ansible_host=node2.lan\nnode3\n",
		"host_vars/node1.yml":   "ip: 10.3.0.11\n",
		"host_vars/node2/a.yml": "access_ip: 10.3.0.2\nx: 1\n",
		"host_vars/node2/b.yml": "x: 2\n",
		"group_vars/all.yml":    "calico_mtu: 1450\n",
	})
	got := map[string]string{}
	for _, h := range inv.Hosts {
		got[h.Name] = h.Address
	}
	want := map[string]string{"node1": "10.3.0.11", "node2": "10.3.0.2", "node3": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("addresses = %v; want %v", got, want)
	}
	if v := inv.Hosts[0].Vars["calico_mtu"]; v != 1400 {
		t.Errorf("node1 calico_mtu = %v; want its own 1400", v)
	}
	if v := inv.Hosts[1].Vars["x"]; v != 2 {
		t.Errorf("node2 x = %v; want 2 from the later file", v)
	}
	if mtu, _ := inv.Int("calico_mtu"); mtu != 1450 {
		t.Errorf("cluster calico_mtu = %d; want 1450: host vars stay on the host", mtu)
	}
}

// Ansible's order for a k8s_cluster host: hosts file [all:vars] <
// group_vars/all < hosts file [k8s_cluster:vars] < group_vars/k8s_cluster.
func TestLoadPrecedence(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini": `[kube_node]
node1 ansible_host=10.0.0.1
[k8s_cluster:children]
kube_node
[all:vars]
a=inv_all
b=inv_all
c=inv_all
d=inv_all
[k8s_cluster:vars]
a=inv_k8s
b=inv_k8s
`,
		"group_vars/all/all.yml":          "a: gv_all\nb: gv_all\nc: gv_all\ncalico_mtu: 1500\n",
		"group_vars/all/zz.yml":           "calico_mtu: 1480\n",
		"group_vars/k8s_cluster.yml":      "a: gv_k8s_file\n",
		"group_vars/k8s_cluster/net.yaml": "a: gv_k8s_dir\ncalico_mtu: 1450\n",
	})
	want := map[string]string{"a": "gv_k8s_dir", "b": "inv_k8s", "c": "gv_all", "d": "inv_all"}
	for name, w := range want {
		if got := inv.String(name); got != w {
			t.Errorf("%s = %q (from %s); want %q", name, got, inv.Source[name], w)
		}
	}
	if mtu, _ := inv.Int("calico_mtu"); mtu != 1450 || inv.Source["calico_mtu"] != "group_vars/k8s_cluster/net.yaml:2" {
		t.Errorf("calico_mtu = %d from %s; want 1450 from group_vars/k8s_cluster/net.yaml:2", mtu, inv.Source["calico_mtu"])
	}
}

// Kubespray's dynamic_groups role adds k8s_cluster (and maps old group names)
// when the inventory leaves them out.
func TestLoadDynamicGroups(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini":                     "[kube-master]\ncp1\n[kube_node]\nw1\n[calico_rr]\nrr1\n[etcd]\ne1\n[bastion]\nb1 ansible_host=1.2.3.4\n",
		"group_vars/k8s_cluster/calico.yml": "calico_network_backend: bird\n",
	})
	want := map[string][]string{
		"cp1": {"k8s_cluster", "kube-master", "kube_control_plane"},
		"w1":  {"k8s_cluster", "kube_node"},
		"rr1": {"calico_rr", "k8s_cluster"},
		"e1":  {"etcd"},
		"b1":  {"bastion"},
	}
	for _, h := range inv.Hosts {
		if !reflect.DeepEqual(h.Groups, want[h.Name]) {
			t.Errorf("%s groups = %v; want %v", h.Name, h.Groups, want[h.Name])
		}
	}
	if inv.String("calico_network_backend") != "bird" {
		t.Errorf("group_vars/k8s_cluster not applied without a k8s_cluster group")
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "inventory.ini:1: group kube-master is deprecated: use kube_control_plane") {
		t.Errorf("warnings = %q; want the deprecation of kube-master", inv.Warnings)
	}
}

func TestLoadTemplates(t *testing.T) {
	inv := load(t, map[string]string{
		"hosts.yaml": "all:\n  hosts:\n    n1: {ansible_host: \"{{ lookup('env', 'N1') }}\"}\n",
		"group_vars/all/net.yml": `kube_pods_subnet: 10.1.0.0/16
enable_dual_stack_networks: true
my_mtu: 1400
calico_mtu: "{{ my_mtu }}"
calico_veth_mtu: "{{ calico_mtu - 20 }}"
a: "{{ b }}"
b: "{{ a }}"
`,
	})
	if got := inv.String("calico_pool_cidr"); got != "10.1.0.0/16" {
		t.Errorf("calico_pool_cidr = %q; want the inventory's kube_pods_subnet", got)
	}
	if !inv.Bool("ipv6_stack") {
		t.Errorf("ipv6_stack = false; want enable_dual_stack_networks (true) through Kubespray's default")
	}
	if mtu, ok := inv.Int("calico_mtu"); !ok || mtu != 1400 {
		t.Errorf("calico_mtu = %d, %v; want 1400 through {{ my_mtu }}", mtu, ok)
	}
	if got := inv.String("calico_veth_mtu"); got != "{{ calico_mtu - 20 }}" {
		t.Errorf("calico_veth_mtu = %q; want the expression kept", got)
	}
	if inv.Hosts[0].Address != "" {
		t.Errorf("address = %q; want none from a template", inv.Hosts[0].Address)
	}
	all := strings.Join(inv.Warnings, "\n")
	for _, w := range []string{"hosts.yaml:3: host \"n1\": ansible_host is the template",
		"net.yml:2: enable_dual_stack_networks is deprecated (use ipv4_stack and ipv6_stack)",
		"net.yml:6: a refers to itself", "net.yml:7: b refers to itself"} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
}

func TestLoadSkipsVault(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini":                "[kube_node]\nn1\n",
		"group_vars/all/vault.yml":     "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n",
		"group_vars/all/plain.yml":     "calico_mtu: 1450\n",
		"group_vars/k8s_cluster/x.yml": "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n",
	})
	if inv.Source["group_vars/all/vault.yml"] != "encrypted with ansible-vault: not read" {
		t.Errorf("Source = %v; want the vault file noted", inv.Source)
	}
	if mtu, _ := inv.Int("calico_mtu"); mtu != 1450 {
		t.Errorf("calico_mtu = %d; want the plain file read", mtu)
	}
	if !strings.HasPrefix(inv.String("secret"), "$ANSIBLE_VAULT;") {
		t.Errorf("inline vault value = %q; want its text", inv.String("secret"))
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "vault.yml: encrypted with ansible-vault, not read") {
		t.Errorf("warnings = %q", inv.Warnings)
	}
}

func TestLoadWarnings(t *testing.T) {
	inv := load(t, map[string]string{
		"inventory.ini": `[kube_node]
n1
[kube_nodes]
n2
[kube-node]
n3
[kube_node:vars]
calico_mtu=1400
[all:vars]
calico_network_backend=bird # BGP
`,
		"group_vars/k8s_cluster/net.yml": "calico_mtu: \"1450\"\ncalico_pool_blocksize: 26\ncalico_pool_blocksize: 24\n",
		"group_vars/all/veth.yml":        "calico_veth_mtu: 1430\n",
	})
	if mtu, ok := inv.Int("calico_mtu"); !ok || mtu != 1450 {
		t.Errorf("calico_mtu = %d, %v; want the quoted 1450 accepted", mtu, ok)
	}
	if n, _ := inv.Int("calico_pool_blocksize"); n != 24 {
		t.Errorf("calico_pool_blocksize = %d; want the last of a repeated key", n)
	}
	all := strings.Join(inv.Warnings, "\n")
	for _, w := range []string{
		`inventory.ini:3: group "kube_nodes" is not one Kubespray knows`,
		`inventory.ini:5: group kube-node is deprecated: use kube_node`,
		`inventory.ini:8: calico_mtu is set for group "kube_node" only`,
		`inventory.ini:10: calico_network_backend is "bird # BGP": Ansible keeps comments in [all:vars] values`,
		`net.yml:1: calico_mtu is the string "1450", not a number`,
		`net.yml:3: key "calico_pool_blocksize" repeated (first on line 2)`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
	for _, w := range inv.Warnings {
		if strings.Contains(w, "\n") {
			t.Errorf("warning spans lines: %q", w)
		}
	}
	// calico_veth_mtu alone is ignored by Kubespray; here calico_mtu is set.
	if strings.Contains(all, "calico_veth_mtu is set but calico_mtu is not") {
		t.Errorf("veth warning with calico_mtu set")
	}
	inv = load(t, map[string]string{"inventory.ini": "[all:vars]\ncalico_veth_mtu=1430\n"})
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "inventory.ini:2: calico_veth_mtu is set but calico_mtu is not") {
		t.Errorf("warnings = %q", inv.Warnings)
	}
}

func TestAccessors(t *testing.T) {
	inv := &Inventory{Vars: map[string]any{"s": "x", "n": 3, "f": 2.0, "b": true, "yes": "yes", "one": 1, "nil": nil, "q": " 12 ", "l": []any{1}}}
	if inv.String("n") != "3" || inv.String("b") != "true" || inv.String("nil") != "" || inv.String("f") != "2" || inv.String("l") != "[1]" {
		t.Errorf("String: %q %q %q %q %q", inv.String("n"), inv.String("b"), inv.String("nil"), inv.String("f"), inv.String("l"))
	}
	if n, ok := inv.Int("q"); !ok || n != 12 {
		t.Errorf("Int(q) = %d, %v", n, ok)
	}
	for _, name := range []string{"s", "nil", "missing", "b"} {
		if _, ok := inv.Int(name); ok {
			t.Errorf("Int(%s) ok; want false", name)
		}
	}
	if !inv.Bool("b") || !inv.Bool("yes") || !inv.Bool("one") || inv.Bool("s") || inv.Bool("n") || inv.Bool("missing") {
		t.Errorf("Bool wrong")
	}
	// Without an inventory (nil, or empty Vars) the answers are Kubespray's defaults.
	for _, inv := range []*Inventory{nil, {}, {Vars: map[string]any{}}} {
		if inv.String("calico_pool_cidr") != "10.233.64.0/18" || !inv.Bool("ipv4_stack") || inv.Bool("ipv6_stack") {
			t.Errorf("%+v: calico_pool_cidr %q, ipv4_stack %v, ipv6_stack %v; want Kubespray's defaults",
				inv, inv.String("calico_pool_cidr"), inv.Bool("ipv4_stack"), inv.Bool("ipv6_stack"))
		}
		if _, ok := inv.Int("calico_mtu"); ok {
			t.Errorf("%+v: calico_mtu set", inv)
		}
	}
}

// An address set for a group in the hosts file counts too, below the host's own.
func TestLoadGroupAddress(t *testing.T) {
	inv := load(t, map[string]string{"inventory.ini": "[kube_node]\nnode_1!\nnode2 ansible_host=10.0.0.2\n[kube_node:vars]\nansible_host=10.0.0.9\n"})
	if inv.Hosts[0].Address != "10.0.0.9" || inv.Hosts[1].Address != "10.0.0.2" {
		t.Errorf("addresses %q, %q; want the group's, then the host's own", inv.Hosts[0].Address, inv.Hosts[1].Address)
	}
	if _, ok := inv.Hosts[0].Vars["ansible_host"]; ok {
		t.Errorf("group vars copied into Host.Vars")
	}
}

// Deep group nesting loads, and a loop through many groups is found at the
// line that closes it. (Checking each edge as it was added took seconds here.)
func TestLoadDeepGroups(t *testing.T) {
	var b strings.Builder
	const depth = 5000
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "[g%d:children]\ng%d\n", i, i+1)
	}
	fmt.Fprintf(&b, "[g%d]\nh1\n", depth)
	inv := load(t, map[string]string{"inventory.ini": b.String()})
	if n := len(inv.Hosts[0].Groups); n != depth+1 {
		t.Errorf("h1 in %d groups; want %d", n, depth+1)
	}
	fmt.Fprintf(&b, "[g%d:children]\ng0\n", depth)
	dir := tree(t, map[string]string{"inventory.ini": b.String()})
	_, err := Load(dir)
	checkErr(t, err, filepath.Join(dir, "inventory.ini")+":"+fmt.Sprint(2*depth+4)+": ", `group "g0" as a child of "g5000" makes a loop`)
}

func TestLoadEmptyHostsFiles(t *testing.T) {
	for _, name := range []string{"hosts.yaml", "inventory.ini"} {
		for _, content := range []string{"", "# nothing yet\n", "---\n"} {
			if name == "inventory.ini" && content == "---\n" {
				continue
			}
			inv := load(t, map[string]string{name: content})
			if len(inv.Hosts) != 0 || inv.String("kube_pods_subnet") != "10.233.64.0/18" {
				t.Errorf("%s %q: hosts %v, kube_pods_subnet %q", name, content, inv.Hosts, inv.String("kube_pods_subnet"))
			}
		}
	}
}
