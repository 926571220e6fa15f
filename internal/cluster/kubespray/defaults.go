package kubespray

// Defaults are the Kubespray role defaults podpath relies on, copied from
// kubernetes-sigs/kubespray 46dbdd39 (the fixtures in shared/fixtures/kubespray,
// file:line noted per entry). TestDefaultsMatchKubespray checks each entry
// against those files, so a Kubespray refresh that changes one fails loudly.
// Values keep Kubespray's types: global_as_num is the string "64512" there.
var Defaults = map[string]any{
	// roles/kubespray_defaults/defaults/main/main.yml (kubespray_defaults.main.yml)
	"kube_proxy_mode":               "ipvs",                                              // :34
	"kube_network_plugin":           "calico",                                            // :216
	"calico_datastore":              "kdd",                                               // :248
	"kube_service_addresses":        "10.233.0.0/18",                                     // :251
	"kube_pods_subnet":              "10.233.64.0/18",                                    // :256
	"kube_network_node_prefix":      24,                                                  // :273
	"ipv4_stack":                    true,                                                // :279
	"ipv6_stack":                    "{{ enable_dual_stack_networks | default(false) }}", // :281
	"kube_service_addresses_ipv6":   "fd85:ee78:d8a6:8607::1000/116",                     // :286
	"kube_pods_subnet_ipv6":         "fd85:ee78:d8a6:8607::1:0000/112",                   // :292
	"kube_network_node_prefix_ipv6": 120,                                                 // :297
	"enable_network_policy":         true,                                                // :463

	// roles/network_plugin/calico_defaults/defaults/main.yml (calico_defaults.main.yml)
	"calico_cni_name":                    "k8s-pod-network", // :3
	"nat_outgoing":                       true,              // :6
	"nat_outgoing_ipv6":                  false,             // :7
	"calico_pool_name":                   "default-pool",    // :10
	"calico_ipip_mode":                   "Never",           // :14
	"calico_vxlan_mode":                  "Always",          // :15
	"calico_pool_blocksize":              26,                // :18
	"calico_ipip_mode_ipv6":              "Never",           // :21
	"calico_vxlan_mode_ipv6":             "Always",          // :22
	"calico_pool_blocksize_ipv6":         122,               // :25
	"calico_network_backend":             "vxlan",           // :28
	"global_as_num":                      "64512",           // :33
	"calico_bpf_enabled":                 false,             // :47
	"calico_vxlan_vni":                   4096,              // :67
	"calico_vxlan_port":                  4789,              // :70
	"calico_felix_prometheusmetricsport": 9091,              // :74
	"calico_iptables_backend":            "Auto",            // :99
	"calico_nftable_mode":                "Disabled",        // :103
	"calico_wireguard_enabled":           false,             // :106
	"typha_enabled":                      false,             // :131 (also kubespray_defaults.main.yml:749)
	"calico_bgp_listen_port":             179,               // :148
	"calico_ipam_host_local":             false,             // :168

	// Not in any defaults file: Kubespray's templates and tasks supply these
	// with `| default(...)`. The fixtures state them only in comments, which
	// the test checks instead.
	"kubelet_max_pods":      110,                           // kubespray_defaults.main.yml:260 "defaults to 110"
	"calico_pool_cidr":      "{{ kube_pods_subnet }}",      // k8s-net-calico.yml:25 "defaults to kube_pods_subnet"
	"calico_pool_cidr_ipv6": "{{ kube_pods_subnet_ipv6 }}", // k8s-net-calico.yml:28 "Defaults to kube_pods_subnet_ipv6"
}

// commentedDefaults are the Defaults entries no defaults file sets, with the
// fixture text that states each one (see TestDefaultsMatchKubespray).
var commentedDefaults = map[string]struct{ file, text string }{
	"kubelet_max_pods":      {"kubespray_defaults.main.yml", "the kubelet_max_pods variable which defaults to 110"},
	"calico_pool_cidr":      {"k8s-net-calico.yml", "defaults to kube_pods_subnet otherwise"},
	"calico_pool_cidr_ipv6": {"k8s-net-calico.yml", "Defaults to kube_pods_subnet_ipv6 if not set"},
}

// kubesprayGroups are the groups Kubespray's playbooks use. A host in any
// other group is valid Ansible, but often a typo, so it earns a warning.
var kubesprayGroups = map[string]bool{
	"all": true, "ungrouped": true,
	"kube_control_plane": true, "kube_node": true, "etcd": true, "k8s_cluster": true,
	"calico_rr": true, "bastion": true, "no_floating": true,
}

// legacyGroups are the old group names Kubespray's dynamic_groups role still
// maps to the new ones (roles/dynamic_groups/tasks/main.yml).
var legacyGroups = map[string]string{
	"kube-master": "kube_control_plane",
	"kube-node":   "kube_node",
	"calico-rr":   "calico_rr",
	"no-floating": "no_floating",
}

// k8sClusterMembers are the groups dynamic_groups always folds into
// k8s_cluster, whether or not the inventory defines k8s_cluster itself.
var k8sClusterMembers = []string{"kube_control_plane", "kube_node", "calico_rr"}
