package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// kube-proxy's configuration, where kubeadm and Kubespray keep it.
const (
	kubeSystem         = "kube-system"
	kubeProxyConfigMap = "kube-proxy"
	kubeProxyConfigKey = "config.conf"
)

// KubeProxy is kube-proxy's configuration as the cluster keeps it.
type KubeProxy struct {
	// Mode is kube-proxy's proxy mode: iptables (also when the
	// configuration leaves it empty, the Linux default), ipvs or nftables.
	Mode   string `json:"mode"`
	Source string `json:"source"`
}

// kubeProxyConfig reads kube-system/kube-proxy's config.conf; nil when
// there is none (kube-proxy configured otherwise, or replaced: Calico's
// eBPF dataplane, Cilium) or it may not be read.
func kubeProxyConfig(ctx context.Context, cs kubernetes.Interface) (*KubeProxy, error) {
	cm, err := cs.CoreV1().ConfigMaps(kubeSystem).Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", kubeSystem, kubeProxyConfigMap, err)
	}
	conf, ok := cm.Data[kubeProxyConfigKey]
	if !ok {
		return nil, nil
	}
	var c struct {
		Mode string `json:"mode"`
	}
	if err := yaml.Unmarshal([]byte(conf), &c); err != nil {
		return nil, fmt.Errorf("read %s/%s %s: %w", kubeSystem, kubeProxyConfigMap, kubeProxyConfigKey, err)
	}
	kp := &KubeProxy{Mode: c.Mode, Source: fmt.Sprintf("ConfigMap %s/%s %s mode", kubeSystem, kubeProxyConfigMap, kubeProxyConfigKey)}
	if kp.Mode == "" {
		kp.Mode, kp.Source = "iptables", kp.Source+" (unset: iptables, the default on Linux)"
	}
	return kp, nil
}
