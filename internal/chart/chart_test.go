package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// The metrics the agents export (the contract the chart's alerts and dashboard are written
// against; every series also carries node and layer).
var contractMetrics = map[string]bool{
	"podpath_monitor_rtt_seconds_bucket":        true, // histogram
	"podpath_monitor_rtt_seconds_sum":           true,
	"podpath_monitor_rtt_seconds_count":         true,
	"podpath_monitor_probes_total":              true, // result="answered"|"lost"
	"podpath_monitor_peers":                     true,
	"podpath_monitor_peers_reachable_ratio":     true,
	"podpath_monitor_path_mtu_min_bytes":        true,
	"podpath_monitor_findings":                  true, // id
	"podpath_monitor_worst_peer_loss_ratio":     true, // peer, top 3
	"podpath_monitor_worst_peer_path_mtu_bytes": true, // peer, top 3
	"up": true, // Prometheus's own, for PodpathAgentDown
}

// The finding IDs podpath_monitor_findings carries.
var contractFindings = []string{"mtu-blackhole", "pod-network-partition", "node-unreachable",
	"packet-loss", "high-latency", "bgp-session-down", "calico-node-unhealthy"}

// The values a contract label may take, per label name.
var contractLabelValues = map[string][]string{
	"id":     contractFindings,
	"result": {"answered", "lost"},
	"layer":  {"pod", "node"},
}

func chartDir(t *testing.T) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func render(t *testing.T, values map[string]any) *Release {
	t.Helper()
	r, err := Render(chartDir(t), values, "podpath", "monitoring")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// all turns on every optional object.
func all() map[string]any {
	return map[string]any{
		"prometheus": map[string]any{
			"podMonitor": map[string]any{"enabled": true},
			"rules":      map[string]any{"enabled": true},
		},
		"grafana": map[string]any{"dashboard": map[string]any{"enabled": true}},
	}
}

func kindNames(r *Release) []string {
	var out []string
	for _, o := range r.Objects {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	if o == nil {
		t.Fatalf("no such object")
	}
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s does not decode as %T: %v", o.GetKind(), o.GetName(), v, err)
	}
	return &v
}

func TestLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults":        nil,
		"everything":      all(),
		"pod_agent_alone": {"hostAgent": map[string]any{"enabled": false}},
	} {
		t.Run(name, func(t *testing.T) {
			msgs, err := Lint(chartDir(t), values)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("helm lint: %q", msgs)
		})
	}
}

// Lint must see what helm lint sees: a broken copy of the chart fails.
func TestLintFindsBrokenChart(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "templates", "rbac.yaml")
	if err := os.WriteFile(bad, []byte("kind: Role\nmetadata: {name: {{ .Values.nope.missing }}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Lint(dir, nil); err == nil || !strings.Contains(err.Error(), "rbac.yaml") {
		t.Errorf("Lint of a chart with a broken template = %v; want an error naming rbac.yaml", err)
	}
}

