package netplan

import (
	"fmt"
	"slices"

	"podpath/internal/calico"
)

// CheckGiven refuses values of in out of range or spelled in a way
// Kubespray and Calico do not accept. It checks only the values given
// says were given, and names them by the plan command's flags.
func CheckGiven(in Input, given func(flag string) bool) error {
	set := given
	mtu := func(flag string, v, lo, hi int) error {
		if set(flag) && (v < lo || v > hi) {
			return fmt.Errorf("--%s %d: must be between %d and %d", flag, v, lo, hi)
		}
		return nil
	}
	if err := mtu("underlay-mtu", in.UnderlayMTU, calico.MinMTUv4, 65535); err != nil {
		return err
	}
	if err := mtu("calico-mtu", in.CalicoMTU, calico.MinMTUv4, calico.MaxMTU); err != nil {
		return err
	}
	if err := mtu("calico-veth-mtu", in.VethMTU, calico.MinMTUv4, calico.MaxMTU); err != nil {
		return err
	}
	if set("nodes") && in.Nodes < 1 {
		return fmt.Errorf("--nodes %d: must be 1 or more", in.Nodes)
	}
	if set("backend") && !slices.Contains(calico.KubesprayBackends, in.Backend) {
		return fmt.Errorf("--backend %q: use vxlan, bird or none", in.Backend)
	}
	for _, m := range []struct{ flag, v string }{{"vxlan-mode", in.VXLANMode}, {"ipip-mode", in.IPIPMode}} {
		if set(m.flag) && !slices.Contains(calico.EncapModes, m.v) {
			return fmt.Errorf("--%s %q: use Always, CrossSubnet or Never", m.flag, m.v)
		}
	}
	return nil
}
