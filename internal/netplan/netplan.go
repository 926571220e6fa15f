// Package netplan checks a cluster's network plan before it exists: address
// ranges, Calico's IPAM blocks, encapsulation and MTU, as Kubespray would
// set them up. It is pure: the inventory reader and the CLI feed it.
package netplan

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	"podpath/internal/model"

	"podpath/internal/calico"
)

// Finding IDs of the plan (DESIGN.md's list, plus the plan's own).
const (
	CIDROverlap             = "cidr-overlap"
	KubesprayVethMTUIgnored = "kubespray-veth-mtu-ignored"
	BlockExhaustion         = "ipam-block-exhaustion"
	EncapConflict           = "encap-conflict"
	MTUTooLarge             = "mtu-too-large"
	IPv6Plan                = "ipv6-plan"
	PlanSummary             = "plan-summary"
)

// BlockWarnRatio: above this share of the pool's blocks in use by one block
// per node, growth soon exhausts it.
const BlockWarnRatio = 0.8

// Host is a future node.
type Host struct {
	Name    string
	Address string
}

// Input is the plan as Kubespray's variables state it.
type Input struct {
	PodCIDR, ServiceCIDR     string
	PodCIDRv6, ServiceCIDRv6 string
	IPv4, IPv6               bool
	NodeCIDRs                []string // the hosts' own networks, when known
	Hosts                    []Host
	Nodes                    int // defaults to len(Hosts)
	BlockSize, BlockSizeV6   int
	MaxPods                  int
	Backend                  string // Kubespray's calico_network_backend: vxlan | bird | none
	VXLANMode, IPIPMode      string // Always | CrossSubnet | Never
	WireGuard                bool
	UnderlayMTU              int
	CalicoMTU, VethMTU       int                          // 0: unset
	Where                    func(variable string) string // "group_vars/…:41" or "default"; may be nil
}

// Result is the plan's verdict.
type Result struct {
	Findings       []model.Finding
	Encapsulation  string // vxlan | ipip | wireguard | none
	RecommendedMTU int    // calico_mtu for this underlay and encapsulation
	Blocks         int    // /BlockSize blocks in the pool
}

// Encapsulation is what Pod packets between nodes are wrapped in.
func (in Input) Encapsulation() string {
	switch {
	case in.WireGuard:
		return "wireguard"
	case in.Backend == "vxlan" || (in.VXLANMode != "" && in.VXLANMode != "Never"):
		return "vxlan"
	case in.IPIPMode != "" && in.IPIPMode != "Never":
		return "ipip"
	}
	return "none"
}

func (in Input) where(v string) string {
	if in.Where == nil {
		return v
	}
	return fmt.Sprintf("%s (%s)", v, in.Where(v))
}

