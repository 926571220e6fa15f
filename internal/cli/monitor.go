package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"k8s.io/apimachinery/pkg/labels"

	"podpath/internal/hostfacts"
	"podpath/internal/model"
	"podpath/internal/monitor"
)

// runMonitor checks the flags of --mode monitor and runs the monitor.
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
	cfg, err := monitor.APIConfig(m.kubeconfig, m.saDir)
	if err != nil {
		return err
	}
	o := monitor.DaemonOptions{Name: f.name, Layer: model.LayerPod, Listen: f.listen, Port: port, Namespace: m.namespace,
		Selector: m.selector, Period: m.period, Warmup: m.warmup, FactsInterval: m.factsInterval, Rate: m.rate, API: cfg,
		Logger: slog.New(slog.NewTextHandler(s.Err, nil))}
	if f.role == "host" {
		opts := hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth}
		o.Layer, o.Calico = model.LayerNode, func(ctx context.Context) model.Calico { return hostfacts.CollectCalico(ctx, opts) }
	}
	return monitor.Daemon(ctx, o)
}