func TestRenderObjects(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"defaults", nil, []string{
			"ClusterRole/podpath-monitoring", "ClusterRoleBinding/podpath-monitoring",
			"DaemonSet/podpath-host", "DaemonSet/podpath-pod",
			"Role/podpath", "RoleBinding/podpath", "ServiceAccount/podpath"}},
		{"host_agent_disabled", map[string]any{"hostAgent": map[string]any{"enabled": false}}, []string{
			"ClusterRole/podpath-monitoring", "ClusterRoleBinding/podpath-monitoring",
			"DaemonSet/podpath-pod", "Role/podpath", "RoleBinding/podpath", "ServiceAccount/podpath"}},
		{"pod_agent_disabled", map[string]any{"podAgent": map[string]any{"enabled": false}}, []string{
			"ClusterRole/podpath-monitoring", "ClusterRoleBinding/podpath-monitoring",
			"DaemonSet/podpath-host", "Role/podpath", "RoleBinding/podpath", "ServiceAccount/podpath"}},
		{"everything", all(), []string{
			"ClusterRole/podpath-monitoring", "ClusterRoleBinding/podpath-monitoring",
			"ConfigMap/podpath-dashboard", "DaemonSet/podpath-host", "DaemonSet/podpath-pod",
			"PodMonitor/podpath", "PrometheusRule/podpath",
			"Role/podpath", "RoleBinding/podpath", "ServiceAccount/podpath"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c.values)
			if got := kindNames(r); !slices.Equal(got, c.want) {
				t.Errorf("objects:\n got %q\nwant %q", got, c.want)
			}
			for _, o := range r.Objects {
				labels := o.GetLabels()
				if labels["app.kubernetes.io/name"] != "podpath" || labels["app.kubernetes.io/instance"] != "podpath" ||
					labels["app.kubernetes.io/managed-by"] != "Helm" || labels["app.kubernetes.io/version"] == "" {
					t.Errorf("%s %s: labels %v lack the standard app.kubernetes.io ones", o.GetKind(), o.GetName(), labels)
				}
				switch o.GetKind() {
				case "ClusterRole", "ClusterRoleBinding":
				default:
					if o.GetNamespace() != "monitoring" {
						t.Errorf("%s %s: namespace %q; want the release's", o.GetKind(), o.GetName(), o.GetNamespace())
					}
				}
			}
		})
	}
	if _, err := Render(chartDir(t), map[string]any{"hostAgent": map[string]any{"enabled": false},
		"podAgent": map[string]any{"enabled": false}}, "podpath", "monitoring"); err == nil || !strings.Contains(err.Error(), "nothing to run") {
		t.Errorf("both agents disabled: %v; want the chart to refuse", err)
	}
}

// A release name without "podpath" gets it appended; object names follow.
func TestRenderNames(t *testing.T) {
	r, err := Render(chartDir(t), nil, "mon", "net")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DaemonSet/mon-podpath-host", "DaemonSet/mon-podpath-pod", "ServiceAccount/mon-podpath", "ClusterRole/mon-podpath-net"} {
		if !slices.Contains(kindNames(r), want) {
			t.Errorf("no %s in %q", want, kindNames(r))
		}
	}
	ds := typed[appsv1.DaemonSet](t, r.Find("DaemonSet", "mon-podpath-pod"))
	if i := slices.Index(ds.Spec.Template.Spec.Containers[0].Args, "--selector"); i < 0 ||
		ds.Spec.Template.Spec.Containers[0].Args[i+1] != "app.kubernetes.io/name=podpath,app.kubernetes.io/instance=mon,app.kubernetes.io/component=pod-agent" {
		t.Errorf("selector of release mon: %q", ds.Spec.Template.Spec.Containers[0].Args)
	}
}

// The contract between the chart and `podpath agent --mode monitor`.
func wantArgs(role, component, release, port, period, rate, warmup, facts string) []string {
	return []string{"agent", "--mode", "monitor", "--role", role, "--listen", "0.0.0.0:" + port,
		"--name", "$(NODE_NAME)", "--namespace", "$(POD_NAMESPACE)",
		"--selector", "app.kubernetes.io/name=podpath,app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=" + component,
		"--period", period, "--rate", rate, "--warmup", warmup, "--facts-interval", facts,
		"--service-account-dir", "/var/run/secrets/kubernetes.io/serviceaccount"}
}

