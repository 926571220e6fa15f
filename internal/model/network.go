package model

// Network is what the cluster is configured with, when known: from an
// inventory (its YAML keys) or discovered in the cluster.
type Network struct {
	Backend     string `yaml:"backend,omitempty"` // vxlan | ipip | wireguard | bgp | none
	PodMTU      int    `yaml:"podMTU,omitempty"`  // 0: unknown or auto
	PodCIDR     string `yaml:"podCIDR,omitempty"`
	ServiceCIDR string `yaml:"serviceCIDR,omitempty"`
	// Install is how Calico was installed (operator | manifest | kubespray), when
	// known: the remedy then names the one place the MTU lives.
	Install string `yaml:"install,omitempty"`
	// MTUIfacePattern is Felix's mtuIfacePattern when set (calico-node's
	// FELIX_MTUIFACEPATTERN, else FelixConfiguration default); "": Felix's
	// default.
	MTUIfacePattern string `yaml:"mtuIfacePattern,omitempty"`
	// KubeProxyMode is kube-proxy's mode (iptables | ipvs | nftables),
	// when its configuration was read.
	KubeProxyMode string `yaml:"kubeProxyMode,omitempty"`
	// Sources say where each value was read (cluster discovery).
	Sources []string `yaml:"sources,omitempty"`
}
