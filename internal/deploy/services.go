package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Backend is a Pod agent a run's Service sends to.
type Backend struct {
	Node, Pod, IP string
}

// ServiceOf is a run's Service in front of one backend.
type ServiceOf struct {
	Backend
	Name    string // namespace/name
	Address string // ClusterIP:port
	// NodePort is the Service's port on every node, the same for UDP and
	// TCP (the agent answers both on one port); 0: none.
	NodePort int
}

// ErrServicesForbidden: the caller may not create Services or
// EndpointSlices in the run's namespace; the run goes on without them.
var ErrServicesForbidden = errors.New("not allowed to create and update Services and create EndpointSlices (deploy/rbac.yaml's podpath-doctor grants it)")

// endpointSliceManager marks the run's EndpointSlices as its own: the
// EndpointSlice controller leaves slices of other managers alone.
const endpointSliceManager = "podpath.io"

// CreateServices puts a NodePort Service (and so a ClusterIP) in front of
// each backend: no selector, and an EndpointSlice naming that backend
// alone, so that traffic to it goes to that one Pod through kube-proxy's
// DNAT: the sending node's for the ClusterIP, the receiving node's for a
// node's address and the NodePort. Both the agent's UDP and TCP port, on
// one node port. The Services live in the run's namespace and go with it.
func (r *Run) CreateServices(ctx context.Context, backends []Backend) ([]ServiceOf, error) {
	var out []ServiceOf
	for i, b := range backends {
		ip, err := netip.ParseAddr(b.IP)
		if err != nil {
			return out, fmt.Errorf("backend %s on %s: address %q: %w", b.Pod, b.Node, b.IP, err)
		}
		name := "backend-" + strconv.Itoa(i)
		labels := map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.ID}
		ports := []corev1.ServicePort{
			{Name: "udp", Protocol: corev1.ProtocolUDP, Port: AgentPort, TargetPort: intstr.FromInt32(AgentPort)},
			{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: AgentPort, TargetPort: intstr.FromInt32(AgentPort)},
		}
		// The EndpointSlice first: kube-proxy then meets the Service with its
		// backend in one sync. A Service seen alone is programmed as one without
		// endpoints (UDP rejected), and the backend follows only at kube-proxy's
		// next sync, up to its minSyncPeriod (1 s by default) later.
		family := discoveryv1.AddressTypeIPv4
		if ip.Is6() && !ip.Is4In6() {
			family = discoveryv1.AddressTypeIPv6
		}
		sliceLabels := map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.ID,
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: endpointSliceManager}
		ready, node := true, b.Node
		udp, tcp, port := corev1.ProtocolUDP, corev1.ProtocolTCP, int32(AgentPort)
		udpName, tcpName := "udp", "tcp"
		_, err = r.cs.DiscoveryV1().EndpointSlices(r.Namespace).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: sliceLabels},
			AddressType: family,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: &node}},
			Ports: []discoveryv1.EndpointPort{{Name: &udpName, Protocol: &udp, Port: &port}, {Name: &tcpName, Protocol: &tcp, Port: &port}},
		}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			return out, ErrServicesForbidden
		}
		if err != nil {
			return out, fmt.Errorf("create EndpointSlice %s/%s: %w", r.Namespace, name, err)
		}
		svc, err := r.cs.CoreV1().Services(r.Namespace).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
				Annotations: map[string]string{"podpath.io/backend-node": b.Node, "podpath.io/backend-pod": b.Pod}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: ports},
		}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			return out, ErrServicesForbidden
		}
		if err != nil {
			return out, fmt.Errorf("create Service %s/%s: %w", r.Namespace, name, err)
		}
		nodePort, err := r.samePort(ctx, svc)
		if err != nil {
			return out, err
		}
		cip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil {
			return out, fmt.Errorf("Service %s/%s: ClusterIP %q: %w", r.Namespace, name, svc.Spec.ClusterIP, err)
		}
		addr := netip.AddrPortFrom(cip, AgentPort)
		out = append(out, ServiceOf{Backend: b, Name: r.Namespace + "/" + name, Address: addr.String(), NodePort: nodePort})
	}
	return out, nil
}