func TestDaemonSets(t *testing.T) {
	r := render(t, nil)
	for _, c := range []struct{ name, role, component string }{
		{"podpath-pod", "pod", "pod-agent"},
		{"podpath-host", "host", "host-agent"},
	} {
		t.Run(c.role, func(t *testing.T) {
			ds := typed[appsv1.DaemonSet](t, r.Find("DaemonSet", c.name))
			spec := ds.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers; want 1", len(spec.Containers))
			}
			ctr := spec.Containers[0]
			if want := wantArgs(c.role, c.component, "podpath", "7947", "5m", "20", "30s", "5m"); !slices.Equal(ctr.Args, want) {
				t.Errorf("args:\n got %q\nwant %q", ctr.Args, want)
			}
			if len(ctr.Command) != 0 {
				t.Errorf("command %q: the image's entrypoint must run", ctr.Command)
			}
			if ctr.Image != "podpath/podpath:0.1.0" || ctr.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s (%s); want podpath/podpath:<appVersion> IfNotPresent", ctr.Image, ctr.ImagePullPolicy)
			}
			// The selector the agent is given must select exactly this DaemonSet's Pods.
			sel := map[string]string{}
			for kv := range strings.SplitSeq(ctr.Args[slices.Index(ctr.Args, "--selector")+1], ",") {
				k, v, _ := strings.Cut(kv, "=")
				sel[k] = v
			}
			if !maps.Equal(sel, ds.Spec.Selector.MatchLabels) {
				t.Errorf("--selector %v; the DaemonSet selects %v", sel, ds.Spec.Selector.MatchLabels)
			}
			for k, v := range ds.Spec.Selector.MatchLabels {
				if ds.Spec.Template.Labels[k] != v {
					t.Errorf("template label %s=%q; the selector wants %q", k, ds.Spec.Template.Labels[k], v)
				}
			}
			// The downward API only: the agents read nothing else from the cluster.
			env := map[string]string{}
			for _, e := range ctr.Env {
				if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.ConfigMapKeyRef != nil || e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ResourceFieldRef != nil {
					t.Errorf("env %s is not a fieldRef", e.Name)
					continue
				}
				env[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
			if want := map[string]string{"NODE_NAME": "spec.nodeName", "POD_NAMESPACE": "metadata.namespace"}; !maps.Equal(env, want) {
				t.Errorf("env %v; want %v", env, want)
			}
			wantPorts := []corev1.ContainerPort{{Name: "agent", ContainerPort: 7947, Protocol: corev1.ProtocolTCP},
				{Name: "probe", ContainerPort: 7947, Protocol: corev1.ProtocolUDP}}
			if !slices.Equal(ctr.Ports, wantPorts) {
				t.Errorf("ports %+v; want %+v", ctr.Ports, wantPorts)
			}
			for what, p := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "agent" {
					t.Errorf("%s probe %+v; want GET /healthz on port agent", what, p)
				}
			}
			if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate == nil ||
				ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String() != "10%" {
				t.Errorf("update strategy %+v; want RollingUpdate, maxUnavailable 10%%", ds.Spec.UpdateStrategy)
			}
			if got := ctr.Resources.Requests.Cpu().String() + " " + ctr.Resources.Requests.Memory().String() + " " + ctr.Resources.Limits.Memory().String(); got != "10m 64Mi 128Mi" {
				t.Errorf("resources (cpu request, memory request, memory limit) %s; want 10m 64Mi 128Mi", got)
			}
			if spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
				t.Errorf("nodeSelector %v, tolerations %+v; want Linux nodes, every taint tolerated", spec.NodeSelector, spec.Tolerations)
			}
			if spec.ServiceAccountName != "podpath" || spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
				t.Errorf("service account %q, automount %v; want podpath's token mounted", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
			}
			sc := ctr.SecurityContext
			if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil && *sc.Privileged ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Fatalf("container securityContext %+v; want every capability dropped, no escalation, read-only root", sc)
			}
			switch c.role {
			case "pod":
				psc := spec.SecurityContext
				if spec.HostNetwork || psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 ||
					psc.RunAsGroup == nil || *psc.RunAsGroup != 65534 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("Pod agent: hostNetwork %v, securityContext %+v; want the restricted level's settings", spec.HostNetwork, psc)
				}
				if len(sc.Capabilities.Add) != 0 || len(spec.Volumes) != 0 {
					t.Errorf("Pod agent adds capabilities %v or mounts %v", sc.Capabilities.Add, spec.Volumes)
				}
			case "host":
				if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
					t.Errorf("host agent: hostNetwork %v, dnsPolicy %s", spec.HostNetwork, spec.DNSPolicy)
				}
				if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
					t.Errorf("host agent runs as %v; want 0 (the image's user is 65534)", sc.RunAsUser)
				}
				if len(sc.Capabilities.Add) != 0 {
					t.Errorf("host agent adds %v; want no capability", sc.Capabilities.Add)
				}
				mounts := map[string]bool{}
				for _, m := range ctr.VolumeMounts {
					if !m.ReadOnly {
						t.Errorf("host agent mounts %s writable", m.MountPath)
					}
					mounts[m.MountPath] = true
				}
				if !mounts["/var/run/calico"] {
					t.Errorf("host agent mounts %v; want BIRD's socket dir /var/run/calico", mounts)
				}
				for _, v := range spec.Volumes {
					if v.HostPath == nil || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathUnset {
						t.Errorf("volume %s: %+v; want a hostPath of type \"\" (nodes without Calico lack it)", v.Name, v.VolumeSource)
					}
				}
			}
		})
	}
}

