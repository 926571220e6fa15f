package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	intstrpkg "k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/calico"
	"podpath/internal/kubeobj"
	"podpath/internal/version"
)

// calico-node's stand-in. Calico's images cannot be had here, so the
// calico-node Pods of a Kubernetes lab run podpath's image with
// `podpath lab calico-node`: the lab's one stand-in. It does what podpath
// reads from calico-node and what an MTU change goes through: it picks the
// Pod MTU as Felix does (calico-config's veth_mtu through CNI_MTU, else a
// number in the CNI configuration, else the smallest MTU of the host's
// matching interfaces less the encapsulation's overhead), writes it to
// /var/lib/calico/mtu, renders the CNI configuration from calico-config's
// cni_network_config into /etc/cni/net.d as install-cni does (so new Pods
// get the MTU), sets a configured MTU on vxlan.calico at once, answers
// Felix's readiness and liveness on localhost:9099 and logs as Felix does.
// BIRD is the lab's own (real BIRD 2), its socket on the node's
// /var/run/calico. Not done: policy, IPAM, BGP configuration, routes.
const (
	felixHealthAddr = "127.0.0.1:9099"
	calicoConflist  = "10-calico.conflist"
	standInStatus   = 30 * time.Second
	felixMTUWatch   = 30 * time.Second
	// Reading FelixConfiguration: one call, and the whole wait for the
	// API server's Service address to answer at start.
	felixConfigTimeout = 5 * time.Second
	felixConfigWait    = 30 * time.Second
)

// CalicoNodeOptions is the stand-in's configuration, from calico-node's
// environment.
type CalicoNodeOptions struct {
	Node, Backend, CNIMTU, VXLANMTU, CNIConfig, CNIDir, StateDir string
	MTUIfacePattern                                              string // FELIX_MTUIFACEPATTERN
}

// CalicoNodeFromEnv reads the environment Calico's manifest gives calico-node.
func CalicoNodeFromEnv() CalicoNodeOptions {
	return CalicoNodeOptions{Node: os.Getenv("NODENAME"), Backend: os.Getenv("CALICO_NETWORKING_BACKEND"),
		CNIMTU: os.Getenv("CNI_MTU"), VXLANMTU: os.Getenv("FELIX_VXLANMTU"), CNIConfig: os.Getenv("CNI_NETWORK_CONFIG"),
		CNIDir: "/host/etc/cni/net.d", StateDir: "/var/lib/calico", MTUIfacePattern: os.Getenv("FELIX_MTUIFACEPATTERN")}
}

type felixLog struct{}

// Felix's log format: "2026-12-02 06:50:01.123 [INFO][42] felix/file.go 123: message".
func (felixLog) printf(level, file string, line int, format string, a ...any) {
	fmt.Printf("%s [%s][%d] felix/%s %d: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05.000"), level, os.Getpid(), file, line, fmt.Sprintf(format, a...))
}

