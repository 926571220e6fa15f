package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/agent"
	"podpath/internal/hostfacts"
	"podpath/internal/model"
	"podpath/internal/safefile"
)

type agentFlags struct {
	listen, name, role, tokenFile, birdSocket, felixHealth string
	mode                                                   string
	monitor                                                monitorFlags
}

// monitorFlags configure --mode monitor.
type monitorFlags struct {
	namespace, selector, saDir, kubeconfig string
	period, warmup, factsInterval          time.Duration
	rate                                   float64
}

func newAgent(s Streams) *cobra.Command {
	var f agentFlags
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: probe API, UDP responder and host facts on one port",
		Long: `The agent answers UDP probes on --listen and serves an authenticated HTTP API on the
same address: PUT /v1/peers (who it may probe), POST /v1/probe (probe those peers), GET /v1/facts
(this host's network facts), POST /v1/sink (throughput and transfer tests), POST /v1/listen
(temporary listeners for other agents' port checks), GET /v1/peers, and, without
authentication, GET /healthz and GET /metrics. It never probes an address it was not given as
a peer and never answers a probe with more bytes than it received.

Before a cluster exists, start one on each future node (as root for host facts):
  scp podpath node1: && ssh node1 'podpath agent --listen 0.0.0.0:7946 --name node1 --token-file /root/podpath.token'

With --mode monitor the agent probes on its own, as the Helm chart's DaemonSets run it
(deploy/chart/podpath): it watches the API server for the Ready Pods of its DaemonSet
(--namespace, --selector) on Ready, schedulable nodes, visits each once per --period at no
more than --rate visits per second (a small echo, then a full-size echo with Don't Fragment,
and a byte-exact path-MTU search when that is lost), reads Calico's state on the node every
--facts-interval (host role), and exports per-node metrics on GET /metrics and its whole view
on GET /debug/pairs. A monitor takes no orders: no token, no probe API.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runAgent(c.Context(), s, f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.listen, "listen", fmt.Sprintf("0.0.0.0:%d", agent.DefaultPort), "ADDR:PORT for the HTTP API (TCP) and probes (UDP)")
	fl.StringVar(&f.name, "name", "", "this agent's name as the inventory or cluster knows it: the node's, or the Pod's for a Pod agent (default: the hostname); requests are signed for it")
	fl.StringVar(&f.role, "role", "host", "host (host network, reads host facts) or pod (Pod network, unprivileged)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token every API call must carry (required with --mode api; a monitor takes none)")
	fl.StringVar(&f.birdSocket, "bird-socket", hostfacts.DefaultBIRDSocket, "BIRD control socket, as calico-node has it")
	fl.StringVar(&f.felixHealth, "felix-health", hostfacts.DefaultFelixHealthURL, "Felix readiness URL")
	fl.StringVar(&f.mode, "mode", "api", "api (probe when a podpath run asks, token required) or monitor (probe continuously, export metrics)")
	m := &f.monitor
	fl.StringVar(&m.namespace, "namespace", "", "monitor, required: namespace of this agent's DaemonSet (the chart passes it from the downward API)")
	fl.StringVar(&m.selector, "selector", "", "monitor, required: label selector of the DaemonSet's Pods, the peers")
	fl.DurationVar(&m.period, "period", 5*time.Minute, "monitor: every peer is probed once per period")
	fl.Float64Var(&m.rate, "rate", 20, "monitor: peer visits per second, at most")
	fl.DurationVar(&m.warmup, "warmup", 30*time.Second, "monitor: a peer counts once its Pod has been Ready this long")
	fl.DurationVar(&m.factsInterval, "facts-interval", 5*time.Minute, "monitor, host role: how often Calico's state on the node is read")
	fl.StringVar(&m.saDir, "service-account-dir", "/var/run/secrets/kubernetes.io/serviceaccount", "monitor: the Pod's service account token and CA, for the API server at $KUBERNETES_SERVICE_HOST")
	fl.StringVar(&m.kubeconfig, "kubeconfig", "", "monitor: a kubeconfig instead of the Pod's service account (running outside a Pod)")
	return c
}

func runAgent(ctx context.Context, s Streams, f agentFlags) error {
	if runtime.GOOS != "linux" {
		return errors.New("podpath agent needs Linux: it probes with Linux's socket options and reads netlink, /proc and nftables; run it on the cluster's nodes (kubectl podpath doctor deploys it there)")
	}
	if f.role != "host" && f.role != "pod" {
		return fmt.Errorf("role %q: use host or pod", f.role)
	}
	if f.mode == "monitor" {
		return runMonitor(ctx, s, f)
	}
	if f.mode != "api" {
		return fmt.Errorf("mode %q: use api or monitor", f.mode)
	}
	if f.tokenFile == "" {
		return fmt.Errorf("--token-file is required: every call that makes the agent act is authenticated")
	}
	token, err := readTokenFile(f.tokenFile)
	if err != nil {
		return err
	}
	if f.name == "" {
		if f.name, err = os.Hostname(); err != nil {
			return fmt.Errorf("agent name: %w", err)
		}
	}
	cfg := agent.Config{Name: f.name, Role: f.role, Token: token,
		Logger: slog.New(slog.NewTextHandler(s.Err, nil))}
	if f.role == "host" {
		opts := hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth}
		// ":7946" too: every address of both families, as the DaemonSets listen.
		if _, port, err := net.SplitHostPort(f.listen); err == nil {
			opts.AgentPort, _ = strconv.Atoi(port)
		}
		cfg.Facts = func(ctx context.Context) (any, error) { return hostfacts.Collect(ctx, opts) }
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	return a.ListenAndServe(ctx, f.listen)
}

func hostfactsCollect(ctx context.Context, f agentFlags) (*model.Facts, error) {
	return hostfacts.Collect(ctx, hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth})
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readTokenFile reads an agent token (regular file, size-capped, one
// line), saying which file a mistake is in.
func readTokenFile(path string) (string, error) {
	tok, err := safefile.ReadToken(path)
	if err != nil {
		return "", fmt.Errorf("read agent token: %w", err)
	}
	return tok, nil
}
