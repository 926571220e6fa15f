package lab

import (
	"fmt"
	"strings"
)

// The cluster DNS of a Kubernetes lab, as Kubespray deploys it
// (roles/kubernetes-apps/ansible/templates/coredns-*.yml.j2): CoreDNS built
// from its Go module (scripts/dns-tools.sh, tools/coredns) in a Deployment
// of two replicas on two different nodes, behind the Service coredns at the
// Service range's third address (Kubespray's skydns_server); every kubelet
// names it as clusterDNS.
const (
	// ClusterDNS is the cluster DNS Service's address: the third of
	// ServiceCIDR, as Kubespray's skydns_server.
	ClusterDNS = "10.233.0.3"
	// ClusterDomain is the kubelets' clusterDomain and the zone CoreDNS serves.
	ClusterDomain = "cluster.local"
	// CoreDNSVersion is tools/coredns's CoreDNS module version, the image tag.
	CoreDNSVersion = "v1.15.0"
	// CoreDNSImage is the image the Deployment names: the repository path
	// the nodes' mirrors ask the lab's registry for.
	CoreDNSImage = "registry.k8s.io/coredns/coredns:" + CoreDNSVersion
	// DNSReplicas is the Deployment's replicas (Kubespray's dns_min_replicas).
	DNSReplicas = 2
	// DNSLabel is the label CoreDNS's Pods carry (k8s-app=kube-dns).
	DNSLabel = "k8s-app=kube-dns"
)

// corefile is Kubespray's Corefile less two plugins. `forward . <upstream>`
// and `loop` are left out: the lab has no upstream resolver and never routes
// outside itself, so CoreDNS answers the cluster's zone (and its reverse
// zones) and nothing else; loop, which detects forwarding loops by sending a
// query upstream, has nothing to check without forward.
const corefile = `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ` + ClusterDomain + ` in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    cache 30
    reload
    loadbalance
}
`

// dnsObjects are Kubespray's CoreDNS objects in kube-system: its service
// account and RBAC, the Corefile's ConfigMap, the Deployment and the Service.
func dnsObjects() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system, labels: {addonmanager.kubernetes.io/mode: Reconcile}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
  labels: {kubernetes.io/bootstrapping: rbac-defaults, addonmanager.kubernetes.io/mode: Reconcile}
rules:
  - {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [""], resources: [nodes], verbs: [get]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
  labels: {kubernetes.io/bootstrapping: rbac-defaults, addonmanager.kubernetes.io/mode: Reconcile}
  annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system, labels: {addonmanager.kubernetes.io/mode: EnsureExists}}
data:
  Corefile: |
%[1]s---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns, addonmanager.kubernetes.io/mode: Reconcile, kubernetes.io/name: coredns}
spec:
  replicas: %[2]d
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 10%%}
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
      annotations: {createdby: kubespray}
    spec:
      priorityClassName: system-cluster-critical
      nodeSelector: {kubernetes.io/os: linux}
      serviceAccountName: coredns
      tolerations:
        - {key: node-role.kubernetes.io/master, effect: NoSchedule}
        - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels: {k8s-app: kube-dns}
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              preference:
                matchExpressions:
                  - {key: node-role.kubernetes.io/control-plane, operator: In, values: [""]}
      containers:
        - name: coredns
          image: %[3]s
          imagePullPolicy: IfNotPresent
          resources:
            limits: {memory: 300Mi}
            requests: {cpu: 100m, memory: 70Mi}
          args: ["-conf", "/etc/coredns/Corefile"]
          volumeMounts:
            - {name: config-volume, mountPath: /etc/coredns}
          ports:
            - {containerPort: 53, name: dns, protocol: UDP}
            - {containerPort: 53, name: dns-tcp, protocol: TCP}
            - {containerPort: 9153, name: metrics, protocol: TCP}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
            readOnlyRootFilesystem: true
          livenessProbe:
            httpGet: {path: /health, port: 8080, scheme: HTTP}
            timeoutSeconds: 5
            successThreshold: 1
            failureThreshold: 10
          readinessProbe:
            httpGet: {path: /ready, port: 8181, scheme: HTTP}
            # Kubespray keeps the default 10 s; 2 s lets lab up return as
            # soon as CoreDNS is ready.
            periodSeconds: 2
            timeoutSeconds: 5
            successThreshold: 1
            failureThreshold: 10
      dnsPolicy: Default
      volumes:
        - name: config-volume
          configMap:
            name: coredns
            items: [{key: Corefile, path: Corefile}]
---
apiVersion: v1
kind: Service
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: coredns, addonmanager.kubernetes.io/mode: Reconcile}
  annotations: {prometheus.io/path: /metrics, prometheus.io/port: "9153", prometheus.io/scrape: "true"}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: %[4]s
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
    - {name: metrics, port: 9153, protocol: TCP}
`, indent(corefile, "    "), DNSReplicas, CoreDNSImage, ClusterDNS)
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}