// Check runs every plan check.
func Check(in Input) (*Result, error) {
	if in.Nodes == 0 {
		in.Nodes = len(in.Hosts)
	}
	if in.UnderlayMTU == 0 {
		in.UnderlayMTU = 1500
	}
	r := &Result{Encapsulation: in.Encapsulation()}
	overhead := calico.Overhead(r.Encapsulation)
	if in.IPv6 && !in.IPv4 { // IPv6 only: the nodes, and the tunnels between them, are IPv6
		overhead = calico.OverheadIPv6(r.Encapsulation)
	}
	r.RecommendedMTU = in.UnderlayMTU - overhead
	if err := overlaps(in, r); err != nil {
		return nil, err
	}
	if in.IPv4 || !in.IPv6 {
		if err := blocks(in, r, in.PodCIDR, in.BlockSize, "kube_pods_subnet", "calico_pool_blocksize"); err != nil {
			return nil, err
		}
	}
	if in.IPv6 {
		if err := blocks(in, r, in.PodCIDRv6, in.BlockSizeV6, "kube_pods_subnet_ipv6", "calico_pool_blocksize_ipv6"); err != nil {
			return nil, err
		}
		if r.RecommendedMTU < 1280 {
			r.Findings = append(r.Findings, model.Finding{ID: IPv6Plan, Severity: model.SeverityError,
				Title:   fmt.Sprintf("IPv6 needs an MTU of at least 1280; this underlay leaves %d", r.RecommendedMTU),
				Summary: "IPv6 links must carry 1280 bytes: raise the underlay MTU or use an encapsulation with less overhead."})
		}
	}
	encap(in, r)
	mtu(in, r, overhead)
	r.Findings = append(r.Findings, model.Finding{ID: PlanSummary, Severity: model.SeverityInfo,
		Title: fmt.Sprintf("Recommended calico_mtu: %d", r.RecommendedMTU),
		Summary: fmt.Sprintf("Underlay MTU %d less %d bytes of %s encapsulation. Set calico_mtu: %d in group_vars/k8s_cluster/k8s-net-calico.yml (and calico_veth_mtu only if tunnels must differ).",
			in.UnderlayMTU, overhead, r.Encapsulation, r.RecommendedMTU),
		Remedy: &model.Remedy{MTU: r.RecommendedMTU, Summary: fmt.Sprintf("calico_mtu: %d", r.RecommendedMTU)}})
	sort.SliceStable(r.Findings, func(i, j int) bool {
		return severity(r.Findings[i].Severity) < severity(r.Findings[j].Severity)
	})
	return r, nil
}

func severity(s string) int {
	switch s {
	case model.SeverityError:
		return 0
	case model.SeverityWarning:
		return 1
	}
	return 2
}

type namedRange struct {
	name   string
	prefix netip.Prefix
}

// overlaps: Pod, Service and node networks must be disjoint, or traffic to
// a Pod or Service is routed to a host (or the other way round).
func overlaps(in Input, r *Result) error {
	var ranges []namedRange
	add := func(name, cidr string) error {
		if cidr == "" {
			return nil
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("%s: %q is not a CIDR", in.where(name), cidr)
		}
		ranges = append(ranges, namedRange{in.where(name) + " " + p.Masked().String(), p.Masked()})
		return nil
	}
	for _, v := range [][2]string{{"kube_pods_subnet", in.PodCIDR}, {"kube_service_addresses", in.ServiceCIDR}} {
		if err := add(v[0], v[1]); err != nil {
			return err
		}
	}
	if in.IPv6 {
		for _, v := range [][2]string{{"kube_pods_subnet_ipv6", in.PodCIDRv6}, {"kube_service_addresses_ipv6", in.ServiceCIDRv6}} {
			if err := add(v[0], v[1]); err != nil {
				return err
			}
		}
	}
	for _, c := range in.NodeCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("node network %q is not a CIDR", c)
		}
		ranges = append(ranges, namedRange{"the hosts' network " + p.Masked().String(), p.Masked()})
	}
	for i := range ranges {
		for j := i + 1; j < len(ranges); j++ {
			a, b := ranges[i], ranges[j]
			if a.prefix.Overlaps(b.prefix) {
				r.Findings = append(r.Findings, model.Finding{ID: CIDROverlap, Severity: model.SeverityError,
					Title:   fmt.Sprintf("%s overlaps %s", a.name, b.name),
					Summary: "Address ranges that overlap make traffic to Pods, Services or hosts go to the wrong place: pick disjoint ranges before installing (they cannot be changed afterwards without rebuilding).",
					Remedy:  &model.Remedy{Summary: "Change kube_pods_subnet or kube_service_addresses in group_vars/k8s_cluster/k8s-cluster.yml to a range no host or other range uses."}})
			}
		}
	}
	// Host addresses inside the Pod or Service range.
	for _, h := range in.Hosts {
		a, err := netip.ParseAddr(h.Address)
		if err != nil {
			continue // a DNS name: nothing to compare
		}
		for _, rg := range ranges[:min(len(ranges), rangesOfCluster(in))] {
			if rg.prefix.Contains(a) {
				r.Findings = append(r.Findings, model.Finding{ID: CIDROverlap, Severity: model.SeverityError,
					Title:   fmt.Sprintf("%s contains host %s's address %s", rg.name, h.Name, a),
					Summary: "A host address inside the Pod or Service range: traffic to that host is routed into the cluster network.",
					Nodes:   []string{h.Name},
					Remedy:  &model.Remedy{Summary: "Pick a kube_pods_subnet / kube_service_addresses outside the hosts' network."}})
			}
		}
	}
	return nil
}

