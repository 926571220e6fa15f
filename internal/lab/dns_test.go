package lab

import (
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"podpath/internal/kubeobj"
)

// The cluster DNS's objects are Kubespray's: the names, labels, address and
// Deployment settings a Kubespray cluster has, the Corefile without forward
// and loop.
func TestDNSObjects(t *testing.T) {
	objs, err := kubeobj.Decode([]byte(dnsObjects()))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var dep appsv1.Deployment
	var svc corev1.Service
	var cm corev1.ConfigMap
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		var into any
		switch o.GetKind() {
		case "Deployment":
			into = &dep
		case "Service":
			into = &svc
		case "ConfigMap":
			into = &cm
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
			t.Fatalf("%s: %v", o.GetKind(), err)
		}
		if o.GetNamespace() != "kube-system" {
			t.Errorf("%s in namespace %q, want kube-system", o.GetName(), o.GetNamespace())
		}
	}
	want := "ServiceAccount/coredns ClusterRole/system:coredns ClusterRoleBinding/system:coredns ConfigMap/coredns Deployment/coredns Service/coredns"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("objects %s; want %s", got, want)
	}
	if svc.Spec.ClusterIP != "10.233.0.3" || svc.Spec.Selector["k8s-app"] != "kube-dns" || svc.Labels["kubernetes.io/name"] != "coredns" || len(svc.Spec.Ports) != 3 {
		t.Errorf("Service %+v %v: want 10.233.0.3, selector k8s-app=kube-dns, dns, dns-tcp and metrics", svc.Spec, svc.Labels)
	}
	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]
	if *dep.Spec.Replicas != 2 || spec.DNSPolicy != corev1.DNSDefault || c.Image != "registry.k8s.io/coredns/coredns:v1.15.0" ||
		strings.Join(c.Args, " ") != "-conf /etc/coredns/Corefile" || c.ImagePullPolicy != corev1.PullIfNotPresent ||
		c.ReadinessProbe.HTTPGet.Path != "/ready" || c.ReadinessProbe.HTTPGet.Port.IntValue() != 8181 ||
		c.LivenessProbe.HTTPGet.Path != "/health" || c.LivenessProbe.HTTPGet.Port.IntValue() != 8080 {
		t.Errorf("Deployment: %+v", dep.Spec)
	}
	anti := spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(anti) != 1 || anti[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("anti-affinity %+v: want the replicas on different nodes", anti)
	}
	if caps := c.SecurityContext.Capabilities; len(caps.Add) != 1 || caps.Add[0] != "NET_BIND_SERVICE" || len(caps.Drop) != 1 || caps.Drop[0] != "ALL" {
		t.Errorf("capabilities %+v: want NET_BIND_SERVICE added, ALL dropped", caps)
	}
	core := cm.Data["Corefile"]
	for _, p := range []string{"errors", "health", "ready", "kubernetes cluster.local in-addr.arpa ip6.arpa", "prometheus :9153", "cache 30", "reload", "loadbalance"} {
		if !strings.Contains(core, "    "+p) {
			t.Errorf("Corefile lacks %q:\n%s", p, core)
		}
	}
	for _, p := range []string{"forward", "loop"} {
		if regexp.MustCompile(`(?m)^\s*` + p + `\b`).MatchString(core) {
			t.Errorf("Corefile has %s: the lab has no upstream resolver\n%s", p, core)
		}
	}
}

// The image's tag is the CoreDNS that scripts/dns-tools.sh builds.
func TestCoreDNSVersionIsToolsModule(t *testing.T) {
	mod, err := os.ReadFile("../../tools/coredns/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "github.com/coredns/coredns "+CoreDNSVersion+"\n") {
		t.Errorf("tools/coredns/go.mod does not require github.com/coredns/coredns %s (CoreDNSVersion)", CoreDNSVersion)
	}
}
