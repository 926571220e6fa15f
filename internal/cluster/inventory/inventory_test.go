package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `apiVersion: podpath/v1
kind: Inventory
tokenFile: token
network:
  backend: vxlan
  podMTU: 1450
nodes:
  - name: node1
    address: 198.18.0.1
    agent: 198.18.0.1:7946
    pods:
      - name: probe-node1
        address: 10.233.64.2
        agent: 10.233.64.2:7946
`

func TestLoadResolvesTokenFileNextToInventory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inv.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if inv.TokenFile != filepath.Join(dir, "token") {
		t.Errorf("tokenFile = %s; want it next to the inventory", inv.TokenFile)
	}
	if inv.Nodes[0].Pods[0].Agent != "10.233.64.2:7946" || inv.Network.PodMTU != 1450 {
		t.Errorf("inventory = %+v", inv)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown_field", strings.Replace(good, "podMTU", "podMtu", 1), "field podMtu not found"},
		{"bad_yaml", "nodes: [", "yaml"},
		{"wrong_kind", strings.Replace(good, "kind: Inventory", "kind: Cluster", 1), "want apiVersion podpath/v1 and kind Inventory"},
		{"no_nodes", "apiVersion: podpath/v1\nkind: Inventory\nnodes: []\n", "no nodes"},
		{"bad_address", strings.Replace(good, "address: 198.18.0.1", "address: node1.example", 1), `address "node1.example" is not an IP address`},
		{"bad_agent", strings.Replace(good, "agent: 198.18.0.1:7946", "agent: 198.18.0.1", 1), "is not IP:port"},
		{"duplicate_node", good + "  - name: node1\n    address: 198.18.0.2\n", `node "node1" listed twice`},
		{"duplicate_pod_same_node", good + "      - name: probe-node1\n        address: 10.233.64.3\n", `Pod "probe-node1" listed twice (also on node node1)`},
		{"ansi_in_node_name", strings.Replace(good, "name: node1", `name: "node1\e[2K\rkubectl delete ns kube-system"`, 1), `node name "node1\x1b[2K\rkubectl delete ns kube-system": only printable characters`},
		{"newline_in_pod_name", strings.Replace(good, "name: probe-node1", `name: "probe\nfix: run this"`, 1), `Pod name "probe\nfix: run this": only printable`},
		{"address6_not_ipv6", strings.Replace(good, "address: 198.18.0.1\n", "address: 198.18.0.1\n    address6: 198.18.1.1\n", 1), `node node1: address6 "198.18.1.1" is not an IPv6 address`},
		{"address6_beside_ipv6", strings.Replace(good, "address: 198.18.0.1\n", "address: fd00::1\n    address6: fd00::2\n", 1), `address6 is the IPv6 address of a dual-stack node`},
		{"duplicate_pod_other_node", good + "  - name: node2\n    address: 198.18.0.2\n    pods:\n      - name: probe-node1\n        address: 10.233.65.2\n", `node node2: Pod "probe-node1" listed twice (also on node node1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParse: any file a user points --inventory at must give an inventory
// that holds up (names, IP addresses, IP:port agents) or an error, never a
// panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("apiVersion: podpath/v1\nkind: Inventory\nnodes:\n  - name: a\n    address: ::1\n"))
	f.Add([]byte("nodes: [{name: x}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err != nil {
			return
		}
		if len(inv.Nodes) == 0 {
			t.Fatal("accepted an inventory without nodes")
		}
		for _, n := range inv.Nodes {
			if n.Name == "" {
				t.Fatalf("accepted a node without a name: %q", data)
			}
		}
	})
}