// RunCalicoNode is the stand-in's main loop.
func RunCalicoNode(ctx context.Context, o CalicoNodeOptions) error {
	var log felixLog
	log.printf("INFO", "daemon.go", 365, "Felix starting up (podpath lab stand-in for calico-node, %s) node=%q backend=%q", version.Version, o.Node, o.Backend)
	overhead := 0
	if o.Backend == "vxlan" {
		overhead = VXLANOverhead
	}
	// Felix's order: its environment (the manifest's veth_mtu, the
	// operator's rendering), then FelixConfiguration default, then the CNI
	// configuration's own number, then auto-detection.
	mtu, explicit := atoiPositive(o.CNIMTU), true
	if mtu == 0 {
		mtu = atoiPositive(o.VXLANMTU)
	}
	pattern := o.MTUIfacePattern // the environment wins over the datastore
	if mtu == 0 {
		if v, p, err := felixConfig(ctx); err != nil {
			log.printf("WARNING", "config_batcher.go", 88, "Could not read FelixConfiguration default, going on without it: %v", err)
		} else {
			if v > 0 && o.Backend == "vxlan" {
				mtu = v
				log.printf("INFO", "config_params.go", 612, "Parsed value for VXLANMTU: %d (from datastore (global))", v)
			}
			if pattern == "" {
				pattern = p
			}
		}
	}
	if mtu == 0 {
		mtu = templateMTU(o.CNIConfig)
	}
	var detected calico.HostMTU // auto-detection only: what Felix watches
	if mtu == 0 {
		explicit = false
		host, err := hostMTU(pattern)
		if err != nil {
			return err // Felix refuses a pattern that does not compile
		}
		if host.Fallback {
			log.printf("WARNING", "int_dataplane.go", 1770, "Failed to auto-detect host MTU - no interfaces matched the MTU interface pattern. To use auto-MTU, set mtuIfacePattern to match your host's interfaces")
		}
		mtu, detected = host.MTU-overhead, host
		log.printf("INFO", "int_dataplane.go", 1823, "Determined pod MTU hostMTU=%d from=%v podMTU=%d", host.MTU, host.From, mtu)
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(o.StateDir, "mtu"), []byte(strconv.Itoa(mtu))); err != nil {
		return fmt.Errorf("write %s/mtu: %w", o.StateDir, err)
	}
	if o.CNIConfig != "" {
		conf, skipped, err := renderCNI(o.CNIConfig, o.Node, mtu)
		if err != nil {
			return fmt.Errorf("install-cni: %w", err)
		}
		for _, p := range skipped {
			log.printf("INFO", "install.go", 310, "install-cni: plugin %q is not installed on this lab node: left out of the CNI configuration", p)
		}
		if err := os.MkdirAll(o.CNIDir, 0o755); err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(o.CNIDir, calicoConflist), conf); err != nil {
			return fmt.Errorf("install-cni: %w", err)
		}
		log.printf("INFO", "install.go", 321, "install-cni: wrote CNI network configuration %s mtu=%d", calicoConflist, mtu)
	}
	if o.Backend == "vxlan" && explicit {
		tunnel := mtu
		if v := atoiPositive(o.VXLANMTU); v != 0 {
			tunnel = v
		}
		if l, err := netlink.LinkByName(VXLANDevice); err == nil && l.Attrs().MTU != tunnel {
			if err := netlink.LinkSetMTU(l, tunnel); err != nil {
				log.printf("ERROR", "vxlan_mgr.go", 488, "Failed to set MTU on VXLAN tunnel device: %v", err)
			} else {
				log.printf("INFO", "vxlan_mgr.go", 492, "VXLAN tunnel device MTU changed from %d to %d", l.Attrs().MTU, tunnel)
			}
		}
	}

	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	mux.HandleFunc("/readiness", ok)
	mux.HandleFunc("/liveness", ok)
	ln, err := net.Listen("tcp", felixHealthAddr)
	if err != nil {
		return fmt.Errorf("health endpoint: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	log.printf("INFO", "health.go", 217, "Health enabled. Starting server. host=%q port=9099", "localhost")

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tick := time.NewTicker(standInStatus)
	defer tick.Stop()
	// Felix looks at the host MTU again every 30 s and restarts when it
	// changed (monitorHostMTU): a NIC added or an MTU changed reaches the
	// MTU file within a minute. The stand-in watches only an auto-detected
	// MTU, the one a change can move.
	watch := time.NewTicker(felixMTUWatch)
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			log.printf("INFO", "daemon.go", 750, "Received SIGTERM, shutting down")
			return nil
		case <-tick.C:
			log.printf("INFO", "summary.go", 100, "Summarising dataplane state: node=%q podMTU=%d", o.Node, mtu)
		case <-watch.C:
			if explicit {
				continue
			}
			if now, err := hostMTU(pattern); err == nil && now.MTU != detected.MTU {
				log.printf("INFO", "int_dataplane.go", 2075, "Host MTU changed from %d to %d: restarting", detected.MTU, now.MTU)
				return nil // the kubelet starts calico-node again, which detects it anew
			}
		}
	}
}

