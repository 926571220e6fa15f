package remedy

import (
	"encoding/json"
	"strings"
	"testing"

	"podpath/internal/cluster/kube"
)

func calicoCluster(install string, cal kube.Calico) *kube.Cluster {
	cal.APIGroup = "crd.projectcalico.org"
	if cal.IPPools == nil {
		cal.IPPools = []kube.IPPool{{Name: "default-pool", CIDR: "10.233.64.0/18", VXLANMode: "Always"}}
	}
	return &kube.Cluster{CNI: kube.CNI{Name: "calico", Install: install}, Calico: &cal}
}

// Each install type's MTU lives in one place; the plan names it, sets it
// and knows how to put the old value back.
func TestClusterPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cl      *kube.Cluster
		want    []string // ObjectChange.What, in order
		patch   string   // the first change's patch
		revert  string
		warning string
	}{
		{name: "operator", cl: calicoCluster("operator", kube.Calico{InstallStatus: 1450, DaemonSet: "calico-system/calico-node"}),
			want: []string{"Installation default spec.calicoNetwork.mtu"}, patch: `{"spec":{"calicoNetwork":{"mtu":1350}}}`, revert: `{"spec":{"calicoNetwork":{"mtu":null}}}`},
		{name: "operator_ignores_felix", cl: calicoCluster("operator", kube.Calico{InstallMTU: 1440, FelixMTUs: map[string]int{"vxlanMTU": 1440}}),
			want: []string{"Installation default spec.calicoNetwork.mtu"}, patch: `{"spec":{"calicoNetwork":{"mtu":1350}}}`, revert: `{"spec":{"calicoNetwork":{"mtu":1440}}}`},
		{name: "manifest", cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "0"}}),
			want: []string{"ConfigMap kube-system/calico-config veth_mtu"}, patch: `{"data":{"veth_mtu":"1350"}}`, revert: `{"data":{"veth_mtu":"0"}}`},
		{name: "manifest_with_felix_field", cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "1440"}, FelixMTUs: map[string]int{"vxlanMTU": 1440}}),
			want: []string{"ConfigMap kube-system/calico-config veth_mtu", "FelixConfiguration default spec.vxlanMTU"}, patch: `{"data":{"veth_mtu":"1350"}}`, revert: `{"data":{"veth_mtu":"1440"}}`},
		{name: "kubespray_felix", cl: calicoCluster("kubespray", kube.Calico{FelixMTUs: map[string]int{"vxlanMTU": 1450}}),
			want: []string{"FelixConfiguration default spec.vxlanMTU"}, patch: `{"spec":{"vxlanMTU":1350}}`, revert: `{"spec":{"vxlanMTU":1450}}`},
		{name: "kubespray_auto_sets_felix", cl: calicoCluster("kubespray", kube.Calico{}),
			want: []string{"FelixConfiguration default spec.vxlanMTU"}, patch: `{"spec":{"vxlanMTU":1350}}`, revert: `{"spec":{"vxlanMTU":null}}`},
		{name: "kubespray_auto_dual_stack_sets_v6", cl: calicoCluster("kubespray", kube.Calico{IPPools: []kube.IPPool{
			{Name: "default-pool", CIDR: "10.233.64.0/18", VXLANMode: "Always"},
			{Name: "default-pool-ipv6", CIDR: "fd85:ee78:d8a6:8607::1:0/112", VXLANMode: "Always"}}}),
			want: []string{"FelixConfiguration default spec.vxlanMTU", "FelixConfiguration default spec.vxlanMTUV6"}, patch: `{"spec":{"vxlanMTU":1350}}`},
		{name: "kubespray_env_wins", cl: calicoCluster("kubespray", kube.Calico{DaemonSet: "kube-system/calico-node",
			NodeEnvMTU: []kube.EnvMTU{{Container: 0, Index: 7, Name: "FELIX_VXLANMTU", Value: "1450"}}}),
			want:  []string{"DaemonSet kube-system/calico-node env FELIX_VXLANMTU"},
			patch: `[{"op":"test","path":"/spec/template/spec/containers/0/env/7/name","value":"FELIX_VXLANMTU"},{"op":"replace","path":"/spec/template/spec/containers/0/env/7/value","value":"1350"}]`},
		{name: "kubespray_cni_config", cl: calicoCluster("kubespray", kube.Calico{ConfigMap: map[string]string{"cni_network_config": `{"name":"cni0","plugins":[{"type":"calico","mtu":1450},{"type":"portmap"}]}`}}),
			want: []string{"ConfigMap kube-system/calico-config cni_network_config mtu"}},
		{name: "kubespray_bgp_needs_the_inventory", cl: calicoCluster("kubespray", kube.Calico{IPPools: []kube.IPPool{{Name: "p", CIDR: "10.233.64.0/18"}}}),
			want: nil},
		{name: "unchanged_is_dropped", cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "1350"}}), want: nil},
		{name: "ippool_mtu_warned", cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "0"},
			IPPools: []kube.IPPool{{Name: "article", CIDR: "10.233.64.0/18", VXLANMode: "Always", MTU: 1500}}}),
			want: []string{"ConfigMap kube-system/calico-config veth_mtu"}, warning: "IPPool article carries mtu 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ClusterChange(tc.cl, 1350)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range p.Objects {
				got = append(got, o.What)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("objects %q; want %q", got, tc.want)
			}
			if tc.name == "kubespray_cni_config" && !strings.Contains(string(p.Objects[0].Patch), `\"mtu\": 1350`) {
				t.Errorf("CNI patch %s; want mtu 1350 in the calico plugin", p.Objects[0].Patch)
			}
			if tc.patch != "" && string(p.Objects[0].Patch) != tc.patch {
				t.Errorf("patch %s; want %s", p.Objects[0].Patch, tc.patch)
			}
			if tc.revert != "" && string(p.Objects[0].Revert) != tc.revert {
				t.Errorf("revert %s; want %s", p.Objects[0].Revert, tc.revert)
			}
			for _, o := range p.Objects {
				if !json.Valid(o.Patch) || !json.Valid(o.Revert) {
					t.Errorf("%s: patches %s / %s are not JSON", o.What, o.Patch, o.Revert)
				}
			}
			if want := tc.cl.CNI.Install == "kubespray"; p.Inventory != want {
				t.Errorf("Inventory = %v; want %v (only Kubespray keeps the MTU in an inventory)", p.Inventory, want)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(p.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q lack %q", p.Warnings, tc.warning)
			}
		})
	}
	if _, err := ClusterChange(&kube.Cluster{CNI: kube.CNI{Name: "cilium"}}, 1350); err == nil || !strings.Contains(err.Error(), "not Calico") {
		t.Errorf("cilium: %v; want a refusal", err)
	}
}

