package kube

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"podpath/internal/kubetest"
)

const fixtures = "../../../../shared/fixtures/calico"

// Against a real kube-apiserver with Calico's real manifest applied, as a
// Kubespray-style VXLAN install leaves it.
func TestDiscoverManifestInstall(t *testing.T) {
	env := kubetest.Start(t, false)
	env.Apply(t, filepath.Join(fixtures, "manifests", "calico-vxlan.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The objects a Kubespray VXLAN install has, and an IPPool carrying the
	// `mtu` field some articles suggest (kubectl keeps it in its annotation).
	if err := env.ApplyBytes(ctx, []byte(`
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-pool}
spec: {cidr: 10.233.64.0/18, blockSize: 26, vxlanMode: Always, ipipMode: Never, natOutgoing: true}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: article-pool
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"crd.projectcalico.org/v1","kind":"IPPool","metadata":{"name":"article-pool"},"spec":{"cidr":"10.240.0.0/16","mtu":1500,"disabled":true}}'
spec: {cidr: 10.240.0.0/16, disabled: true}
---
apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata: {name: default}
spec: {vxlanMTU: 1400, mtuIfacePattern: '^bond0$'}
---
apiVersion: crd.projectcalico.org/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 198.18.0.254, asNumber: 64513}
---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata: {name: node1-10-233-64-0-26}
spec: {node: node1, cidr: 10.233.64.0/26, state: confirmed, deleted: "false"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-proxy, namespace: kube-system}
data:
  config.conf: |
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: ipvs
    ipvs: {strictARP: false}
---
apiVersion: v1
kind: Service
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        kubernetes corp.internal in-addr.arpa ip6.arpa {
          pods insecure
        }
        cache 30
    }
`)); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(env.Config)
	for i, n := range []struct {
		name     string
		ip       string
		ready    bool
		cordoned bool
	}{{"node1", "198.18.0.1", true, false}, {"node2", "198.18.0.2", true, false}, {"node3", "198.18.0.3", false, true}} {
		status := corev1.ConditionTrue
		if !n.ready {
			status = corev1.ConditionFalse
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name,
			Annotations: map[string]string{AnnotIPv4Address: n.ip + "/16", AnnotVXLANAddr: "10.233.64." + []string{"0", "64", "128"}[i]}},
			Spec: corev1.NodeSpec{Unschedulable: n.cordoned}}
		created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	c, err := Discover(ctx, cs, dynamic.NewForConfigOrDie(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	if c.KubeProxy == nil || c.KubeProxy.Mode != "ipvs" || c.Network().KubeProxyMode != "ipvs" {
		t.Errorf("kube-proxy %+v; want mode ipvs from its ConfigMap", c.KubeProxy)
	}
	if d := c.DNS; d == nil || d.Service != "kube-system/coredns" || !d.Address.IsValid() || d.Port != 53 || d.Domain != "corp.internal" || d.Skipped != "" {
		t.Errorf("cluster DNS %+v; want Kubespray's Service kube-system/coredns, port 53, domain corp.internal from the Corefile", c.DNS)
	}
	if c.CNI.Name != "calico" || c.CNI.Install != "manifest" {
		t.Errorf("CNI = %+v; want calico installed by manifest", c.CNI)
	}
	if len(c.Nodes) != 3 || c.Nodes[0].InternalIP != "198.18.0.1" || !c.Nodes[0].Ready || c.Nodes[2].Ready || !c.Nodes[2].Cordoned {
		t.Errorf("nodes = %+v; want node1 Ready at 198.18.0.1, node3 NotReady and cordoned", c.Nodes)
	}
	if c.Nodes[1].Calico[AnnotVXLANAddr] != "10.233.64.64" {
		t.Errorf("node2 Calico annotations = %v", c.Nodes[1].Calico)
	}
	cal := c.Calico
	if cal == nil || cal.APIGroup != "crd.projectcalico.org" || cal.Backend() != "vxlan" || cal.ConfigMap["veth_mtu"] != "0" || cal.PodMTU() != 1400 {
		t.Fatalf("calico = %+v; want crd.projectcalico.org, backend vxlan, veth_mtu 0 (auto), Felix vxlanMTU 1400", cal)
	}
	if cal.MTUIfacePattern != "^bond0$" || c.Network().MTUIfacePattern != "^bond0$" {
		t.Errorf("mtuIfacePattern %q (network %q); want FelixConfiguration's ^bond0$", cal.MTUIfacePattern, c.Network().MTUIfacePattern)
	}
	if b := cal.BGP; !b.Configured || b.ASNumber != 64512 || b.NodeMesh == nil || *b.NodeMesh || len(b.Peers) != 1 || b.Peers[0] != "tor (198.18.0.254)" {
		t.Errorf("BGP = %+v; want AS 64512, mesh off, peer tor (198.18.0.254)", b)
	}
	if got := cal.Blocks["node1"]; len(got) != 1 || got[0] != "10.233.64.0/26" {
		t.Errorf("blocks = %v; want node1 → 10.233.64.0/26", cal.Blocks)
	}
	var article *IPPool
	for i, p := range cal.IPPools {
		if p.Name == "article-pool" {
			article = &cal.IPPools[i]
		}
	}
	if article == nil || article.MTU != 1500 {
		t.Errorf("IPPools = %+v; want article-pool's ignored mtu 1500 read from kubectl's annotation", cal.IPPools)
	}
}
