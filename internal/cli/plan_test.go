//go:build !agentonly

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"podpath/internal/model"
)

const kubesprayFixtures = "../../../shared/fixtures/kubespray"

// kubesprayInventory lays out Kubespray's sample inventory as a user copies
// it (inventory/sample → inventory/mycluster), with hosts and changes.
func kubesprayInventory(t *testing.T, hosts string, k8sCluster func(string) string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mycluster")
	gv := filepath.Join(dir, "group_vars", "k8s_cluster")
	if err := os.MkdirAll(gv, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{"k8s-cluster.yml": filepath.Join(gv, "k8s-cluster.yml"), "k8s-net-calico.yml": filepath.Join(gv, "k8s-net-calico.yml"), "inventory.ini": filepath.Join(dir, "inventory.ini")} {
		b, err := os.ReadFile(filepath.Join(kubesprayFixtures, src))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if src == "k8s-cluster.yml" && k8sCluster != nil {
			s = k8sCluster(s)
		}
		if src == "inventory.ini" && hosts != "" {
			s = hosts
		}
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const threeHosts = `[kube_control_plane]
node1 ansible_host=192.168.0.11 ip=192.168.0.11 etcd_member_name=etcd1

[etcd:children]
kube_control_plane

[kube_node]
node2 ansible_host=192.168.0.12 ip=192.168.0.12
node3 ansible_host=192.168.0.13 ip=192.168.0.13
`

func planJSON(t *testing.T, wantCode int, args ...string) *model.Report {
	t.Helper()
	code, out, errOut := run(t, append([]string{"plan", "-o", "json"}, args...)...)
	if code != wantCode {
		t.Fatalf("plan %s: exit %d; want %d\n%s%s", strings.Join(args, " "), code, wantCode, out, errOut)
	}
	var r model.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	return &r
}

func TestPlanKubesprayInventory(t *testing.T) {
	// The sample as shipped (its hosts commented out), Kubespray's defaults.
	sample := kubesprayInventory(t, "", nil)
	r := planJSON(t, ExitOK, "--kubespray-inventory", sample, "--underlay-mtu", "1500")
	if r.Config == nil || r.Config.PodMTU != 1450 {
		t.Errorf("sample: config %+v; want recommended calico_mtu 1450 (1500 underlay, VXLAN)", r.Config)
	}
	for _, f := range r.Findings {
		if f.Severity == "error" {
			t.Errorf("sample: error %s: %s", f.ID, f.Title)
		}
	}
	code, out, _ := run(t, "plan", "--kubespray-inventory", sample)
	if code != ExitOK || !strings.Contains(out, "Recommended calico_mtu: 1450") {
		t.Errorf("text (exit %d):\n%s", code, out)
	}

	// kube_pods_subnet over the hosts' network.
	overlap := kubesprayInventory(t, threeHosts, func(s string) string {
		return strings.Replace(s, "kube_pods_subnet: 10.233.64.0/18", "kube_pods_subnet: 192.168.0.0/16", 1)
	})
	r = planJSON(t, ExitFindings, "--kubespray-inventory", overlap, "--node-cidr", "192.168.0.0/24")
	if f := r.Findings[0]; f.ID != "cidr-overlap" || !strings.Contains(f.Title, "kube_pods_subnet") || !strings.Contains(f.Title, "192.168.0.0/16") ||
		!strings.Contains(f.Title, "192.168.0.0/24") || !strings.Contains(f.Title, "k8s-cluster.yml:") {
		t.Errorf("overlap: first finding %+v; want cidr-overlap naming both ranges and where the subnet was set", f)
	}

	// 300 nodes on a /18 in /26 blocks.
	r = planJSON(t, ExitOK, "--kubespray-inventory", sample, "--nodes", "300")
	if f := r.Findings[0]; f.ID != "ipam-block-exhaustion" || f.Severity != "warning" || !strings.Contains(f.Title, "300 nodes, 256 blocks") {
		t.Errorf("300 nodes: first finding %+v; want a block exhaustion warning with the numbers", f)
	}
}

// Malformed inventories: a line-numbered, one-line error and exit 2.
func TestPlanMalformedInventory(t *testing.T) {
	bad := kubesprayInventory(t, "[kube_node]\nnode1 ansible_host=192.168.0.11\n[etcd:children]\nno_such_group\n", nil)
	wantUsageError(t, "inventory.ini:4", "plan", "--kubespray-inventory", bad)
	cidr := kubesprayInventory(t, threeHosts, func(s string) string {
		return strings.Replace(s, "kube_pods_subnet: 10.233.64.0/18", "kube_pods_subnet: 10.233.64.0/33", 1)
	})
	wantUsageError(t, "k8s-cluster.yml:", "plan", "--kubespray-inventory", cidr)
	yaml := kubesprayInventory(t, threeHosts, func(s string) string { return s + "\nkube_proxy_mode: [ipvs\n" })
	wantUsageError(t, "k8s-cluster.yml", "plan", "--kubespray-inventory", yaml)
	noAddr := kubesprayInventory(t, "[kube_node]\nnode1 ansible_host=not_an..address!\n", nil)
	wantUsageError(t, "inventory.ini:2", "plan", "--kubespray-inventory", noAddr)
	wantUsageError(t, "give --kubespray-inventory DIR", "plan")
}
