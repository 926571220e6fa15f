package remedy

// This file: where the Pod MTU lives in a cluster, by install type — the
// operator's Installation, the manifest's calico-config, FelixConfiguration
// fields that are set, calico-node's environment (Kubespray).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"podpath/internal/cluster/kube"
	"podpath/internal/deploy"
)

// ObjectChange is one patch of a cluster object.
type ObjectChange struct {
	What      string // as a user names it: "Installation default spec.calicoNetwork.mtu"
	GVR       schema.GroupVersionResource
	Namespace string
	Name      string
	PatchType types.PatchType
	Patch     []byte
	Revert    []byte // the patch that puts the previous value back
	Old, New  string // the field's value before and after ("" = unset)
}

// Change is everything an MTU change touches.
type Change struct {
	MTU      int
	Install  string
	Objects  []ObjectChange
	File     *FileChange // Kubespray inventory, with --kubespray-inventory
	Warnings []string
	// Inventory: the install is Kubespray's, whose inventory must change
	// too or its next run reverts the cluster's objects.
	Inventory bool
	// DaemonSet is calico-node (namespace/name): restarted so Felix and
	// new Pods pick the value up.
	DaemonSet string
}

var (
	installationGVR = schema.GroupVersionResource{Group: "operator.tigera.io", Version: "v1", Resource: "installations"}
	configMapGVR    = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	daemonSetGVR    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
)

// IPv6 says whether the cluster has an enabled IPv6 pool.
func IPv6(cl *kube.Cluster) bool {
	if cl.Calico == nil {
		return false
	}
	for _, p := range cl.Calico.IPPools {
		if pr, err := netip.ParsePrefix(p.CIDR); err == nil && pr.Addr().Is6() && !p.Disabled {
			return true
		}
	}
	return false
}

// ClusterChange says which objects carry the Pod MTU in this install and how
// to set them to mtu.
func ClusterChange(cl *kube.Cluster, mtu int) (*Change, error) {
	p, err := clusterChange(cl, mtu)
	if err != nil {
		return nil, err
	}
	// Asking for the value in place changes nothing and restarts nothing.
	p.Objects = slices.DeleteFunc(p.Objects, func(c ObjectChange) bool { return c.Old == c.New })
	return p, nil
}

// Permissions is what fix needs beyond the doctor's role, whatever the
// MTU: get and patch on every object that carries it in this install, and
// patch on calico-node when podpath restarts it (restart, and not an
// operator install: the operator rolls its own). Checked before anything
// runs, so that a fix the caller may not make fails at once.
func Permissions(cl *kube.Cluster, restart bool) ([]deploy.Permission, error) {
	p, err := clusterChange(cl, 0)
	if err != nil {
		return nil, err
	}
	var out []deploy.Permission
	add := func(perm deploy.Permission) {
		if !slices.Contains(out, perm) {
			out = append(out, perm)
		}
	}
	for _, c := range p.Objects {
		for _, verb := range []string{"get", "patch"} {
			add(deploy.Permission{Verb: verb, Group: c.GVR.Group, Resource: c.GVR.Resource, Namespace: c.Namespace, Name: c.Name})
		}
	}
	if restart && p.Install != "operator" && p.DaemonSet != "" {
		ns, name, _ := strings.Cut(p.DaemonSet, "/")
		add(deploy.Permission{Verb: "patch", Group: "apps", Resource: "daemonsets", Namespace: ns, Name: name})
	}
	return out, nil
}

