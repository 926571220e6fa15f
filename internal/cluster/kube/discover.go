// Package kube discovers a cluster through its API server: nodes, the CNI
// and how it was installed, and Calico's configuration (client-go, dynamic
// client for Calico's resources in both API groups).
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/cluster/inventory"
)

// Calico's per-node data in KDD mode lives on the Node's annotations.
const (
	AnnotIPv4Address   = "projectcalico.org/IPv4Address"
	AnnotVXLANAddr     = "projectcalico.org/IPv4VXLANTunnelAddr"
	lastAppliedAnnot   = "kubectl.kubernetes.io/last-applied-configuration"
	calicoConfigMap    = "calico-config"
	calicoNodeDS       = "calico-node"
	operatorNamespace  = "calico-system"
	installationName   = "default"
	defaultCalicoGroup = "crd.projectcalico.org"
)

// Node is a Kubernetes node as podpath needs it.
type Node struct {
	Name       string `json:"name"`
	InternalIP string `json:"internalIP"`
	Ready      bool   `json:"ready"`
	// ReadyReason is the Ready condition as kubectl describe shows it.
	ReadyReason string            `json:"readyReason,omitempty"`
	Cordoned    bool              `json:"cordoned"`
	Taints      []string          `json:"taints,omitempty"`
	Calico      map[string]string `json:"calico,omitempty"` // projectcalico.org/* annotations
}

// CNI says which network plugin runs and how it was installed.
type CNI struct {
	Name     string   `json:"name"`              // calico | cilium | flannel | unknown
	Install  string   `json:"install,omitempty"` // Calico: manifest | kubespray | operator
	Evidence []string `json:"evidence"`
}

// IPPool is the part of a Calico IPPool podpath reads.
type IPPool struct {
	Name      string `json:"name"`
	CIDR      string `json:"cidr"`
	BlockSize int    `json:"blockSize"`
	VXLANMode string `json:"vxlanMode"`
	IPIPMode  string `json:"ipipMode"`
	Disabled  bool   `json:"disabled,omitempty"`
	// MTU is an `mtu` field found in the spec or in kubectl's last-applied
	// annotation: Calico has no such field and ignores it.
	MTU int `json:"mtu,omitempty"`
}

// Calico is the Calico configuration of the cluster.
type Calico struct {
	APIGroup  string            `json:"apiGroup"` // crd.projectcalico.org or projectcalico.org
	IPPools   []IPPool          `json:"ipPools"`
	ConfigMap map[string]string `json:"calicoConfig,omitempty"`
	FelixMTUs map[string]int    `json:"felixMTUs,omitempty"` // FelixConfiguration default: ipipMTU, vxlanMTU, … when set
	// MTUIfacePattern is the interfaces Felix detects the host MTU on:
	// calico-node's FELIX_MTUIFACEPATTERN (environment variables win over
	// the datastore in Felix's configuration), else FelixConfiguration
	// default's mtuIfacePattern; "" for Felix's default.
	MTUIfacePattern string          `json:"mtuIfacePattern,omitempty"`
	InstallMTU      int             `json:"installationMTU,omitempty"`
	InstallStatus   int             `json:"installationStatusMTU,omitempty"`
	NodeReady       map[string]bool `json:"calicoNodeReady,omitempty"` // node → its calico-node Pod is Ready
	// DaemonSet is calico-node's DaemonSet (namespace/name).
	DaemonSet string `json:"daemonSet,omitempty"`
	// NodeEnvMTU are calico-node's environment variables that set an MTU
	// (Kubespray renders them from calico_mtu); they win over FelixConfiguration.
	NodeEnvMTU []EnvMTU `json:"nodeEnvMTU,omitempty"`
	// NodePods maps node → its calico-node Pod (namespace/name).
	NodePods map[string]string `json:"calicoNodePods,omitempty"`
	// BGP is BGPConfiguration default and the BGPPeers.
	BGP BGP `json:"bgp"`
	// Blocks maps node → the Pod address blocks affine to it (BlockAffinities).
	Blocks map[string][]string `json:"blocks,omitempty"`
	// LogErrors maps node → recent calico-node log lines that match known
	// errors; LogsUnavailable says why none could be read.
	LogErrors       map[string][]string `json:"logErrors,omitempty"`
	LogsUnavailable string              `json:"logsUnavailable,omitempty"`
}

// EnvMTU is an MTU variable in calico-node's Pod template.
type EnvMTU struct {
	Container int    `json:"container"`
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Value     string `json:"value"`
}