func rangesOfCluster(in Input) int {
	n := 0
	for _, c := range []string{in.PodCIDR, in.ServiceCIDR} {
		if c != "" {
			n++
		}
	}
	if in.IPv6 {
		for _, c := range []string{in.PodCIDRv6, in.ServiceCIDRv6} {
			if c != "" {
				n++
			}
		}
	}
	return n
}

// blocks: Calico's IPAM hands each node /BlockSize blocks from the pool; a
// pool has a fixed number of them, and a node that gets none borrows single
// addresses from other nodes' blocks (more routes, surprises).
func blocks(in Input, r *Result, cidr string, size int, poolVar, sizeVar string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("%s: %q is not a CIDR", in.where(poolVar), cidr)
	}
	if size < p.Bits() || size > p.Addr().BitLen() {
		return fmt.Errorf("%s %d: must be between the pool's /%d and /%d", in.where(sizeVar), size, p.Bits(), p.Addr().BitLen())
	}
	n := 1 << min(size-p.Bits(), 30)
	per := 1 << min(p.Addr().BitLen()-size, 30)
	perNode := 1
	if in.MaxPods > per {
		perNode = int(math.Ceil(float64(in.MaxPods) / float64(per)))
	}
	if p.Addr().Is4() {
		r.Blocks = n // the IPv4 pool's, which the text report shows
	}
	full := in.Nodes * perNode // every node running kubelet_max_pods
	numbers := fmt.Sprintf("%d nodes need %d /%d blocks (%d addresses each), %d when every node runs kubelet_max_pods %d; %s %s holds %d",
		in.Nodes, in.Nodes, size, per, full, in.MaxPods, poolVar, p, n)
	grow := func(need int) string {
		bits := int(math.Ceil(math.Log2(float64(need) / float64(n))))
		return fmt.Sprintf("Use a larger %s (/%d or wider) or smaller blocks (%s %d).", poolVar, p.Bits()-bits, sizeVar, size+bits)
	}
	switch {
	case in.Nodes > n:
		r.Findings = append(r.Findings, model.Finding{ID: BlockExhaustion, Severity: model.SeverityWarning,
			Title:    fmt.Sprintf("The Pod pool runs out of IPAM blocks: %d nodes, %d blocks", in.Nodes, n),
			Summary:  "Nodes that get no block of their own borrow addresses from other nodes' blocks: more routes, and Pods fail to start once the pool is full.",
			Evidence: []string{numbers},
			Remedy:   &model.Remedy{Summary: grow(in.Nodes)}})
	case full > n:
		r.Findings = append(r.Findings, model.Finding{ID: BlockExhaustion, Severity: model.SeverityWarning,
			Title:    fmt.Sprintf("Full nodes exhaust the Pod pool: %d blocks needed at kubelet_max_pods, %d available", full, n),
			Summary:  "One block per node fits, but nodes running many Pods take a second block and the pool runs out.",
			Evidence: []string{numbers},
			Remedy:   &model.Remedy{Summary: grow(full)}})
	case float64(full) > BlockWarnRatio*float64(n):
		r.Findings = append(r.Findings, model.Finding{ID: BlockExhaustion, Severity: model.SeverityInfo,
			Title:    fmt.Sprintf("The Pod pool is %d%% used when nodes are full", 100*full/n),
			Summary:  "Little room to grow: new nodes will soon find no block.",
			Evidence: []string{numbers}})
	}
	return nil
}

