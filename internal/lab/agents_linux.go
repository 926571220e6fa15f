package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"podpath/internal/nsenter"
)

// Binary is the podpath executable the lab starts as agents and wires;
// tests that run from a test binary point it at a built podpath.
var Binary = ""

const (
	agentStartTimeout = 10 * time.Second
	agentStopTimeout  = 3 * time.Second
)

func binary() (string, error) {
	if Binary != "" {
		return Binary, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return exe, nil
}

// agentProc is one agent the lab runs.
type agentProc struct {
	name, netns, role string
	addr              netip.Addr
	// anyAddr: listen on every address of both families (a dual-stack
	// lab's agents answer on their IPv6 address too).
	anyAddr    bool
	birdSocket string
}

func (s *Spec) agentProcs() []agentProc {
	var out []agentProc
	for _, n := range s.Nodes {
		a := agentProc{name: n.Name, netns: n.Netns, role: "host", addr: s.Primary(n.Address, n.Address6), anyAddr: s.HasIPv6()}
		if s.Backend == BackendBGP {
			a.birdSocket = BIRDSocket(s.Name, n.Name)
		}
		out = append(out, a)
		for _, p := range n.Pods {
			out = append(out, agentProc{name: p.Name, netns: p.Netns, role: "pod", addr: s.Primary(p.Address, p.Address6), anyAddr: s.HasIPv6()})
		}
	}
	return out
}

func agentFiles(dir, who string) (pid, log string) {
	d := filepath.Join(dir, "agents")
	return filepath.Join(d, who+".pid"), filepath.Join(d, who+".log")
}

// startAgents starts every agent of the lab and waits until each answers
// its health check from inside its namespace.
func startAgents(ctx context.Context, s *Spec) error {
	bin, err := binary()
	if err != nil {
		return err
	}
	dir := Dir(s.Name)
	if err := os.MkdirAll(filepath.Join(dir, "agents"), 0o755); err != nil {
		return fmt.Errorf("create agents directory: %w", err)
	}
	procs := s.agentProcs()
	exited := make([]<-chan struct{}, len(procs))
	for i, a := range procs {
		var err error
		if exited[i], err = startAgent(bin, dir, a); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, agentStartTimeout)
	defer cancel()
	for i, a := range procs {
		if err := waitAgent(ctx, dir, a, exited[i]); err != nil {
			return err
		}
	}
	return nil
}

// startAgent starts one agent; the channel closes when it exits.
func startAgent(bin, dir string, a agentProc) (<-chan struct{}, error) {
	pidf, logf := agentFiles(dir, a.name)
	logFile, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open agent log: %w", err)
	}
	defer logFile.Close()
	listen := netip.AddrPortFrom(a.addr, AgentPort)
	if a.anyAddr {
		listen = netip.AddrPortFrom(netip.IPv6Unspecified(), AgentPort)
	}
	args := []string{"netns", "exec", a.netns, bin, "agent",
		"--listen", listen.String(), "--name", a.name, "--role", a.role,
		"--token-file", filepath.Join(dir, "token")}
	if a.birdSocket != "" {
		args = append(args, "--bird-socket", a.birdSocket)
	}
	cmd := exec.Command("ip", args...) // ip execs the agent in place: same PID
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent %s: %w", a.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it if it dies while we run
	return exited, os.WriteFile(pidf, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
}

// waitAgent waits until the agent answers its health check. Whether it
// died is told by its exit, not by /proc: mid-exec (ip netns exec → agent)
// a process's command line reads empty for a moment.
func waitAgent(ctx context.Context, dir string, a agentProc, exited <-chan struct{}) error {
	url := "http://" + netip.AddrPortFrom(a.addr, AgentPort).String() + "/healthz"
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nsenter.DialContext(ctx, a.netns, &net.Dialer{Timeout: time.Second}, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	_, logf := agentFiles(dir, a.name)
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf)
			return fmt.Errorf("agent %s exited: %s", a.name, lastLine(log))
		case <-ctx.Done():
			return fmt.Errorf("agent %s not healthy within %s (see %s)", a.name, agentStartTimeout, logf)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[len(lines)-1] == "" {
		return "no output"
	}
	return lines[len(lines)-1]
}

// stopAgents stops every agent the lab started.
func stopAgents(s *Spec) {
	dir := Dir(s.Name)
	for _, a := range s.agentProcs() {
		pidf, _ := agentFiles(dir, a.name)
		stopPid(readPid(pidf), dir, agentStopTimeout)
	}
}
