package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The cluster DNS as kubeadm and Kubespray deploy it: CoreDNS Pods
// labelled k8s-app=kube-dns in kube-system behind a Service of the same
// label, named kube-dns (kubeadm) or coredns (Kubespray), configured by
// the ConfigMap coredns.
const (
	dnsLabel      = "k8s-app=kube-dns"
	corefileMap   = "coredns"
	corefileKey   = "Corefile"
	DomainDefault = "cluster.local"
)

// dnsServiceNames are the cluster DNS Service's names, looked up by name:
// reading them needs no right to list every Service of kube-system.
var dnsServiceNames = []string{"kube-dns", "coredns"}

// DNS is the cluster DNS: its Service and the Pods that serve it.
type DNS struct {
	Service string     `json:"service"`           // namespace/name
	Address netip.Addr `json:"address"`           // its ClusterIP
	Port    int        `json:"port"`              // its DNS port (53)
	Domain  string     `json:"domain"`            // the cluster domain the Corefile serves
	Source  string     `json:"source"`            // where Domain was read
	Pods    []DNSPod   `json:"pods,omitempty"`    // Running, with an address
	Skipped string     `json:"skipped,omitempty"` // why the DNS checks cannot run
}

// DNSPod is one CoreDNS Pod.
type DNSPod struct {
	Name    string     `json:"name"`
	Node    string     `json:"node"`
	Address netip.Addr `json:"address"`
	Ready   bool       `json:"ready"`
}

// clusterDNS finds the cluster DNS; nil when the cluster has none that
// podpath knows (another DNS add-on, or none), or it may not be read.
func clusterDNS(ctx context.Context, cs kubernetes.Interface) (*DNS, error) {
	var svc *corev1.Service
	for _, name := range dnsServiceNames {
		s, err := cs.CoreV1().Services(kubeSystem).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read Service %s/%s: %w", kubeSystem, name, err)
		}
		svc = s
		break
	}
	if svc == nil {
		return nil, nil
	}
	d := &DNS{Service: kubeSystem + "/" + svc.Name, Domain: DomainDefault}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		d.Skipped = fmt.Sprintf("Service %s has no ClusterIP (%q)", d.Service, svc.Spec.ClusterIP)
		return d, nil
	}
	d.Address = ip
	for _, p := range svc.Spec.Ports {
		if p.Protocol == corev1.ProtocolUDP || p.Protocol == "" {
			if d.Port == 0 || p.Port == 53 {
				d.Port = int(p.Port)
			}
		}
	}
	if d.Port == 0 {
		d.Skipped = fmt.Sprintf("Service %s has no UDP port", d.Service)
		return d, nil
	}
	d.Domain, d.Source = corefileDomain(ctx, cs)
	pods, err := cs.CoreV1().Pods(kubeSystem).List(ctx, metav1.ListOptions{LabelSelector: dnsLabel})
	if err != nil && !apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("list the cluster DNS's Pods (%s in %s): %w", dnsLabel, kubeSystem, err)
	}
	if pods != nil {
		for _, p := range pods.Items {
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.Spec.HostNetwork {
				continue
			}
			d.Pods = append(d.Pods, DNSPod{Name: p.Name, Node: p.Spec.NodeName, Address: ip, Ready: podReady(&p)})
		}
	}
	slices.SortFunc(d.Pods, func(a, b DNSPod) int { return strings.Compare(a.Name, b.Name) })
	return d, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// corefileDomain is the zone the Corefile's kubernetes plugin serves
// (kube-system/coredns), and where it was read; the default when it
// cannot be read.
func corefileDomain(ctx context.Context, cs kubernetes.Interface) (string, string) {
	cm, err := cs.CoreV1().ConfigMaps(kubeSystem).Get(ctx, corefileMap, metav1.GetOptions{})
	if err != nil {
		return DomainDefault, "the default: ConfigMap " + kubeSystem + "/" + corefileMap + " not read"
	}
	if d := CorefileDomain(cm.Data[corefileKey]); d != "" {
		return d, "ConfigMap " + kubeSystem + "/" + corefileMap + " " + corefileKey
	}
	return DomainDefault, "the default: no kubernetes zone in " + kubeSystem + "/" + corefileMap
}

// CorefileDomain is the first zone of a Corefile's kubernetes plugin that
// is not a reverse zone: `kubernetes cluster.local in-addr.arpa ip6.arpa {`.
func CorefileDomain(corefile string) string {
	for _, line := range strings.Split(corefile, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "kubernetes" {
			continue
		}
		for _, z := range f[1:] {
			z = strings.TrimSuffix(z, ".")
			if z == "{" || strings.HasPrefix(z, "#") {
				break
			}
			if !strings.HasSuffix(z, "in-addr.arpa") && !strings.HasSuffix(z, "ip6.arpa") && z != "" {
				return z
			}
		}
	}
	return ""
}