// felixConfig reads vxlanMTU and mtuIfacePattern of FelixConfiguration
// default with the Pod's service account, as Felix reads its datastore
// configuration.
func felixConfig(ctx context.Context) (int, string, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return 0, "", err
	}
	cfg.Timeout = felixConfigTimeout
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, "", err
	}
	gvr := schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "felixconfigurations"}
	ctx, cancel := context.WithTimeout(ctx, felixConfigWait)
	defer cancel()
	for {
		u, err := dyn.Resource(gvr).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			v, _, _ := unstructured.NestedInt64(u.Object, "spec", "vxlanMTU")
			p, _, _ := unstructured.NestedString(u.Object, "spec", "mtuIfacePattern")
			return int(v), p, nil
		}
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return 0, "", err
		}
		select {
		case <-ctx.Done():
			return 0, "", err
		case <-time.After(time.Second): // kube-proxy may not serve the API's Service address yet
		}
	}
}

func atoiPositive(s string) int {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// templateMTU is the "mtu" the CNI configuration sets itself (Kubespray
// with calico_mtu), 0 when it has none or a placeholder.
func templateMTU(tmpl string) int {
	var conf struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if json.Unmarshal([]byte(strings.ReplaceAll(tmpl, "__CNI_MTU__", "0")), &conf) != nil {
		return 0
	}
	for _, p := range conf.Plugins {
		if v, ok := p["mtu"].(float64); ok && p["type"] == "calico" {
			return int(v)
		}
	}
	return 0
}

// hostMTU is Felix's auto-detection (calico.FelixHostMTU) on this host's
// interfaces.
func hostMTU(pattern string) (calico.HostMTU, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return calico.HostMTU{}, err
	}
	var ifaces []calico.Iface
	for _, l := range links {
		a := l.Attrs()
		ifaces = append(ifaces, calico.Iface{Name: a.Name, MTU: a.MTU, Running: a.RawFlags&unix.IFF_RUNNING != 0})
	}
	return calico.FelixHostMTU(ifaces, pattern)
}