// felixEnv is the environment variable that sets the backend's MTU.
var felixEnv = map[string]string{"vxlan": "FELIX_VXLANMTU", "ipip": "FELIX_IPINIPMTU", "wireguard": "FELIX_WIREGUARDMTU"}

// mtuEnv are calico-node's MTU variables (Felix's and the CNI installer's).
var mtuEnv = map[string]bool{"FELIX_VXLANMTU": true, "FELIX_IPINIPMTU": true, "FELIX_WIREGUARDMTU": true, "FELIX_VXLANMTUV6": true, "FELIX_WIREGUARDMTUV6": true, "CNI_MTU": true}

// FelixGVR is where FelixConfiguration is read and written.
func (c *Calico) FelixGVR() schema.GroupVersionResource {
	if c.APIGroup == "projectcalico.org" {
		return schema.GroupVersionResource{Group: "projectcalico.org", Version: "v3", Resource: "felixconfigurations"}
	}
	return schema.GroupVersionResource{Group: defaultCalicoGroup, Version: "v1", Resource: "felixconfigurations"}
}

// BGP is Calico's BGP configuration.
type BGP struct {
	Configured bool     `json:"configured"` // BGPConfiguration default exists
	ASNumber   int      `json:"asNumber,omitempty"`
	NodeMesh   *bool    `json:"nodeToNodeMesh,omitempty"` // nil: unset (Calico's default: on)
	Peers      []string `json:"peers,omitempty"`          // name (peerIP)
}

// Cluster is what discovery found.
type Cluster struct {
	Nodes  []Node  `json:"nodes"`
	CNI    CNI     `json:"cni"`
	Calico *Calico `json:"calico,omitempty"`
	// KubeProxy is kube-proxy's configuration; nil when not found.
	KubeProxy *KubeProxy `json:"kubeProxy,omitempty"`
	// DNS is the cluster DNS (CoreDNS); nil when not found.
	DNS *DNS `json:"dns,omitempty"`
}

// Backend is the encapsulation the IP pools select: vxlan, ipip or bgp.
func (c *Calico) Backend() string {
	b, _ := c.backend()
	return b
}

// PodMTU is the configured Pod MTU, 0 when Calico auto-detects it.
func (c *Calico) PodMTU() int {
	mtu, _ := c.podMTU()
	return mtu
}

// podMTU is the configured Pod MTU and where it was read, in the order
// Calico's own precedence puts them.
func (c *Calico) podMTU() (int, string) {
	if c.InstallMTU > 0 {
		return c.InstallMTU, "Installation default spec.calicoNetwork.mtu"
	}
	if v, err := strconv.Atoi(c.ConfigMap["veth_mtu"]); err == nil && v > 0 {
		return v, "ConfigMap kube-system/calico-config veth_mtu"
	}
	// Kubespray's calico-config has no veth_mtu: calico_mtu lands in the
	// CNI configuration.
	var cni struct {
		Plugins []struct {
			MTU int `json:"mtu"`
		} `json:"plugins"`
	}
	if json.Unmarshal([]byte(c.ConfigMap["cni_network_config"]), &cni) == nil {
		for _, p := range cni.Plugins {
			if p.MTU > 0 {
				return p.MTU, "ConfigMap kube-system/calico-config cni_network_config mtu (Kubespray: calico_mtu)"
			}
		}
	}
	// calico-node's own environment (Kubespray renders it) wins over
	// FelixConfiguration.
	for _, e := range c.NodeEnvMTU {
		if v, err := strconv.Atoi(e.Value); err == nil && v > 0 && (e.Name == "CNI_MTU" || e.Name == felixEnv[c.Backend()]) {
			return v, "DaemonSet " + c.DaemonSet + " env " + e.Name
		}
	}
	if v := c.FelixMTUs[c.Backend()+"MTU"]; v > 0 {
		return v, "FelixConfiguration default " + c.Backend() + "MTU"
	}
	if c.InstallStatus > 0 {
		return c.InstallStatus, "Installation default status.mtu (auto-detected)"
	}
	return 0, ""
}

// backend is the encapsulation and the setting that chose it.
func (c *Calico) backend() (string, string) {
	for _, p := range c.IPPools {
		if p.Disabled {
			continue
		}
		if p.VXLANMode != "" && p.VXLANMode != "Never" {
			return "vxlan", fmt.Sprintf("IPPool %s vxlanMode %s", p.Name, p.VXLANMode)
		}
		if p.IPIPMode != "" && p.IPIPMode != "Never" {
			return "ipip", fmt.Sprintf("IPPool %s ipipMode %s", p.Name, p.IPIPMode)
		}
	}
	if c.ConfigMap["calico_backend"] == "vxlan" {
		return "vxlan", "ConfigMap kube-system/calico-config calico_backend vxlan"
	}
	if len(c.IPPools) > 0 {
		return "bgp", "IPPools without encapsulation"
	}
	return "bgp", "no IPPool found: assumed"
}

