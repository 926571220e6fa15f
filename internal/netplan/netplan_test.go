package netplan

import (
	"strings"
	"testing"

	"podpath/internal/model"
)

// Kubespray's defaults: VXLAN Always, IPIP Never, 10.233.64.0/18 in /26 blocks.
func defaults() Input {
	return Input{PodCIDR: "10.233.64.0/18", ServiceCIDR: "10.233.0.0/18", IPv4: true, BlockSize: 26, BlockSizeV6: 122,
		MaxPods: 110, Backend: "vxlan", VXLANMode: "Always", IPIPMode: "Never", UnderlayMTU: 1500,
		Hosts: []Host{{"node1", "192.168.10.11"}, {"node2", "192.168.10.12"}, {"node3", "192.168.10.13"}}}
}

func ids(fs []model.Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.ID+"/"+f.Severity)
	}
	return strings.Join(s, " ")
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Input)
		want    string // the first finding, id/severity
		title   []string
		mtu     int
		noError bool
	}{
		{name: "kubespray_defaults", mutate: func(*Input) {}, want: "plan-summary/info", title: []string{"calico_mtu: 1450"}, mtu: 1450, noError: true},
		{name: "pods_overlap_hosts_network", mutate: func(in *Input) { in.PodCIDR = "192.168.0.0/16"; in.NodeCIDRs = []string{"192.168.10.0/24"} },
			want: "cidr-overlap/error", title: []string{"kube_pods_subnet 192.168.0.0/16", "the hosts' network 192.168.10.0/24"}, mtu: 1450},
		{name: "pods_overlap_services", mutate: func(in *Input) { in.ServiceCIDR = "10.233.64.0/24" },
			want: "cidr-overlap/error", title: []string{"kube_pods_subnet 10.233.64.0/18", "kube_service_addresses 10.233.64.0/24"}, mtu: 1450},
		{name: "host_inside_pods", mutate: func(in *Input) { in.Hosts[1].Address = "10.233.70.5" },
			want: "cidr-overlap/error", title: []string{"kube_pods_subnet 10.233.64.0/18", "node2", "10.233.70.5"}, mtu: 1450},
		{name: "300_nodes_on_a_18", mutate: func(in *Input) { in.Nodes = 300 },
			want: "ipam-block-exhaustion/warning", title: []string{"300 nodes, 256 blocks"}, mtu: 1450, noError: true},
		{name: "150_full_nodes", mutate: func(in *Input) { in.Nodes = 150 },
			want: "ipam-block-exhaustion/warning", title: []string{"300 blocks needed at kubelet_max_pods, 256 available"}, mtu: 1450, noError: true},
		{name: "ipip_and_vxlan", mutate: func(in *Input) { in.IPIPMode = "Always" }, want: "encap-conflict/error", mtu: 1450},
		{name: "veth_mtu_alone", mutate: func(in *Input) { in.VethMTU = 1440 }, want: "kubespray-veth-mtu-ignored/warning", title: []string{"calico_veth_mtu 1440"}, mtu: 1450, noError: true},
		{name: "mtu_too_large", mutate: func(in *Input) { in.CalicoMTU = 1500 }, want: "mtu-too-large/error", title: []string{"calico_mtu 1500", "1500-byte underlay with vxlan"}, mtu: 1450},
		{name: "ipip_jumbo", mutate: func(in *Input) {
			in.Backend, in.VXLANMode, in.IPIPMode, in.UnderlayMTU = "bird", "Never", "Always", 9000
		},
			want: "plan-summary/info", title: []string{"calico_mtu: 8980"}, mtu: 8980, noError: true},
		{name: "bgp_without_encap", mutate: func(in *Input) { in.Backend, in.VXLANMode = "bird", "Never" }, want: "plan-summary/info", mtu: 1500, noError: true},
		{name: "ipv6_only_vxlan_takes_70", mutate: func(in *Input) {
			in.IPv4, in.IPv6, in.PodCIDR, in.PodCIDRv6, in.ServiceCIDR = false, true, "", "fd85:ee78:d8a6:8607::1:0/112", "fd85:ee78:d8a6:8607::1000/116"
			in.Hosts = []Host{{"node1", "fd00:10::11"}, {"node2", "fd00:10::12"}}
		}, want: "plan-summary/info", title: []string{"calico_mtu: 1430"}, mtu: 1430, noError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := defaults()
			tc.mutate(&in)
			r, err := Check(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Findings) == 0 || r.Findings[0].ID+"/"+r.Findings[0].Severity != tc.want {
				t.Fatalf("findings %s; want first %s", ids(r.Findings), tc.want)
			}
			for _, w := range tc.title {
				if !strings.Contains(r.Findings[0].Title, w) {
					t.Errorf("title %q lacks %q", r.Findings[0].Title, w)
				}
			}
			if r.RecommendedMTU != tc.mtu {
				t.Errorf("recommended MTU %d; want %d", r.RecommendedMTU, tc.mtu)
			}
			for _, f := range r.Findings {
				if tc.noError && f.Severity == "error" {
					t.Errorf("unexpected error finding %s: %s", f.ID, f.Title)
				}
			}
		})
	}
}

// The block numbers are said, so a reader can check them.
func TestBlockNumbers(t *testing.T) {
	in := defaults()
	in.Nodes = 300
	r, _ := Check(in)
	ev := strings.Join(r.Findings[0].Evidence, " ")
	for _, w := range []string{"300 nodes need 300 /26 blocks (64 addresses each)", "600 when every node runs kubelet_max_pods 110", "10.233.64.0/18 holds 256"} {
		if !strings.Contains(ev, w) {
			t.Errorf("evidence %q lacks %q", ev, w)
		}
	}
	if r.Findings[0].Remedy == nil || !strings.Contains(r.Findings[0].Remedy.Summary, "/17 or wider") || !strings.Contains(r.Findings[0].Remedy.Summary, "calico_pool_blocksize 27") {
		t.Errorf("remedy %+v; want a /17 pool suggested", r.Findings[0].Remedy)
	}
}

func TestCheckErrors(t *testing.T) {
	in := defaults()
	in.PodCIDR = "10.233.64.0/33"
	if _, err := Check(in); err == nil || !strings.Contains(err.Error(), "kube_pods_subnet") {
		t.Errorf("bad CIDR: %v", err)
	}
	in = defaults()
	in.BlockSize = 16
	if _, err := Check(in); err == nil || !strings.Contains(err.Error(), "calico_pool_blocksize 16") {
		t.Errorf("block larger than the pool: %v", err)
	}
}
