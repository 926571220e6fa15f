package monitor

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
	"podpath/internal/model"
	"podpath/internal/safefile"
)

// apiDialTimeout bounds a connection to the API server; the watches
// themselves are long-lived and renewed by client-go.
const apiDialTimeout = 10 * time.Second

// DaemonOptions is an agent in monitor mode, as the Helm chart's
// DaemonSets run it.
type DaemonOptions struct {
	Name   string
	Layer  model.Layer // the host role's node layer, or the Pod layer
	Listen string      // ADDR:PORT of the responder and the read-only endpoints; the peers' port is its
	// Namespace and Selector are the DaemonSet's own: its Pods are the peers.
	Namespace, Selector           string
	Period, Warmup, FactsInterval time.Duration
	Rate                          float64 // peer visits per second, at most
	API                           *rest.Config
	// Calico reads Calico's state on the node (host role); nil: none.
	Calico func(context.Context) model.Calico
	Logger *slog.Logger
}

// Check refuses options the monitor cannot run with, naming the agent's
// flags.
func (o DaemonOptions) Check() error {
	switch {
	case o.Namespace == "" || o.Selector == "":
		return fmt.Errorf("monitor mode needs --namespace and --selector: the agent's own DaemonSet, whose Pods are its peers")
	case o.Period <= 0 || o.Rate <= 0 || o.Warmup < 0:
		return fmt.Errorf("monitor mode needs a positive --period and --rate, and a --warmup of 0 or more")
	}
	if _, err := labels.Parse(o.Selector); err != nil {
		return fmt.Errorf("--selector %q: %v (use labels as kubectl -l takes them)", o.Selector, err)
	}
	_, err := o.port()
	return err
}

// port is Listen's port: the peers are probed on it.
func (o DaemonOptions) port() (int, error) {
	_, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return 0, fmt.Errorf("--listen %q: %v (use ADDR:PORT)", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("--listen %q: the port must be 1-65535: the peers are probed on it", o.Listen)
	}
	return port, nil
}

// Daemon runs the UDP responder and the read-only HTTP endpoints, the
// peer watch and the probing loop, until ctx ends or one of them fails.
func Daemon(ctx context.Context, o DaemonOptions) error {
	if err := o.Check(); err != nil {
		return err
	}
	if errProber != nil {
		return errProber
	}
	port, _ := o.port()
	cs, err := kubernetes.NewForConfig(o.API)
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	watcher := &Watcher{Client: cs, Namespace: o.Namespace, Selector: o.Selector, Port: port, Warmup: o.Warmup, Logger: o.Logger}
	reg := prometheus.NewRegistry()
	mon, err := New(Config{Node: o.Name, Layer: o.Layer, Period: o.Period, Rate: o.Rate, Prober: UDPProber{},
		Peers: watcher.Updates(), Registerer: reg, Logger: o.Logger, FactsInterval: o.FactsInterval, Facts: o.Calico})
	if err != nil {
		return err
	}
	role := "pod"
	if o.Layer == model.LayerNode {
		role = "host"
	}
	a, err := agent.New(agent.Config{Name: o.Name, Role: role, Passive: true, Registry: reg, Logger: o.Logger,
		ReadOnly: map[string]http.Handler{"/debug/pairs": mon.PairsHandler()}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { return a.ListenAndServe(ctx, o.Listen) },
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
	o.Logger.Info("monitoring", "node", o.Name, "layer", o.Layer, "period", o.Period, "rate", o.Rate, "selector", o.Selector)
	wg.Wait()
	close(errs)
	return <-errs
}

// APIConfig is how a monitor reaches the API server: a kubeconfig when
// given, else the Pod's service account as rest.InClusterConfig reads it,
// from a directory that can be moved (the token is re-read as the kubelet
// rotates it).
func APIConfig(kubeconfig, saDir string) (*rest.Config, error) {
	var cfg *rest.Config
	if kubeconfig != "" {
		if err := safefile.Check(kubeconfig, safefile.MaxKubeconfigBytes); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		cfg = c
	} else {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("monitor mode runs in a Pod (KUBERNETES_SERVICE_HOST and _PORT are not set): outside one, give --kubeconfig")
		}
		token := filepath.Join(saDir, "token")
		if _, err := os.Stat(token); err != nil {
			return nil, fmt.Errorf("service account token: %w (mount one, automountServiceAccountToken: true, or give --kubeconfig)", err)
		}
		cfg = &rest.Config{Host: "https://" + net.JoinHostPort(host, port), BearerTokenFile: token,
			TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(saDir, "ca.crt")}}
	}
	cfg.UserAgent = "podpath-monitor"
	// Protobuf, as the kubelet and kube-proxy speak it: a list of 5,000
	// Nodes decodes in a fraction of the memory JSON takes.
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.Dial = (&net.Dialer{Timeout: apiDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	return cfg, nil
}
