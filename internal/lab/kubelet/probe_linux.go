package kubelet

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"podpath/internal/nsenter"
)

// probeTimeout bounds one readiness probe, dial included.
const probeTimeout = time.Second

// prober runs a container's httpGet readiness probe from inside the Pod's
// namespace: the address may exist nowhere else.
type prober struct {
	url          string
	header       http.Header
	netns        string
	initialDelay time.Duration
	period       time.Duration
	successes    int // needed in a row to become ready
	failures     int // needed in a row to become unready
	okRun        int
	failRun      int
	ready        bool
}

// newProber is nil when the container has no httpGet readiness probe: it
// is then ready once started (other probe kinds are not run).
func newProber(c *corev1.Container, podIP netip.Addr, netns string) *prober {
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil {
		return nil
	}
	g := rp.HTTPGet
	port := g.Port.IntValue()
	if port == 0 { // a named port
		for _, p := range c.Ports {
			if p.Name == g.Port.String() {
				port = int(p.ContainerPort)
			}
		}
	}
	host := g.Host
	if host == "" {
		host = podIP.String()
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	pr := &prober{url: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path, header: http.Header{}, netns: netns,
		initialDelay: time.Duration(rp.InitialDelaySeconds) * time.Second,
		period:       max(time.Duration(rp.PeriodSeconds)*time.Second, time.Second),
		successes:    max(int(rp.SuccessThreshold), 1), failures: max(int(rp.FailureThreshold), 1)}
	if rp.FailureThreshold == 0 {
		pr.failures = 3 // the API default
	}
	for _, h := range g.HTTPHeaders {
		pr.header.Add(h.Name, h.Value)
	}
	return pr
}

// probe is one GET: success is a 2xx or 3xx answer, as the kubelet counts it.
func (pr *prober) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	tr := &http.Transport{
		DisableKeepAlives: true,
		// The kubelet does not verify a probe's certificate either.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nsenter.DialContext(ctx, pr.netns, &net.Dialer{Timeout: probeTimeout}, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: probeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.url, nil)
	if err != nil {
		return false
	}
	req.Header = pr.header.Clone()
	req.Header.Set("User-Agent", "kube-probe/lab")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// record counts a result and returns whether the container is ready now.
func (pr *prober) record(ok bool) bool {
	if ok {
		pr.okRun, pr.failRun = pr.okRun+1, 0
		if pr.okRun >= pr.successes {
			pr.ready = true
		}
	} else {
		pr.failRun, pr.okRun = pr.failRun+1, 0
		if pr.failRun >= pr.failures {
			pr.ready = false
		}
	}
	return pr.ready
}
