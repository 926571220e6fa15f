package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"podpath/internal/agent"
	"podpath/internal/hostfacts"
	"podpath/internal/lab"
)

type agentFlags struct {
	listen, name, role, tokenFile, birdSocket, felixHealth string
}

func newAgent(s Streams) *cobra.Command {
	var f agentFlags
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: probe API, UDP responder and host facts on one port",
		Long: `The agent answers UDP probes on --listen and serves an authenticated HTTP API on the
same address: PUT /v1/peers (who it may probe), POST /v1/probe (probe those peers), GET /v1/facts
(this host's network facts), POST /v1/sink (throughput and transfer tests), and, without
authentication, GET /healthz and GET /metrics. It never probes an address it was not given as
a peer and never answers a probe with more bytes than it received.

Before a cluster exists, start one on each future node (as root for host facts):
  scp podpath node1: && ssh node1 'podpath agent --listen 0.0.0.0:7946 --name node1 --token-file /root/podpath.token'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runAgent(c.Context(), s, f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.listen, "listen", fmt.Sprintf("0.0.0.0:%d", lab.AgentPort), "ADDR:PORT for the HTTP API (TCP) and probes (UDP)")
	fl.StringVar(&f.name, "name", "", "this agent's name, usually the node's (default: the hostname)")
	fl.StringVar(&f.role, "role", "host", "host (host network, reads host facts) or pod (Pod network, unprivileged)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token every API call must carry (required)")
	fl.StringVar(&f.birdSocket, "bird-socket", hostfacts.DefaultBIRDSocket, "BIRD control socket, as calico-node has it")
	fl.StringVar(&f.felixHealth, "felix-health", hostfacts.DefaultFelixHealthURL, "Felix readiness URL")
	return c
}

func runAgent(ctx context.Context, s Streams, f agentFlags) error {
	if f.role != "host" && f.role != "pod" {
		return usageError{fmt.Errorf("role %q: use host or pod", f.role)}
	}
	if f.tokenFile == "" {
		return usageError{fmt.Errorf("--token-file is required: every call that makes the agent act is authenticated")}
	}
	tok, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return fmt.Errorf("read token: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		return fmt.Errorf("token file %s is empty", f.tokenFile)
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
		cfg.Facts = func(ctx context.Context) (any, error) { return hostfacts.Collect(ctx, opts) }
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	return a.ListenAndServe(ctx, f.listen)
}

func hostfactsCollect(ctx context.Context, f agentFlags) (*hostfacts.Facts, error) {
	return hostfacts.Collect(ctx, hostfacts.Options{BIRDSocket: f.birdSocket, FelixHealthURL: f.felixHealth})
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