// Values reach the agents' arguments and Pods.
func TestRenderValues(t *testing.T) {
	r := render(t, map[string]any{
		"image":             map[string]any{"repository": "registry.example/podpath", "tag": "v9", "pullPolicy": "Always"},
		"port":              8000,
		"monitor":           map[string]any{"period": "1m", "rate": 5, "warmup": "10s", "factsInterval": "2m"},
		"priorityClassName": "system-node-critical",
		"nodeSelector":      map[string]any{"pool": "net"}, // merged with the default, as Helm merges maps
		"tolerations":       []any{},
	})
	ds := typed[appsv1.DaemonSet](t, r.Find("DaemonSet", "podpath-host"))
	spec := ds.Spec.Template.Spec
	ctr := spec.Containers[0]
	if want := wantArgs("host", "host-agent", "podpath", "8000", "1m", "5", "10s", "2m"); !slices.Equal(ctr.Args, want) {
		t.Errorf("args:\n got %q\nwant %q", ctr.Args, want)
	}
	if ctr.Image != "registry.example/podpath:v9" || ctr.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s %s", ctr.Image, ctr.ImagePullPolicy)
	}
	if ctr.Ports[0].ContainerPort != 8000 || ctr.Ports[1].ContainerPort != 8000 {
		t.Errorf("ports %+v; want 8000", ctr.Ports)
	}
	if spec.PriorityClassName != "system-node-critical" || !maps.Equal(spec.NodeSelector, map[string]string{"kubernetes.io/os": "linux", "pool": "net"}) || len(spec.Tolerations) != 0 {
		t.Errorf("priorityClassName %q, nodeSelector %v, tolerations %v", spec.PriorityClassName, spec.NodeSelector, spec.Tolerations)
	}
}