// Network is what discovery found, as the diagnosis reads it, with the
// object each value came from.
func (c *Cluster) Network() inventory.Network {
	n := inventory.Network{}
	if kp := c.KubeProxy; kp != nil {
		n.KubeProxyMode = kp.Mode
		n.Sources = append(n.Sources, fmt.Sprintf("kube-proxy mode %s (%s)", kp.Mode, kp.Source))
	}
	if c.Calico == nil {
		n.Sources = append(n.Sources, "CNI "+c.CNI.Name+": configuration not read (podpath reads Calico's)")
		return n
	}
	n.Install = c.CNI.Install
	var from string
	n.Backend, from = c.Calico.backend()
	n.Sources = append(n.Sources, fmt.Sprintf("configured backend %s (%s, Calico %s install)", n.Backend, from, n.Install))
	n.PodMTU, from = c.Calico.podMTU()
	if n.PodMTU > 0 {
		n.Sources = append(n.Sources, fmt.Sprintf("configured Pod MTU %d (%s)", n.PodMTU, from))
	} else {
		n.Sources = append(n.Sources, "configured Pod MTU: auto-detected by Calico (no MTU set in the Installation, calico-config or FelixConfiguration)")
	}
	if n.MTUIfacePattern = c.Calico.MTUIfacePattern; n.MTUIfacePattern != "" {
		n.Sources = append(n.Sources, fmt.Sprintf("Felix's mtuIfacePattern %s", n.MTUIfacePattern))
	}
	for _, p := range c.Calico.IPPools {
		if !p.Disabled && n.PodCIDR == "" {
			n.PodCIDR = p.CIDR
		}
	}
	return n
}

// Discover reads nodes, the CNI and Calico's configuration.
func Discover(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) (*Cluster, error) {
	nodes, err := Nodes(ctx, cs)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Nodes: nodes}
	c.CNI, c.Calico, err = DetectCNI(ctx, cs, dyn)
	if err != nil {
		return nil, err
	}
	if c.Calico != nil {
		calicoLogs(ctx, cs, c.Calico)
	}
	if c.KubeProxy, err = kubeProxyConfig(ctx, cs); err != nil {
		return nil, err
	}
	if c.DNS, err = clusterDNS(ctx, cs); err != nil {
		return nil, err
	}
	return c, nil
}