// samePort gives the Service's UDP port the node port its TCP port got:
// the API server allocates one per port, and may give one number to both
// protocols of a Service.
func (r *Run) samePort(ctx context.Context, svc *corev1.Service) (int, error) {
	var tcp int32
	same := true
	for _, p := range svc.Spec.Ports {
		if p.Protocol == corev1.ProtocolTCP {
			tcp = p.NodePort
		}
	}
	for i, p := range svc.Spec.Ports {
		if p.Protocol == corev1.ProtocolUDP && p.NodePort != tcp {
			svc.Spec.Ports[i].NodePort, same = tcp, false
		}
	}
	if same {
		return int(tcp), nil
	}
	_, err := r.cs.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
	if apierrors.IsForbidden(err) {
		return 0, ErrServicesForbidden
	}
	if err != nil {
		return 0, fmt.Errorf("give Service %s/%s's UDP port node port %d, its TCP port's: %w", svc.Namespace, svc.Name, tcp, err)
	}
	return int(tcp), nil
}

// LargeDNSRecords is how many address records the run's large DNS name
// has: about 3,000 bytes of answer (16 bytes a record, the name
// compressed), more than any Pod MTU short of jumbo frames lets through
// unfragmented, and less than the 4,096 bytes of EDNS0 a resolver offers,
// so over UDP it comes as one fragmented datagram, not truncated.
const LargeDNSRecords = 180

// LargeDNSName is the run's name with a large DNS answer.
const LargeDNSName = "dns-large"

// largeDNSNet holds the large name's addresses: RFC 5737's TEST-NET-1,
// routed nowhere. They are DNS records only: nothing is ever sent to them
// (the Service is headless, so kube-proxy programs nothing for it).
var largeDNSNet = netip.MustParsePrefix("192.0.2.0/24")

// CreateLargeDNSName creates a headless Service without a selector and an
// EndpointSlice naming LargeDNSRecords addresses, so that the cluster DNS
// answers the Service's name with a large answer. It returns the Service's
// name; ErrServicesForbidden when the caller may not.
func (r *Run) CreateLargeDNSName(ctx context.Context) (string, error) {
	labels := map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.ID}
	sliceLabels := map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.ID,
		discoveryv1.LabelServiceName: LargeDNSName, discoveryv1.LabelManagedBy: endpointSliceManager}
	ready := true
	tcp, port, portName := corev1.ProtocolTCP, int32(9), "none"
	var eps []discoveryv1.Endpoint
	a := largeDNSNet.Addr()
	for range LargeDNSRecords {
		a = a.Next()
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{a.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	_, err := r.cs.DiscoveryV1().EndpointSlices(r.Namespace).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: LargeDNSName, Labels: sliceLabels}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: eps,
		// CoreDNS makes a headless Service's records port by port: one port, one record an address.
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Protocol: &tcp, Port: &port}},
	}, metav1.CreateOptions{})
	if apierrors.IsForbidden(err) {
		return "", ErrServicesForbidden
	}
	if err != nil {
		return "", fmt.Errorf("create EndpointSlice %s/%s: %w", r.Namespace, LargeDNSName, err)
	}
	_, err = r.cs.CoreV1().Services(r.Namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: LargeDNSName, Labels: labels,
			Annotations: map[string]string{"podpath.io/purpose": "a large DNS answer for the cluster DNS checks; its addresses (192.0.2.0/24, documentation only) are never contacted"}},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: portName, Protocol: tcp, Port: port}}},
	}, metav1.CreateOptions{})
	if apierrors.IsForbidden(err) {
		return "", ErrServicesForbidden
	}
	if err != nil {
		return "", fmt.Errorf("create Service %s/%s: %w", r.Namespace, LargeDNSName, err)
	}
	return LargeDNSName, nil
}
