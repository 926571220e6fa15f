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
}

// ErrServicesForbidden: the caller may not create Services or
// EndpointSlices in the run's namespace; the run goes on without them.
var ErrServicesForbidden = errors.New("not allowed to create Services and EndpointSlices (deploy/rbac.yaml's podpath-doctor grants it)")

// endpointSliceManager marks the run's EndpointSlices as its own: the
// EndpointSlice controller leaves slices of other managers alone.
const endpointSliceManager = "podpath.io"

// CreateServices puts a ClusterIP Service in front of each backend: no
// selector, and an EndpointSlice naming that backend alone, so that
// traffic to it goes to that one Pod through the sending node's
// kube-proxy (its DNAT). Both the agent's UDP and TCP port. The Services
// live in the run's namespace and go with it.
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
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports},
		}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			return out, ErrServicesForbidden
		}
		if err != nil {
			return out, fmt.Errorf("create Service %s/%s: %w", r.Namespace, name, err)
		}
		cip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil {
			return out, fmt.Errorf("Service %s/%s: ClusterIP %q: %w", r.Namespace, name, svc.Spec.ClusterIP, err)
		}
		addr := netip.AddrPortFrom(cip, AgentPort)
		out = append(out, ServiceOf{Backend: b, Name: r.Namespace + "/" + name, Address: addr.String()})
	}
	return out, nil
}