// renderCNI fills install-cni's placeholders and keeps only the plugins
// the node has (the lab's Calico-style plugin).
func renderCNI(tmpl, node string, mtu int) ([]byte, []string, error) {
	r := strings.NewReplacer("__CNI_MTU__", strconv.Itoa(mtu), "__KUBERNETES_NODE_NAME__", node,
		"__KUBECONFIG_FILEPATH__", "/etc/cni/net.d/calico-kubeconfig", "__LOG_LEVEL__", "info", "__DATASTORE_TYPE__", "kubernetes")
	var conf map[string]any
	if err := json.Unmarshal([]byte(r.Replace(tmpl)), &conf); err != nil {
		return nil, nil, fmt.Errorf("cni_network_config is not JSON: %w", err)
	}
	plugins, _ := conf["plugins"].([]any)
	var kept []any
	var skipped []string
	for _, p := range plugins {
		m, _ := p.(map[string]any)
		if m["type"] == "calico" {
			kept = append(kept, m)
		} else {
			skipped = append(skipped, fmt.Sprint(m["type"]))
		}
	}
	if len(kept) == 0 {
		return nil, nil, errors.New(`cni_network_config has no plugin of type "calico"`)
	}
	conf["plugins"] = kept
	out, err := json.MarshalIndent(conf, "", "  ")
	return out, skipped, err
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// kubesprayCNIConfig is Kubespray's cni_network_config with its defaults
// (calico_mtu unset: no "mtu", so the plugin takes /var/lib/calico/mtu).
const kubesprayCNIConfig = `{"name": "cni0", "cniVersion": "0.3.1", "plugins": [{"type": "calico", "datastore_type": "kubernetes", "nodename": "__KUBERNETES_NODE_NAME__", "log_level": "info", "log_file_path": "/var/log/calico/cni/cni.log", "ipam": {"type": "calico-ipam", "assign_ipv4": "true"}, "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}}, {"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "bandwidth", "capabilities": {"bandwidth": true}}]}`

// calicoPool is the IP pool as calico-node creates it.
func calicoPool(s *Spec, name string) string {
	vxlan := "Always"
	if s.Backend != BackendVXLAN {
		vxlan = "Never"
	}
	return fmt.Sprintf(`apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: %s}
spec: {cidr: %s, blockSize: %d, vxlanMode: %s, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
`, name, PodCIDR, BlockBits, vxlan)
}

// calicoObjects are Calico's objects of a Kubespray install: pool, Felix
// and BGP configuration, calico-config.
func kubesprayObjects(s *Spec) string {
	backend := "vxlan"
	if s.Backend != BackendVXLAN {
		backend = "bird"
	}
	cni, _ := json.Marshal(kubesprayCNIConfig)
	return calicoPool(s, "default-pool") + fmt.Sprintf(`---
apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata: {name: default}
spec: {vxlanEnabled: %[1]t, vxlanPort: %[2]d, vxlanVNI: %[3]d, vxlanMTU: %[9]d, logSeverityScreen: Info}
---
apiVersion: crd.projectcalico.org/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: %[4]d, nodeToNodeMeshEnabled: %[5]t, serviceClusterIPs: [{cidr: %[6]s}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: calico-config, namespace: kube-system}
data:
  cluster_type: kubespray
  calico_backend: %[7]s
  cni_network_config: %[8]s
`, s.Backend == BackendVXLAN, VXLANPort, VXLANVNI, ASNumber, s.Backend == BackendBGP, ServiceCIDR, backend, cni, s.Nodes[0].VXLANMTU)
}

// operatorCNIConfig is the CNI configuration the operator renders for
// calico-node, the MTU filled in per node.
const operatorCNIConfig = `{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico", "datastore_type": "kubernetes", "mtu": __CNI_MTU__, "nodename_file_optional": false, "log_level": "Info", "log_file_path": "/var/log/calico/cni/cni.log", "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "false"}, "container_settings": {"allow_ip_forwarding": false}, "policy": {"type": "k8s"}, "kubernetes": {"k8s_api_root": "https://10.233.0.1:443", "kubeconfig": "__KUBECONFIG_FILEPATH__"}}, {"type": "bandwidth", "capabilities": {"bandwidth": true}}, {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}]}`

// operatorObjects are what an operator install leaves: the Installation
// (status.mtu as the operator reports it), the pool it creates,
// calico-system.
func operatorObjects(s *Spec) string {
	enc := "VXLAN"
	if s.Backend != BackendVXLAN {
		enc = "None"
	}
	return fmt.Sprintf(`apiVersion: operator.tigera.io/v1
kind: Installation
metadata: {name: default}
spec:
  calicoNetwork:
    ipPools:
      - {name: default-ipv4-ippool, blockSize: %d, cidr: %s, encapsulation: %s, natOutgoing: Enabled, nodeSelector: all()}
---
apiVersion: v1
kind: Namespace
metadata: {name: calico-system}
---
`, BlockBits, PodCIDR, enc) + calicoPool(s, "default-ipv4-ippool")
}

// manifestConfigMap is calico-config from Calico's own manifest (the
// fixture), as `kubectl apply -f calico.yaml` creates it.
func manifestConfigMap(fixtures string, s *Spec) ([]byte, error) {
	name := "calico-vxlan.yaml"
	if s.Backend != BackendVXLAN {
		name = "calico.yaml"
	}
	data, err := os.ReadFile(filepath.Join(fixtures, "manifests", name))
	if err != nil {
		return nil, err
	}
	objs, err := kubeobj.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "calico-config" {
			return o.MarshalJSON()
		}
	}
	return nil, fmt.Errorf("%s has no ConfigMap calico-config", name)
}

