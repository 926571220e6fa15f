package hostfacts

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"

	"github.com/google/nftables"

	"podpath/internal/model"
	"podpath/internal/nstest"
)

// kube-proxy as the host agent sees it, in a namespace of its own: nothing
// listening, a healthy and an unhealthy /healthz (kube-proxy's answers),
// and the rule sets of its nftables and iptables modes.
func TestKubeProxyState(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	h := nstest.Handle(t, ns)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	var got []model.KubeProxy
	nstest.In(t, ns, func() error {
		ctx := context.Background()
		got = append(got, kubeProxyState(ctx, "http://127.0.0.1:10256/healthz", nil))
		ln, err := net.Listen("tcp", "127.0.0.1:10256")
		if err != nil {
			return err
		}
		code := http.StatusOK
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"lastUpdated": "2026-12-04 04:40:00 +0000 UTC","currentTime": "2026-12-04 04:40:01 +0000 UTC", "nodeEligible": true}`))
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		got = append(got, kubeProxyState(ctx, "http://127.0.0.1:10256/healthz", nil))
		code = http.StatusServiceUnavailable
		c, err := nftables.New()
		if err != nil {
			return err
		}
		kp := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "kube-proxy"})
		c.AddChain(&nftables.Chain{Name: "services", Table: kp})
		nat := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "nat"})
		c.AddChain(&nftables.Chain{Name: "KUBE-SERVICES", Table: nat})
		if err := c.Flush(); err != nil {
			return err
		}
		got = append(got, kubeProxyState(ctx, "http://127.0.0.1:10256/healthz", []Link{{Name: "kube-ipvs0"}}))
		return nil
	})
	if g := got[0]; g.Healthz != model.KubeProxyNotListening || len(g.Rules) != 0 || g.RulesError != "" {
		t.Errorf("nothing there: %+v; want not-listening, no rules", g)
	}
	if g := got[1]; g.Healthz != model.KubeProxyHealthy || g.HealthzDetail == "" {
		t.Errorf("200: %+v; want healthy with kube-proxy's answer", g)
	}
	if g := got[2]; g.Healthz != model.KubeProxyUnhealthy || !slices.Equal(g.Rules, []string{"nftables", "iptables", "ipvs"}) {
		t.Errorf("503 and every mode's rules: %+v; want unhealthy, rules nftables, iptables, ipvs", g)
	}
}