// Least privilege: read pods in the release's namespace and nodes, nothing else.
func TestRBAC(t *testing.T) {
	r := render(t, nil)
	role := typed[rbacv1.Role](t, r.Find("Role", "podpath"))
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}}}
	if fmt.Sprint(role.Rules) != fmt.Sprint(want) {
		t.Errorf("Role rules %+v; want %+v", role.Rules, want)
	}
	cr := typed[rbacv1.ClusterRole](t, r.Find("ClusterRole", "podpath-monitoring"))
	want[0].Resources = []string{"nodes"}
	if fmt.Sprint(cr.Rules) != fmt.Sprint(want) {
		t.Errorf("ClusterRole rules %+v; want %+v", cr.Rules, want)
	}
	for _, b := range []struct {
		kind    string
		name    string
		roleRef rbacv1.RoleRef
		subject []rbacv1.Subject
	}{
		{"RoleBinding", "podpath", rbacv1.RoleRef{}, nil},
		{"ClusterRoleBinding", "podpath-monitoring", rbacv1.RoleRef{}, nil},
	} {
		o := r.Find(b.kind, b.name)
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		if b.kind == "RoleBinding" {
			rb := typed[rbacv1.RoleBinding](t, o)
			ref, subjects = rb.RoleRef, rb.Subjects
		} else {
			crb := typed[rbacv1.ClusterRoleBinding](t, o)
			ref, subjects = crb.RoleRef, crb.Subjects
		}
		wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: strings.TrimSuffix(b.kind, "Binding"), Name: b.name}
		wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "podpath", Namespace: "monitoring"}}
		if ref != wantRef || !slices.Equal(subjects, wantSubjects) {
			t.Errorf("%s %s binds %+v to %+v; want %+v to %+v", b.kind, b.name, ref, subjects, wantRef, wantSubjects)
		}
	}
	sa := typed[corev1.ServiceAccount](t, r.Find("ServiceAccount", "podpath"))
	if sa.AutomountServiceAccountToken == nil || !*sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount automount %v; the monitor needs its token", sa.AutomountServiceAccountToken)
	}
}

func TestNotes(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"defaults", nil, "pod-security.kubernetes.io/enforce=privileged"},
		{"pod_agent_alone", map[string]any{"hostAgent": map[string]any{"enabled": false}}, "pod-security.kubernetes.io/enforce=restricted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			notes := render(t, c.values).Notes
			for _, want := range []string{c.want, ":7947/metrics", "kubectl label namespace monitoring"} {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
				}
			}
		})
	}
}

// The optional objects carry the chart's files verbatim.
func TestOptionalObjects(t *testing.T) {
	r := render(t, all())
	pm := r.Find("PodMonitor", "podpath")
	endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "agent" || endpoints[0].(map[string]any)["path"] != "/metrics" {
		t.Errorf("PodMonitor endpoints %v; want port agent, path /metrics", endpoints)
	}
	match, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	if want := map[string]string{"app.kubernetes.io/name": "podpath", "app.kubernetes.io/instance": "podpath"}; !maps.Equal(match, want) {
		t.Errorf("PodMonitor selects %v; want both agents of the release %v", match, want)
	}

	alerts := readFile(t, "alerts.yaml")
	var wantRules map[string]any
	if err := yaml.Unmarshal(alerts, &wantRules); err != nil {
		t.Fatal(err)
	}
	spec, _, _ := unstructured.NestedMap(r.Find("PrometheusRule", "podpath").Object, "spec")
	if !jsonEqual(t, spec, wantRules) {
		t.Errorf("PrometheusRule spec differs from files/alerts.yaml")
	}

	cm := typed[corev1.ConfigMap](t, r.Find("ConfigMap", "podpath-dashboard"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v; want grafana_dashboard: \"1\"", cm.Labels)
	}
	if got := cm.Data["podpath.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(readFile(t, "dashboard.json"))) {
		t.Errorf("dashboard ConfigMap's podpath.json differs from files/dashboard.json")
	}
	r = render(t, map[string]any{"grafana": map[string]any{"dashboard": map[string]any{"enabled": true, "namespace": "grafana"}}})
	if ns := r.Find("ConfigMap", "podpath-dashboard").GetNamespace(); ns != "grafana" {
		t.Errorf("dashboard namespace %q; want grafana", ns)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(t), "files", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The defaults values.yaml documents are the ones the issue fixes, and every key carries a
// comment (the chart's documentation is this file).
func TestValuesDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var cur any = v
		for k := range strings.SplitSeq(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		}
		return cur
	}
	for path, want := range map[string]any{
		"image.repository": "podpath/podpath", "image.tag": "", "image.pullPolicy": "IfNotPresent",
		"port": 7947, "monitor.period": "5m", "monitor.rate": 20, "monitor.warmup": "30s", "monitor.factsInterval": "5m",
		"resources.requests.cpu": "10m", "resources.requests.memory": "64Mi", "resources.limits.memory": "128Mi",
		"hostAgent.enabled": true, "podAgent.enabled": true,
		"prometheus.podMonitor.enabled": false, "prometheus.rules.enabled": false, "grafana.dashboard.enabled": false,
		"nodeSelector.kubernetes.io/os": nil, "priorityClassName": "",
	} {
		if path == "nodeSelector.kubernetes.io/os" {
			if ns, _ := get("nodeSelector").(map[string]any); ns["kubernetes.io/os"] != "linux" {
				t.Errorf("nodeSelector %v; want kubernetes.io/os: linux", ns)
			}
			continue
		}
		if got := get(path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("values.yaml %s = %v; want %v", path, got, want)
		}
	}
	if tol := fmt.Sprint(get("tolerations")); tol != "[map[operator:Exists]]" {
		t.Errorf("tolerations %s; want every taint tolerated", tol)
	}
	if !bytes.Contains(data, []byte("pod-security.kubernetes.io/enforce=privileged")) || !bytes.Contains(data, []byte(`"restricted"`)) {
		t.Errorf("values.yaml does not document the Pod Security levels the namespace needs")
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	// Every leaf needs a comment on itself or on a block holding it.
	var undocumented []string
	var walk func(n *yaml.Node, path string, documented bool)
	walk = func(n *yaml.Node, path string, documented bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := strings.TrimPrefix(path+"."+k.Value, ".")
			doc := documented || k.HeadComment != "" || k.LineComment != "" || val.LineComment != ""
			if val.Kind == yaml.MappingNode && len(val.Content) > 0 {
				walk(val, p, doc)
			} else if !doc {
				undocumented = append(undocumented, p)
			}
		}
	}
	walk(root.Content[0], "", false)
	if len(undocumented) > 0 {
		t.Errorf("values.yaml keys without a comment: %q", undocumented)
	}
}