// calicoNodeDS is the calico-node DaemonSet of the manifest install, with
// the stand-in's image and command: calico-config feeds the same
// environment as in Calico's manifest.
func calicoNodeDS(namespace, img string, env []corev1.EnvVar) *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": "calico-node"}
	host := func(name, path string) corev1.Volume {
		t := corev1.HostPathDirectoryOrCreate
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &t}}}
	}
	yes := true
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Path: path, Port: intstr(9099)}},
			PeriodSeconds: 10, TimeoutSeconds: 5}
	}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "calico-node", Namespace: namespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"podpath.io/lab-stand-in": "calico-node: podpath lab calico-node (Calico's images are not available in the lab)"}},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					PriorityClassName:             "system-node-critical",
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					ServiceAccountName:            "calico-node",
					TerminationGracePeriodSeconds: int64p(5),
					Containers: []corev1.Container{{
						Name: "calico-node", Image: img, ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"/podpath", "lab", "calico-node"},
						Env: append([]corev1.EnvVar{
							{Name: "NODENAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
						}, env...),
						// As calico-node: root and privileged (podpath's image defaults to nobody).
						SecurityContext: &corev1.SecurityContext{Privileged: &yes, RunAsUser: int64p(0)},
						ReadinessProbe:  probe("/readiness"),
						LivenessProbe:   probe("/liveness"),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "var-lib-calico", MountPath: "/var/lib/calico"},
							{Name: "var-run-calico", MountPath: "/var/run/calico"},
							{Name: "cni-net-dir", MountPath: "/host/etc/cni/net.d"},
						},
					}},
					Volumes: []corev1.Volume{host("var-lib-calico", "/var/lib/calico"), host("var-run-calico", "/var/run/calico"),
						host("cni-net-dir", "/etc/cni/net.d")},
				},
			},
		},
	}
}

// manifestEnv is calico-node's environment in the manifest installs:
// calico-config feeds it, as in Calico's manifest.
func manifestEnv() []corev1.EnvVar {
	cm := func(key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "calico-config"}, Key: key, Optional: &optional}}
	}
	return []corev1.EnvVar{
		{Name: "CALICO_NETWORKING_BACKEND", ValueFrom: cm("calico_backend", false)},
		{Name: "CNI_NETWORK_CONFIG", ValueFrom: cm("cni_network_config", false)},
		{Name: "CNI_MTU", ValueFrom: cm("veth_mtu", true)},
		{Name: "FELIX_VXLANMTU", ValueFrom: cm("veth_mtu", true)},
	}
}

// CalicoNamespace is where calico-node runs in the lab's install.
func (s *Spec) CalicoNamespace() string {
	if s.Calico == CalicoOperator {
		return "calico-system"
	}
	return "kube-system"
}

