package remedy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"podpath/internal/model"
)

// FixMTU without a cluster (no Config) changes only the Kubespray
// inventory: the same run the command makes, called without it.
func TestFixMTUInventoryWithoutCluster(t *testing.T) {
	sample, err := os.ReadFile("../../../shared/fixtures/kubespray/k8s-net-calico.yml")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(t.TempDir(), "inv")
	file := filepath.Join(inv, "group_vars", "k8s_cluster", "k8s-net-calico.yml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(mtu int, apply bool) (string, error) {
		var out strings.Builder
		after, err := FixMTU(context.Background(), FixOptions{MTU: mtu, Apply: apply, KubesprayInventory: inv, Out: &out})
		if after != nil {
			t.Errorf("a re-check report without a cluster: %+v", after)
		}
		return out.String(), err
	}
	if _, err := run(0, false); err == nil || !strings.Contains(err.Error(), "needs --mtu") {
		t.Errorf("no MTU and nothing measured: %v; want it refused", err)
	}
	if _, err := run(100, false); err == nil || !strings.Contains(err.Error(), "576-9000") {
		t.Errorf("MTU 100: %v; want it refused", err)
	}
	out, err := run(1350, false)
	if err != nil || !strings.Contains(out, "+calico_mtu: 1350") || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if now, _ := os.ReadFile(file); string(now) != string(sample) {
		t.Fatal("the dry run changed the file")
	}
	if out, err = run(1350, true); err != nil || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if now, _ := os.ReadFile(file); !strings.Contains(string(now), "\ncalico_mtu: 1350\n") {
		t.Errorf("after apply the file lacks calico_mtu: 1350:\n%s", now)
	}
	if out, err = run(1350, false); err != nil || !strings.Contains(out, "Nothing to change") {
		t.Errorf("second run: %v %q; want nothing to change", err, out)
	}
}

// The measured path's limit on the Pod MTU takes each pair's own
// encapsulation overhead: IPv6's 70 with VXLAN on a dual-stack run's IPv6
// pairs, and on every pair of an IPv6-only cluster (its one pass, no
// family), whose nodes' addresses say so.
func TestPathLimitByFamily(t *testing.T) {
	pair := func(family string) model.Pair {
		return model.Pair{From: "node1", To: "node2", Layer: model.LayerNode, Reachable: true, PathMTU: 1400, Family: family}
	}
	for _, c := range []struct {
		name  string
		addr  string
		pairs []model.Pair
		want  int
	}{
		{"ipv4", "198.18.0.1", []model.Pair{pair("")}, 1350},
		{"dual-stack", "198.18.0.1", []model.Pair{pair(""), pair(model.FamilyIPv6)}, 1330},
		{"ipv6-only", "fd00:198:18::1", []model.Pair{pair("")}, 1330},
	} {
		r := &model.Report{Pairs: model.PairsOf(c.pairs), Nodes: []model.NodeInfo{{Name: "node1", Address: c.addr}, {Name: "node2", Address: c.addr}}}
		if got, path := pathLimit(r, "vxlan"); got != c.want {
			t.Errorf("%s: limit %d (%s); want %d", c.name, got, path, c.want)
		}
	}
}