// grafanaVars are the dashboard's variables, replaced by what Grafana would put there so the
// expressions parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$node", ".*", "$layer", ".*", "${datasource}", "")

// checkExpr parses a PromQL expression and checks it selects only contract metrics, with
// contract label values.
func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	// Prometheus's own parser: a syntax error, or a function or an
	// aggregation Prometheus does not have, breaks a rule or a panel
	// silently once deployed.
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v in %q", where, err, expr)
		return
	}
	selectors := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				selectors++
				if !contractMetrics[m.Value] {
					t.Errorf("%s: metric %q is not one the agents export (%q)", where, m.Value, expr)
				}
				continue
			}
			if allowed, ok := contractLabelValues[m.Name]; ok && m.Type == labels.MatchEqual && !slices.Contains(allowed, m.Value) {
				t.Errorf("%s: %s=%q is none of %q", where, m.Name, m.Value, allowed)
			}
		}
		return nil
	})
	if selectors == 0 && !strings.Contains(expr, "vector(") {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
}

// files/alerts.yaml: a Prometheus rule file (the fields Prometheus reads, nothing else), each
// expression PromQL over the contract's metrics.
func TestAlerts(t *testing.T) {
	type rule struct {
		Alert         string            `yaml:"alert"`
		Record        string            `yaml:"record"`
		Expr          string            `yaml:"expr"`
		For           string            `yaml:"for"`
		KeepFiringFor string            `yaml:"keep_firing_for"`
		Labels        map[string]string `yaml:"labels"`
		Annotations   map[string]string `yaml:"annotations"`
	}
	var file struct {
		Groups []struct {
			Name     string `yaml:"name"`
			Interval string `yaml:"interval"`
			Rules    []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "alerts.yaml")))
	dec.KnownFields(true) // a misspelt field is silently ignored by Prometheus: refuse it here
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yaml is no rule file: %v", err)
	}
	byName := map[string]rule{}
	for _, g := range file.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("rule %+v: exactly one of alert and record", r)
				continue
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q; want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are required", r.Alert)
			}
			checkExpr(t, r.Alert, r.Expr)
			if _, dup := byName[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			byName[r.Alert] = r
		}
	}
	for name, want := range map[string]struct{ severity, forDur, in string }{
		"PodpathMTUBlackhole":        {"critical", "2m", `podpath_monitor_findings{id="mtu-blackhole"}`},
		"PodpathPodNetworkPartition": {"critical", "5m", `podpath_monitor_peers_reachable_ratio{layer="pod"}`},
		"PodpathNodeUnreachable":     {"critical", "5m", `id="node-unreachable"`},
		"PodpathBGPSessionDown":      {"critical", "5m", `id="bgp-session-down"`},
		"PodpathPacketLoss":          {"warning", "10m", `id="packet-loss"`},
		"PodpathAgentDown":           {"warning", "5m", `up{job=~".*podpath.*"} == 0`},
	} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("no alert %s", name)
			continue
		}
		if r.Labels["severity"] != want.severity || r.For != want.forDur || !strings.Contains(r.Expr, want.in) {
			t.Errorf("%s: severity %s, for %s, expr %q; want %s, %s, containing %s", name, r.Labels["severity"], r.For, r.Expr, want.severity, want.forDur, want.in)
		}
	}
	if d := byName["PodpathMTUBlackhole"].Annotations["description"]; !strings.Contains(d, "kubectl podpath fix mtu") {
		t.Errorf("PodpathMTUBlackhole does not say to run kubectl podpath fix mtu: %q", d)
	}
}