// encap: IPIP and VXLAN on at once is not a Calico configuration.
func encap(in Input, r *Result) {
	if in.VXLANMode != "" && in.VXLANMode != "Never" && in.IPIPMode != "" && in.IPIPMode != "Never" {
		r.Findings = append(r.Findings, model.Finding{ID: EncapConflict, Severity: model.SeverityError,
			Title:    fmt.Sprintf("calico_ipip_mode %s and calico_vxlan_mode %s are both on", in.IPIPMode, in.VXLANMode),
			Summary:  "An IP pool uses one encapsulation: Calico refuses a pool with both IPIP and VXLAN enabled.",
			Evidence: []string{in.where("calico_ipip_mode") + " = " + in.IPIPMode, in.where("calico_vxlan_mode") + " = " + in.VXLANMode},
			Remedy:   &model.Remedy{Summary: "Set one of them to Never (Kubespray's default is VXLAN Always, IPIP Never)."}})
	}
	if in.Backend == "bird" && in.VXLANMode != "" && in.VXLANMode != "Never" {
		r.Findings = append(r.Findings, model.Finding{ID: EncapConflict, Severity: model.SeverityWarning,
			Title:   "calico_network_backend bird with calico_vxlan_mode " + in.VXLANMode,
			Summary: "BIRD distributes routes; VXLAN pools do not need it. Kubespray's VXLAN set-up uses calico_network_backend: vxlan.",
			Remedy:  &model.Remedy{Summary: "calico_network_backend: vxlan with VXLAN, bird with IPIP or no encapsulation."}})
	}
}

// mtu: what Kubespray does with calico_mtu / calico_veth_mtu, and whether
// the planned MTU fits the underlay.
func mtu(in Input, r *Result, overhead int) {
	if in.VethMTU > 0 && in.CalicoMTU == 0 {
		r.Findings = append(r.Findings, model.Finding{ID: KubesprayVethMTUIgnored, Severity: model.SeverityWarning,
			Title:    fmt.Sprintf("calico_veth_mtu %d is ignored without calico_mtu", in.VethMTU),
			Summary:  "Kubespray uses calico_veth_mtu only when calico_mtu is also set: alone it changes nothing, and Calico auto-detects the MTU from the host interface (not the path).",
			Evidence: []string{in.where("calico_veth_mtu") + " = " + fmt.Sprint(in.VethMTU), "calico_mtu: unset"},
			Remedy:   &model.Remedy{MTU: r.RecommendedMTU, Summary: fmt.Sprintf("Set calico_mtu: %d (and drop calico_veth_mtu unless tunnels must differ).", r.RecommendedMTU)}})
	}
	for _, v := range []struct {
		name string
		val  int
	}{{"calico_mtu", in.CalicoMTU}, {"calico_veth_mtu", in.VethMTU}} {
		if v.val > 0 && v.val > r.RecommendedMTU {
			r.Findings = append(r.Findings, model.Finding{ID: MTUTooLarge, Severity: model.SeverityError,
				Title:    fmt.Sprintf("%s %d is too large for a %d-byte underlay with %s", v.name, v.val, in.UnderlayMTU, r.Encapsulation),
				Summary:  fmt.Sprintf("Pod packets of %d bytes become %d on the wire: larger than the underlay carries. They are dropped (silently, where ICMP is filtered): the seed case of an MTU black hole.", v.val, v.val+overhead),
				Evidence: []string{in.where(v.name) + " = " + fmt.Sprint(v.val), fmt.Sprintf("underlay MTU %d − %s overhead %d = %d", in.UnderlayMTU, r.Encapsulation, overhead, r.RecommendedMTU)},
				Remedy:   &model.Remedy{MTU: r.RecommendedMTU, Summary: fmt.Sprintf("%s: %d", v.name, r.RecommendedMTU)}})
		}
	}
	if strings.EqualFold(in.Backend, "none") && r.Encapsulation == "none" && in.Nodes > 1 {
		r.Findings = append(r.Findings, model.Finding{ID: PlanSummary, Severity: model.SeverityInfo,
			Title:   "No encapsulation and no BGP (calico_network_backend: none)",
			Summary: "The underlay must route every node's Pod blocks itself (static routes or the fabric's BGP)."})
	}
}
