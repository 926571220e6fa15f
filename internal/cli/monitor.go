package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"podpath/internal/hostfacts"
	"podpath/internal/model"
	"podpath/internal/monitor"
)

// runMonitor checks the flags of --mode monitor and runs the monitor.
func runMonitor(ctx context.Context, s Streams, f agentFlags) error {
	m := f.monitor
	if f.role != "host" && f.role != "pod" {
		return fmt.Errorf("role %q: use host or pod", f.role)
	}
	o := monitor.DaemonOptions{Name: f.name, Layer: model.LayerPod, Listen: f.listen, Namespace: m.namespace,
		Selector: m.selector, Period: m.period, Warmup: m.warmup, FactsInterval: m.factsInterval, Rate: m.rate,
		Logger: slog.New(slog.NewTextHandler(s.Err, nil))}
	if err := o.Check(); err != nil {
		return err
	}
	var err error
	if o.Name == "" {
		if o.Name, err = os.Hostname(); err != nil {
			return fmt.Errorf("agent name: %w", err)
		}
	}
	if o.API, err = monitor.APIConfig(m.kubeconfig, m.saDir); err != nil {
		return err
	}
	if f.role == "host" {
		opts := hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth}
		o.Layer, o.Calico = model.LayerNode, func(ctx context.Context) model.Calico { return hostfacts.CollectCalico(ctx, opts) }
	}
	return monitor.Daemon(ctx, o)
}