// What fix asks RBAC for before it runs: the objects of this install
// whatever the MTU (a value already in place included), and calico-node's
// restart only where podpath restarts it.
func TestPermissions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cl      *kube.Cluster
		restart bool
		want    []string
	}{
		{name: "operator_rolls_its_own", restart: true, cl: calicoCluster("operator", kube.Calico{InstallMTU: 1350, DaemonSet: "calico-system/calico-node"}),
			want: []string{"get installations.operator.tigera.io default", "patch installations.operator.tigera.io default"}},
		{name: "manifest_restart", restart: true, cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "1350"},
			FelixMTUs: map[string]int{"vxlanMTU": 1440, "wireguardMTU": 1440}, DaemonSet: "kube-system/calico-node"}),
			want: []string{"get configmaps calico-config", "patch configmaps calico-config",
				"get felixconfigurations.crd.projectcalico.org default", "patch felixconfigurations.crd.projectcalico.org default",
				"patch daemonsets.apps calico-node"}},
		{name: "manifest_no_restart", cl: calicoCluster("manifest", kube.Calico{ConfigMap: map[string]string{"veth_mtu": "0"}, DaemonSet: "kube-system/calico-node"}),
			want: []string{"get configmaps calico-config", "patch configmaps calico-config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perms, err := Permissions(tc.cl, tc.restart)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range perms {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("permissions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	if _, err := Permissions(&kube.Cluster{CNI: kube.CNI{Name: "cilium"}}, true); err == nil {
		t.Error("permissions for a cluster without Calico: no error")
	}
}
