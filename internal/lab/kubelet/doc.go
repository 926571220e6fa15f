// Package kubelet makes a running lab a Kubernetes cluster's nodes for a
// real control plane (internal/kubetest): it registers one Node per lab
// node, runs the Pods bound to them that are podpath agents as real
// processes inside the lab's network namespaces, reports their status as a
// kubelet does, and confirms their deletion. Their containers reach the
// API server as in-cluster clients do: a projected service account token
// with the cluster's CA and namespace, and KUBERNETES_SERVICE_HOST/PORT
// naming a forwarder the kubelet keeps inside each namespace it runs a
// process in. ServeEgress stands in for the Konnectivity agents, so the
// API server's Pod proxy reaches addresses that exist only inside the lab.
//
// It is a test double with a narrow repertoire, not a kubelet: no images,
// no container isolation beyond the network namespace and the user, no
// mounts (volumes are directories on the host, and arguments naming a
// mount path are rewritten to them), only Secret, ConfigMap, downward API
// and projected volumes, only the first container of a Pod.
package kubelet