// Nodes lists the cluster's nodes.
func Nodes(ctx context.Context, cs kubernetes.Interface) ([]Node, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []Node
	for _, n := range list.Items {
		node := Node{Name: n.Name, Cordoned: n.Spec.Unschedulable, Calico: map[string]string{}}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && node.InternalIP == "" {
				node.InternalIP = a.Address
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				node.Ready = c.Status == corev1.ConditionTrue
				node.ReadyReason = fmt.Sprintf("%s (%s) since %s", c.Status, c.Reason, c.LastTransitionTime.UTC().Format(time.RFC3339))
			}
		}
		for _, t := range n.Spec.Taints {
			node.Taints = append(node.Taints, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect))
		}
		for k, v := range n.Annotations {
			if strings.HasPrefix(k, "projectcalico.org/") {
				node.Calico[k] = v
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// DetectCNI says which CNI runs and reads Calico's configuration (not its
// logs): what a caller needs that is not a diagnosis, such as the MTU.
func DetectCNI(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) (CNI, *Calico, error) {
	cni := CNI{Name: "unknown"}
	ds, dsNS, err := findDaemonSet(ctx, cs, calicoNodeDS, "kube-system", operatorNamespace)
	if err != nil {
		return cni, nil, err
	}
	inst, err := getInstallation(ctx, dyn)
	if err != nil {
		return cni, nil, err
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, calicoConfigMap, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return cni, nil, fmt.Errorf("read kube-system/calico-config: %w", err)
	}
	switch {
	case inst != nil:
		cni = CNI{Name: "calico", Install: "operator", Evidence: []string{"Installation operator.tigera.io/v1 default"}}
	case ds != nil || (cm != nil && err == nil):
		cni = CNI{Name: "calico", Install: "manifest"}
		// Kubespray renders its own calico-config and says so.
		if err == nil && strings.HasPrefix(cm.Data["cluster_type"], "kubespray") {
			cni.Install = "kubespray"
			cni.Evidence = append(cni.Evidence, "ConfigMap kube-system/calico-config cluster_type "+cm.Data["cluster_type"])
		}
		if ds != nil {
			cni.Evidence = append(cni.Evidence, "DaemonSet "+dsNS+"/"+calicoNodeDS)
		}
		if err == nil {
			cni.Evidence = append(cni.Evidence, "ConfigMap kube-system/calico-config")
		}
	default:
		for name, ds := range map[string]string{"cilium": "cilium", "flannel": "kube-flannel-ds"} {
			if d, ns, err := findDaemonSet(ctx, cs, ds, "kube-system", "kube-flannel"); err == nil && d != nil {
				return CNI{Name: name, Evidence: []string{"DaemonSet " + ns + "/" + ds}}, nil, nil
			}
		}
		return cni, nil, nil
	}
	cal := &Calico{ConfigMap: map[string]string{}, FelixMTUs: map[string]int{}, NodeReady: map[string]bool{}, NodePods: map[string]string{}}
	if cm != nil && err == nil {
		cal.ConfigMap = cm.Data
	}
	if inst != nil {
		cal.InstallMTU = intField(inst.Object, "spec", "calicoNetwork", "mtu")
		cal.InstallStatus = intField(inst.Object, "status", "mtu")
	}
	if err := readCalicoResources(ctx, dyn, cal); err != nil {
		return cni, nil, err
	}
	if ds != nil {
		cal.DaemonSet = ds.Namespace + "/" + ds.Name
		for ci, c := range ds.Spec.Template.Spec.Containers {
			for ei, e := range c.Env {
				if mtuEnv[e.Name] && e.ValueFrom == nil {
					cal.NodeEnvMTU = append(cal.NodeEnvMTU, EnvMTU{Container: ci, Index: ei, Name: e.Name, Value: e.Value})
				}
				if e.Name == "FELIX_MTUIFACEPATTERN" && e.ValueFrom == nil && e.Value != "" {
					cal.MTUIfacePattern = e.Value
				}
			}
		}
		if err := calicoNodeReadiness(ctx, cs, ds, cal); err != nil {
			return cni, nil, err
		}
	}
	return cni, cal, nil
}

func findDaemonSet(ctx context.Context, cs kubernetes.Interface, name string, namespaces ...string) (*appsv1.DaemonSet, string, error) {
	for _, ns := range namespaces {
		ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return ds, ns, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, "", fmt.Errorf("read DaemonSet %s/%s: %w", ns, name, err)
		}
	}
	return nil, "", nil
}

var installationGVR = schema.GroupVersionResource{Group: "operator.tigera.io", Version: "v1", Resource: "installations"}

func getInstallation(ctx context.Context, dyn dynamic.Interface) (*unstructured.Unstructured, error) {
	u, err := dyn.Resource(installationGVR).Get(ctx, installationName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || isNoKind(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Installation default: %w", err)
	}
	return u, nil
}

// isNoKind: the API server does not serve that resource (CRD not installed).
func isNoKind(err error) bool {
	return err != nil && (apierrors.IsNotFound(err) || strings.Contains(err.Error(), "the server could not find the requested resource"))
}

// readCalicoResources reads IPPools and FelixConfiguration from
// projectcalico.org/v3 when the Calico API server serves it, else from the
// crd.projectcalico.org/v1 CRDs that manifest and Kubespray installs use.
func readCalicoResources(ctx context.Context, dyn dynamic.Interface, cal *Calico) error {
	var pools *unstructured.UnstructuredList
	var err error
	for _, g := range []schema.GroupVersion{{Group: "projectcalico.org", Version: "v3"}, {Group: defaultCalicoGroup, Version: "v1"}} {
		pools, err = dyn.Resource(g.WithResource("ippools")).List(ctx, metav1.ListOptions{})
		if err == nil {
			cal.APIGroup = g.Group
			break
		}
		// The v3 API is served by Calico's own API server: when it is down or
		// refuses, the CRDs underneath still answer. Only their error counts.
		if g.Group == defaultCalicoGroup && !isNoKind(err) {
			return fmt.Errorf("list IPPools (%s): %w", g, err)
		}
	}
	if pools == nil {
		return nil // no Calico resources served at all
	}
	for _, p := range pools.Items {
		pool := IPPool{Name: p.GetName(),
			CIDR:      stringField(p.Object, "spec", "cidr"),
			BlockSize: intField(p.Object, "spec", "blockSize"),
			VXLANMode: stringField(p.Object, "spec", "vxlanMode"),
			IPIPMode:  stringField(p.Object, "spec", "ipipMode"),
			MTU:       intField(p.Object, "spec", "mtu")}
		pool.Disabled, _, _ = unstructured.NestedBool(p.Object, "spec", "disabled")
		if pool.MTU == 0 {
			pool.MTU = lastAppliedMTU(p.GetAnnotations()[lastAppliedAnnot])
		}
		cal.IPPools = append(cal.IPPools, pool)
	}
	gv := schema.GroupVersion{Group: cal.APIGroup, Version: "v1"}
	if cal.APIGroup == "projectcalico.org" {
		gv.Version = "v3"
	}
	if err := readBGP(ctx, dyn, gv, cal); err != nil {
		return err
	}
	felix, err := dyn.Resource(gv.WithResource("felixconfigurations")).Get(ctx, "default", metav1.GetOptions{})
	if err != nil && !isNoKind(err) {
		return fmt.Errorf("read FelixConfiguration default: %w", err)
	}
	if err == nil {
		for _, f := range []string{"ipipMTU", "vxlanMTU", "vxlanMTUV6", "wireguardMTU", "wireguardMTUV6"} {
			if v := intField(felix.Object, "spec", f); v > 0 {
				cal.FelixMTUs[f] = v
			}
		}
		// calico-node's FELIX_MTUIFACEPATTERN, read after this, replaces it.
		if p, _, _ := unstructured.NestedString(felix.Object, "spec", "mtuIfacePattern"); p != "" {
			cal.MTUIfacePattern = p
		}
	}
	return nil
}

// readBGP reads BGPConfiguration default, the BGPPeers and the
// BlockAffinities. A resource the caller may not read is skipped: they
// enrich the report, none is needed to run.
func readBGP(ctx context.Context, dyn dynamic.Interface, gv schema.GroupVersion, cal *Calico) error {
	conf, err := dyn.Resource(gv.WithResource("bgpconfigurations")).Get(ctx, "default", metav1.GetOptions{})
	switch {
	case err == nil:
		cal.BGP.Configured = true
		cal.BGP.ASNumber = intField(conf.Object, "spec", "asNumber")
		if v, ok, _ := unstructured.NestedBool(conf.Object, "spec", "nodeToNodeMeshEnabled"); ok {
			cal.BGP.NodeMesh = &v
		}
	case !isNoKind(err) && !apierrors.IsForbidden(err):
		return fmt.Errorf("read BGPConfiguration default: %w", err)
	}
	peers, err := dyn.Resource(gv.WithResource("bgppeers")).List(ctx, metav1.ListOptions{})
	switch {
	case err == nil:
		for _, p := range peers.Items {
			cal.BGP.Peers = append(cal.BGP.Peers, fmt.Sprintf("%s (%s)", p.GetName(), stringField(p.Object, "spec", "peerIP")))
		}
	case !isNoKind(err) && !apierrors.IsForbidden(err):
		return fmt.Errorf("list BGPPeers: %w", err)
	}
	affs, err := dyn.Resource(gv.WithResource("blockaffinities")).List(ctx, metav1.ListOptions{})
	switch {
	case err == nil:
		cal.Blocks = map[string][]string{}
		for _, a := range affs.Items {
			if node := stringField(a.Object, "spec", "node"); node != "" {
				cal.Blocks[node] = append(cal.Blocks[node], stringField(a.Object, "spec", "cidr"))
			}
		}
	case !isNoKind(err) && !apierrors.IsForbidden(err):
		return fmt.Errorf("list BlockAffinities: %w", err)
	}
	return nil
}

// lastAppliedMTU reads spec.mtu from kubectl's last-applied annotation: the
// API server prunes an unknown field from the object, not from the annotation.
func lastAppliedMTU(annot string) int {
	if annot == "" {
		return 0
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(annot), &obj); err != nil {
		return 0
	}
	return intField(obj, "spec", "mtu")
}

func calicoNodeReadiness(ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet, cal *Calico) error {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return fmt.Errorf("calico-node selector: %w", err)
	}
	pods, err := cs.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("list calico-node Pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			continue
		}
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		cal.NodeReady[p.Spec.NodeName] = ready
		cal.NodePods[p.Spec.NodeName] = p.Namespace + "/" + p.Name
	}
	return nil
}

func stringField(obj map[string]any, path ...string) string {
	s, _, _ := unstructured.NestedString(obj, path...)
	return s
}

// intField reads an integer that JSON may have decoded as int64 or float64.
func intField(obj map[string]any, path ...string) int {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj, path...)
	if !ok {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}