// clusterChange is every object that carries the MTU in this install, set to
// mtu, values already in place included.
func clusterChange(cl *kube.Cluster, mtu int) (*Change, error) {
	cal := cl.Calico
	if cal == nil || cl.CNI.Name != "calico" {
		return nil, fmt.Errorf("the cluster runs %s, not Calico: podpath fixes Calico's MTU only", cl.CNI.Name)
	}
	p := &Change{MTU: mtu, Install: cl.CNI.Install, DaemonSet: cal.DaemonSet}
	for _, pool := range cal.IPPools {
		if pool.MTU > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("IPPool %s carries mtu %d: Calico has no such field and ignores it; remove it to avoid confusion", pool.Name, pool.MTU))
		}
	}
	switch cl.CNI.Install {
	case "operator":
		p.Objects = append(p.Objects, mergeChange("Installation default spec.calicoNetwork.mtu", installationGVR, "", "default",
			[]string{"spec", "calicoNetwork", "mtu"}, intOrUnset(cal.InstallMTU), mtu, true))
		// The operator owns calico-node and FelixConfiguration's MTU fields.
		return p, nil
	case "manifest":
		p.Objects = append(p.Objects, mergeChange("ConfigMap kube-system/calico-config veth_mtu", configMapGVR, "kube-system", "calico-config",
			[]string{"data", "veth_mtu"}, cal.ConfigMap["veth_mtu"], mtu, false))
	case "kubespray":
		p.Inventory = true
		// calico-node's environment wins over FelixConfiguration: set it where it is set.
		for _, e := range cal.NodeEnvMTU {
			p.Objects = append(p.Objects, envChange(cal.DaemonSet, e, mtu))
		}
		// With calico_mtu set, Kubespray writes it into the CNI configuration:
		// that is what new Pods get.
		if c, ok := cniChange(cal.ConfigMap["cni_network_config"], mtu); ok {
			p.Objects = append(p.Objects, c)
		}
	}
	felixSet := false
	for field, v := range cal.FelixMTUs {
		felixSet = true
		p.Objects = append(p.Objects, mergeChange("FelixConfiguration default spec."+field, cal.FelixGVR(), "", "default",
			[]string{"spec", field}, strconv.Itoa(v), mtu, true))
	}
	// Kubespray without calico_mtu: Felix's tunnel MTU is the lever in the
	// cluster (new Pods follow it through /var/lib/calico/mtu). Without an
	// encapsulation there is no such field: only calico_mtu sets it.
	if b := cal.Backend(); cl.CNI.Install == "kubespray" && !felixSet && len(p.Objects) == 0 && b != "bgp" {
		fields := []string{b + "MTU"}
		if IPv6(cl) && b != "ipip" { // IPIP carries IPv4 only
			// Felix auto-detects IPv6's tunnel MTU apart (70 bytes off
			// with VXLAN); with an IPv6 pool it takes part in the Pods'.
			fields = append(fields, b+"MTUV6")
		}
		for _, f := range fields {
			p.Objects = append(p.Objects, mergeChange("FelixConfiguration default spec."+f, cal.FelixGVR(), "", "default",
				[]string{"spec", f}, "", mtu, true))
		}
	}
	slices.SortFunc(p.Objects, func(a, b ObjectChange) int { return strings.Compare(a.What, b.What) })
	return p, nil
}

func intOrUnset(v int) string {
	if v == 0 {
		return ""
	}
	return strconv.Itoa(v)
}

// mergeChange sets path to mtu with a JSON merge patch (number or string),
// and keeps the patch that restores old.
func mergeChange(what string, gvr schema.GroupVersionResource, ns, name string, path []string, old string, mtu int, number bool) ObjectChange {
	val := func(s string) any {
		if s == "" {
			return nil // merge patch: null removes the field
		}
		if number {
			n, err := strconv.Atoi(s)
			if err == nil {
				return n
			}
		}
		return s
	}
	newVal := strconv.Itoa(mtu)
	return ObjectChange{What: what, GVR: gvr, Namespace: ns, Name: name, PatchType: types.MergePatchType,
		Patch: nest(path, val(newVal)), Revert: nest(path, val(old)), Old: old, New: newVal}
}

func nest(path []string, v any) []byte {
	for i := len(path) - 1; i >= 0; i-- {
		v = map[string]any{path[i]: v}
	}
	b, _ := json.Marshal(v)
	return b
}

// cniChange sets the calico plugin's "mtu" in calico-config's CNI
// configuration, when it has one.
func cniChange(conf string, mtu int) (ObjectChange, bool) {
	var c map[string]any
	if json.Unmarshal([]byte(conf), &c) != nil {
		return ObjectChange{}, false
	}
	plugins, _ := c["plugins"].([]any)
	old := ""
	for _, pl := range plugins {
		m, _ := pl.(map[string]any)
		if v, ok := m["mtu"].(float64); ok && m["type"] == "calico" {
			old = strconv.Itoa(int(v))
			m["mtu"] = mtu
		}
	}
	if old == "" {
		return ObjectChange{}, false
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return ObjectChange{}, false
	}
	return ObjectChange{What: "ConfigMap kube-system/calico-config cni_network_config mtu", GVR: configMapGVR, Namespace: "kube-system", Name: "calico-config",
		PatchType: types.MergePatchType, Patch: nest([]string{"data", "cni_network_config"}, string(b)),
		Revert: nest([]string{"data", "cni_network_config"}, conf), Old: old, New: strconv.Itoa(mtu)}, true
}

// envChange sets one environment variable of calico-node's container with
// a JSON patch at its index (the DaemonSet template changes: it rolls).
func envChange(ds string, e kube.EnvMTU, mtu int) ObjectChange {
	ns, name, _ := strings.Cut(ds, "/")
	path := fmt.Sprintf("/spec/template/spec/containers/%d/env/%d/value", e.Container, e.Index)
	patch := func(v string) []byte {
		b, _ := json.Marshal([]map[string]any{{"op": "test", "path": path[:strings.LastIndex(path, "/")] + "/name", "value": e.Name}, {"op": "replace", "path": path, "value": v}})
		return b
	}
	return ObjectChange{What: fmt.Sprintf("DaemonSet %s env %s", ds, e.Name), GVR: daemonSetGVR, Namespace: ns, Name: name,
		PatchType: types.JSONPatchType, Patch: patch(strconv.Itoa(mtu)), Revert: patch(e.Value), Old: e.Value, New: strconv.Itoa(mtu)}
}