// installCalico creates Calico's CRDs (the fixtures'), its objects as the
// install flavour leaves them, and calico-node.
func installCalico(ctx context.Context, cfg *rest.Config, s *Spec) error {
	fixtures, err := CalicoFixtures()
	if err != nil {
		return err
	}
	crds, err := filepath.Glob(filepath.Join(fixtures, "crds-v1", "*.yaml"))
	if err != nil {
		return err
	}
	if s.Calico == CalicoOperator {
		crds = append(crds, filepath.Join(fixtures, "operator", "operator.tigera.io_installations.yaml"))
	}
	for _, f := range crds {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := kubeobj.CreateAll(ctx, cfg, data, "podpath-lab"); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
	}
	backend := "vxlan"
	if s.Backend != BackendVXLAN {
		backend = "bird"
	}
	var objects []byte
	env := manifestEnv()
	switch s.Calico {
	case CalicoKubespray:
		objects = []byte(kubesprayObjects(s))
	case CalicoManifest:
		cm, err := manifestConfigMap(fixtures, s)
		if err != nil {
			return err
		}
		objects = append(append([]byte(calicoPool(s, "default-ipv4-ippool")), "\n---\n"...), cm...)
	case CalicoOperator:
		objects = []byte(operatorObjects(s))
		env = []corev1.EnvVar{{Name: "CALICO_NETWORKING_BACKEND", Value: backend}, {Name: "CNI_NETWORK_CONFIG", Value: operatorCNIConfig}}
	}
	if err := kubeobj.CreateAll(ctx, cfg, append(objects, "\n---\n"+kubeProxyConfigMap()...), "podpath-lab"); err != nil {
		return err
	}
	if s.Calico == CalicoOperator {
		if err := installationStatus(ctx, cfg, s); err != nil {
			return err
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := kubeobj.CreateAll(ctx, cfg, []byte(standInRBAC(s.CalicoNamespace())), "podpath-lab"); err != nil {
		return err
	}
	ds := calicoNodeDS(s.CalicoNamespace(), "podpath/podpath:latest", env)
	if _, err := cs.AppsV1().DaemonSets(ds.Namespace).Create(ctx, ds, metav1.CreateOptions{FieldManager: "podpath-lab"}); err != nil {
		return fmt.Errorf("create calico-node: %w", err)
	}
	return nil
}

// standInRBAC lets calico-node's stand-in read what it reads: Felix's
// configuration.
func standInRBAC(namespace string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: calico-node, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: podpath-lab-calico-node}
rules:
  - {apiGroups: [crd.projectcalico.org], resources: [felixconfigurations], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: podpath-lab-calico-node}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podpath-lab-calico-node}
subjects: [{kind: ServiceAccount, name: calico-node, namespace: %[1]s}]
`, namespace)
}

// installationStatus reports the MTU the operator computed (the nodes'
// underlay less the encapsulation), as the operator does in status.mtu.
func installationStatus(ctx context.Context, cfg *rest.Config, s *Spec) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Group: "operator.tigera.io", Version: "v1", Resource: "installations"}
	u, err := dyn.Resource(gvr).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the Installation: %w", err)
	}
	_ = unstructured.SetNestedField(u.Object, int64(s.Nodes[0].PodMTU), "status", "mtu")
	if _, err := dyn.Resource(gvr).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "podpath-lab"}); err != nil {
		return fmt.Errorf("the Installation's status: %w", err)
	}
	return nil
}

// CalicoFixtures is where Calico's CRDs are found: the fixtures beside the
// checkout (../shared/fixtures/calico), unless PODPATH_CALICO_FIXTURES says.
func CalicoFixtures() (string, error) {
	if d := os.Getenv("PODPATH_CALICO_FIXTURES"); d != "" {
		return d, nil
	}
	root, err := checkout()
	if err != nil {
		return "", errors.New("Calico's CRDs are read from the fixtures beside podpath's checkout (../shared/fixtures/calico): run from the checkout, or set PODPATH_CALICO_FIXTURES")
	}
	d := filepath.Join(filepath.Dir(root), "shared", "fixtures", "calico")
	if _, err := os.Stat(filepath.Join(d, "crds-v1")); err != nil {
		return "", fmt.Errorf("Calico's CRDs: no %s (the fixtures beside the checkout); set PODPATH_CALICO_FIXTURES", filepath.Join(d, "crds-v1"))
	}
	return d, nil
}

// waitNodes waits until every node is Ready and calico-node runs on each.
func waitNodes(ctx context.Context, cs kubernetes.Interface, s *Spec) error {
	ctx, cancel := context.WithTimeout(ctx, nodesTimeout)
	defer cancel()
	var last string
	for {
		last = nodesState(ctx, cs, s)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster is not up within %s: %s (logs under %s/<node>/kube/)", nodesTimeout, last, Dir(s.Name))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nodesState says what is not ready yet, "" when all is.
func nodesState(ctx context.Context, cs kubernetes.Interface, s *Spec) string {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "list nodes: " + err.Error()
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	var missing []string
	for _, n := range s.Nodes {
		if !ready[n.Name] {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) > 0 {
		return "not Ready: " + strings.Join(missing, ", ")
	}
	ds, err := cs.AppsV1().DaemonSets(s.CalicoNamespace()).Get(ctx, "calico-node", metav1.GetOptions{})
	if err != nil {
		return "calico-node: " + err.Error()
	}
	if int(ds.Status.NumberReady) != len(s.Nodes) {
		return fmt.Sprintf("calico-node ready on %d of %d nodes", ds.Status.NumberReady, len(s.Nodes))
	}
	return ""
}

func intstr(port int) intstrpkg.IntOrString { return intstrpkg.FromInt32(int32(port)) }

func int64p(v int64) *int64 { return &v }
