package hostfacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/google/nftables"

	"podpath/internal/model"
)

// KubeProxyTimeout bounds the /healthz GET: kube-proxy answers on
// loopback at once when it runs.
const KubeProxyTimeout = 1 * time.Second

// kubeProxyState reads kube-proxy's health and which of its rule sets the
// kernel holds. Nothing of it is a verdict alone: a cluster without
// kube-proxy (Calico's eBPF dataplane, Cilium's replacement) has none of
// it, and the diagnosis speaks only when traffic through a Service fails.
func kubeProxyState(ctx context.Context, url string, links []Link) model.KubeProxy {
	kp := model.KubeProxy{HealthzAddress: url}
	hctx, cancel := context.WithTimeout(ctx, KubeProxyTimeout)
	defer cancel()
	code, body, err := httpGet(hctx, url)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		kp.Healthz, kp.HealthzDetail = model.KubeProxyNotListening, "connection refused"
	case err != nil:
		kp.HealthzDetail = err.Error() // unknown: a timeout says nothing for certain
	case code == 200:
		kp.Healthz, kp.HealthzDetail = model.KubeProxyHealthy, body
	default:
		kp.Healthz, kp.HealthzDetail = model.KubeProxyUnhealthy, fmt.Sprintf("HTTP %d %s", code, body)
	}
	rules, err := kubeProxyRules()
	if err != nil {
		kp.RulesError = err.Error()
	}
	kp.Rules = rules
	if slices.ContainsFunc(links, func(l Link) bool { return l.Name == "kube-ipvs0" }) {
		kp.Rules = append(kp.Rules, "ipvs")
	}
	return kp
}

// kubeProxyRules names the nftables and iptables-nft rule sets of
// kube-proxy that are in this namespace (socket opened on this thread).
func kubeProxyRules() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, ch := range chains {
		switch {
		case ch.Table.Name == "kube-proxy" && (ch.Table.Family == nftables.TableFamilyIPv4 || ch.Table.Family == nftables.TableFamilyIPv6):
			add("nftables")
		case ch.Table.Name == "nat" && ch.Name == "KUBE-SERVICES":
			add("iptables")
		}
	}
	return out, nil
}