// files/dashboard.json: every query is PromQL over the contract's metrics, and the panels the
// issue asks for are there.
func TestDashboard(t *testing.T) {
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		UID           string
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any
			}
		}
		Panels []json.RawMessage
	}
	if err := json.Unmarshal(readFile(t, "dashboard.json"), &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if dash.SchemaVersion < 36 || dash.UID == "" {
		t.Errorf("schemaVersion %d, uid %q; want a current schema and a stable uid", dash.SchemaVersion, dash.UID)
	}
	vars := map[string]string{}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		if m[2] != v.Name {
			t.Errorf("variable %s lists label %s", v.Name, m[2])
		}
		checkExpr(t, "variable "+v.Name, grafanaVars.Replace(m[1]))
	}
	if want := map[string]string{"datasource": "datasource", "node": "query", "layer": "query"}; !maps.Equal(vars, want) {
		t.Errorf("variables %v; want %v", vars, want)
	}

	type panel struct {
		Type, Title string
		Targets     []struct{ Expr string }
		Panels      []json.RawMessage
	}
	exprs := map[string][]string{}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `node=~"$node"`) || !strings.Contains(tg.Expr, `layer=~"$layer"`) {
					t.Errorf("panel %q: %q ignores the node and layer variables", p.Title, tg.Expr)
				}
				checkExpr(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr))
				exprs[p.Title] = append(exprs[p.Title], tg.Expr)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for title, want := range map[string][]string{
		"Reachable ratio per node": {"podpath_monitor_peers_reachable_ratio"},
		"Path MTU min per node":    {"podpath_monitor_path_mtu_min_bytes"},
		"MTU black holes":          {`id="mtu-blackhole"`},
		"Findings by id":           {"sum by (id) (podpath_monitor_findings"},
		"Echo RTT p50 / p99":       {"histogram_quantile(0.5, sum by (le", "histogram_quantile(0.99, sum by (le", "podpath_monitor_rtt_seconds_bucket"},
		"Probe loss rate per node": {`podpath_monitor_probes_total{result="lost"`},
		"Worst peers by loss":      {"podpath_monitor_worst_peer_loss_ratio"},
		"Worst peers by path MTU":  {"podpath_monitor_worst_peer_path_mtu_bytes"},
	} {
		got := strings.Join(exprs[title], "\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("panel %q: %q lacks %s", title, got, w)
			}
		}
	}
}
