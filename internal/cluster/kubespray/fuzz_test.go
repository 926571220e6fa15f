package kubespray

import (
	"errors"
	"strings"
	"testing"
)

// FuzzLoad: whatever a user's inventory holds, Load gives an inventory or a
// one-line error, never a panic. The bytes are tried as the INI hosts file,
// as the YAML one, and as group_vars and host_vars files next to a good one.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(threeHostsINI))
	f.Add([]byte(threeHostsYAML))
	f.Add([]byte("[kube_node]\nn[01:03]:22 ip=10.0.0.1 a=\"x y\" b=[1,{'k': (2,)}]\n[kube_node:vars]\ncalico_mtu=1450 # c\n"))
	f.Add([]byte("calico_mtu: \"1450\"\nkube_pods_subnet: 10.1.0.0/16\ncalico_pool_cidr: \"{{ kube_pods_subnet }}\"\nx: &a {y: 1}\nz: {<<: *a}\n"))
	f.Add([]byte("all:\n  children:\n    k8s_cluster:\n      children: {kube_node: {hosts: {n1: {ansible_host: n1.lan}}}}\n"))
	f.Add([]byte("$ANSIBLE_VAULT;1.1;AES256\n00\n"))
	f.Add([]byte("[a:children]\nb\n[b:children]\na\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dirs := []string{
			tree(t, map[string]string{"inventory.ini": string(data)}),
			tree(t, map[string]string{"hosts.yaml": string(data)}),
			tree(t, map[string]string{
				"inventory.ini":                   "[kube_node]\nnode1\n",
				"group_vars/k8s_cluster/fuzz.yml": string(data),
				"host_vars/node1.yml":             string(data),
			}),
		}
		for _, dir := range dirs {
			inv, err := Load(dir)
			if err != nil {
				msg := err.Error()
				var e *Error
				if msg == "" || strings.ContainsAny(msg, "\n\r") || !errors.As(err, &e) || !strings.HasPrefix(msg, e.File) {
					t.Fatalf("error %T %q: want a one-line *Error naming its file", err, msg)
				}
				continue
			}
			for _, w := range inv.Warnings {
				if strings.ContainsAny(w, "\n\r") {
					t.Fatalf("warning spans lines: %q", w)
				}
			}
			for _, h := range inv.Hosts {
				if h.Name == "" {
					t.Fatalf("a host without a name: %+v", h)
				}
			}
			for name := range inv.Vars {
				inv.String(name)
				inv.Int(name)
				inv.Bool(name)
			}
		}
	})
}
