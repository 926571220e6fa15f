package netplan

import "podpath/internal/cluster/kubespray"

// FromKubespray fills in from a Kubespray inventory (Kubespray's defaults
// for what it leaves unset) every field of in whose variable kept does not
// name: those the user gave on the command line. The hosts are the
// inventory's Kubernetes nodes, and Where says which file set each
// variable.
func FromKubespray(in Input, ks *kubespray.Inventory, kept func(variable string) bool) Input {
	for _, h := range ks.Hosts {
		if h.InK8s() {
			in.Hosts = append(in.Hosts, Host{Name: h.Name, Address: h.Address})
		}
	}
	if ks.Source != nil {
		in.Where = func(v string) string {
			if src := ks.Source[v]; src != "" {
				return src
			}
			return "default"
		}
	}
	str := func(dst *string, variable string) {
		if !kept(variable) {
			*dst = ks.String(variable)
		}
	}
	num := func(dst *int, variable string) {
		if !kept(variable) {
			*dst, _ = ks.Int(variable)
		}
	}
	str(&in.PodCIDR, "kube_pods_subnet")
	str(&in.ServiceCIDR, "kube_service_addresses")
	str(&in.Backend, "calico_network_backend")
	str(&in.VXLANMode, "calico_vxlan_mode")
	str(&in.IPIPMode, "calico_ipip_mode")
	num(&in.BlockSize, "calico_pool_blocksize")
	num(&in.MaxPods, "kubelet_max_pods")
	num(&in.CalicoMTU, "calico_mtu")
	num(&in.VethMTU, "calico_veth_mtu")
	in.PodCIDRv6 = ks.String("kube_pods_subnet_ipv6")
	in.ServiceCIDRv6 = ks.String("kube_service_addresses_ipv6")
	in.BlockSizeV6, _ = ks.Int("calico_pool_blocksize_ipv6")
	in.IPv4, in.IPv6 = ks.Bool("ipv4_stack"), ks.Bool("ipv6_stack")
	in.WireGuard = ks.Bool("calico_wireguard_enabled")
	return in
}
