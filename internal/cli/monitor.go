package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"podpath/internal/agent"
	"podpath/internal/hostfacts"
	"podpath/internal/model"
	"podpath/internal/monitor"
	"podpath/internal/safefile"
)

// apiDialTimeout bounds a connection to the API server; the watches
// themselves are long-lived and renewed by client-go.
const apiDialTimeout = 10 * time.Second

// runMonitor runs the agent in monitor mode: the UDP responder and the
// read-only HTTP endpoints, the peer watch and the probing loop, until
// ctx ends or one of them fails.
func runMonitor(ctx context.Context, s Streams, f agentFlags) error {
	m := f.monitor
	switch {
	case f.role != "host" && f.role != "pod":
		return fmt.Errorf("role %q: use host or pod", f.role)
	case m.namespace == "" || m.selector == "":
		return fmt.Errorf("monitor mode needs --namespace and --selector: the agent's own DaemonSet, whose Pods are its peers")
	case m.period <= 0 || m.rate <= 0 || m.warmup < 0:
		return fmt.Errorf("monitor mode needs a positive --period and --rate, and a --warmup of 0 or more")
	}
	if _, err := labels.Parse(m.selector); err != nil {
		return fmt.Errorf("--selector %q: %v (use labels as kubectl -l takes them)", m.selector, err)
	}
	_, portStr, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %v (use ADDR:PORT)", f.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--listen %q: the port must be 1-65535: the peers are probed on it", f.listen)
	}
	if f.name == "" {
		if f.name, err = os.Hostname(); err != nil {
			return fmt.Errorf("agent name: %w", err)
		}
	}
	cfg, err := monitorAPIConfig(m)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(s.Err, nil))
	layer := model.LayerPod
	if f.role == "host" {
		layer = model.LayerNode
	}
	watcher := &monitor.Watcher{Client: cs, Namespace: m.namespace, Selector: m.selector, Port: port, Warmup: m.warmup, Logger: logger}
	reg := prometheus.NewRegistry()
	mcfg := monitor.Config{Node: f.name, Layer: layer, Period: m.period, Rate: m.rate, Prober: monitor.UDPProber{},
		Peers: watcher.Updates(), Registerer: reg, Logger: logger, FactsInterval: m.factsInterval}
	if f.role == "host" {
		opts := hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth}
		mcfg.Facts = func(ctx context.Context) model.Calico { return hostfacts.CollectCalico(ctx, opts) }
	}
	mon, err := monitor.New(mcfg)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{Name: f.name, Role: f.role, Passive: true, Registry: reg, Logger: logger,
		ReadOnly: map[string]http.Handler{"/debug/pairs": mon.PairsHandler()}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { return a.ListenAndServe(ctx, f.listen) },
		watcher.Run,
		mon.Run,
	} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				errs <- err
			}
			cancel() // one part down: stop the rest, the Pod restarts
		})
	}
	logger.Info("monitoring", "node", f.name, "layer", layer, "period", m.period, "rate", m.rate, "selector", m.selector)
	wg.Wait()
	close(errs)
	return <-errs
}

// monitorAPIConfig is how a monitor reaches the API server: a kubeconfig
// when given, else the Pod's service account as rest.InClusterConfig
// reads it, from a directory that can be moved (the token is re-read as
// the kubelet rotates it).
func monitorAPIConfig(m monitorFlags) (*rest.Config, error) {
	var cfg *rest.Config
	if m.kubeconfig != "" {
		if err := safefile.Check(m.kubeconfig, MaxKubeconfigBytes); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		c, err := clientcmd.BuildConfigFromFlags("", m.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", m.kubeconfig, err)
		}
		cfg = c
	} else {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("monitor mode runs in a Pod (KUBERNETES_SERVICE_HOST and _PORT are not set): outside one, give --kubeconfig")
		}
		token := filepath.Join(m.saDir, "token")
		if _, err := os.Stat(token); err != nil {
			return nil, fmt.Errorf("service account token: %w (mount one, automountServiceAccountToken: true, or give --kubeconfig)", err)
		}
		cfg = &rest.Config{Host: "https://" + net.JoinHostPort(host, port), BearerTokenFile: token,
			TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(m.saDir, "ca.crt")}}
	}
	cfg.UserAgent = "podpath-monitor"
	// Protobuf, as the kubelet and kube-proxy speak it: a list of 5,000
	// Nodes decodes in a fraction of the memory JSON takes.
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.Dial = (&net.Dialer{Timeout: apiDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	return cfg, nil
}
