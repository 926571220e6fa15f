package preflight

import (
	"fmt"
	"net"
	"slices"
	"strconv"

	"podpath/internal/calico"
	"podpath/internal/cluster/inventory"
	"podpath/internal/cluster/kubespray"
	"podpath/internal/deploy"
	"podpath/internal/netplan"
)

// Load reads the future nodes and the planned network from a podpath
// inventory file or a Kubespray inventory directory (exactly one): their
// agents, roles, the backend (backend overrides the inventory's; default
// vxlan) and the token (tokenFile, else the inventory's). Token, Timeout
// and Say are the caller's to add.
func Load(inventoryFile, kubesprayDir, tokenFile, backend string) (Options, error) {
	if backend != "" && !slices.Contains(calico.KubesprayBackends, backend) {
		return Options{}, fmt.Errorf("--backend %q: use vxlan, bird or none", backend)
	}
	var o Options
	var err error
	switch {
	case (inventoryFile == "") == (kubesprayDir == ""):
		return o, fmt.Errorf("give either --inventory FILE or --kubespray-inventory DIR")
	case inventoryFile != "":
		o, err = fromInventory(inventoryFile, backend)
	default:
		o, err = fromKubespray(kubesprayDir, backend)
	}
	if err != nil {
		return o, err
	}
	o.Token, err = o.Inventory.Token(tokenFile)
	return o, err
}

func fromInventory(path, backend string) (Options, error) {
	inv, err := inventory.Load(path)
	if err != nil {
		return Options{}, err
	}
	o := Options{Inventory: inv, Roles: map[string]Role{}, Backend: backend}
	for _, n := range inv.Nodes {
		o.Roles[n.Name] = Role{ControlPlane: true, Etcd: true} // unknown: check everything
	}
	if o.Backend == "" {
		o.Backend = "vxlan"
	}
	in := netplan.Input{Backend: o.Backend}
	if o.Backend == "vxlan" {
		in.VXLANMode = "Always"
	}
	o.Encap = in.Encapsulation()
	return o, nil
}

// fromKubespray takes the Kubernetes and etcd hosts, each with an agent
// at its address on the agent port, and Kubespray's network variables.
func fromKubespray(dir, backend string) (Options, error) {
	ks, err := kubespray.Load(dir)
	if err != nil {
		return Options{}, err
	}
	inv := &inventory.Inventory{APIVersion: inventory.APIVersion, Kind: inventory.Kind}
	o := Options{Inventory: inv, Roles: map[string]Role{}}
	for _, h := range ks.Hosts {
		if !h.InK8s() && !slices.Contains(h.Groups, "etcd") {
			continue
		}
		if h.Address == "" {
			return o, fmt.Errorf("host %s has no ip, access_ip or ansible_host: preflight needs its address", h.Name)
		}
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: h.Name, Address: h.Address,
			Agent: net.JoinHostPort(h.Address, strconv.Itoa(deploy.AgentPort))})
		o.Roles[h.Name] = Role{ControlPlane: slices.Contains(h.Groups, "kube_control_plane"), Etcd: slices.Contains(h.Groups, "etcd")}
	}
	in := netplan.Input{Backend: ks.String("calico_network_backend"),
		VXLANMode: ks.String("calico_vxlan_mode"), IPIPMode: ks.String("calico_ipip_mode"), WireGuard: ks.Bool("calico_wireguard_enabled")}
	if backend != "" {
		in.Backend = backend
	}
	o.Backend, o.Encap, o.Typha = in.Backend, in.Encapsulation(), ks.Bool("typha_enabled")
	return o, nil
}
