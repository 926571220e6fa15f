package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/vishvananda/netlink"

	"podpath/internal/bird"
	"podpath/internal/calico"
)

// Bounded waits for BIRD, the way calicoctl bounds its reads of the socket.
const (
	birdStartTimeout = 5 * time.Second
	birdStopTimeout  = 3 * time.Second
)

// rtprotBIRD is RTPROT_BIRD: "proto bird" in `ip route`.
const rtprotBIRD = 12

// birdConf is a node-to-node mesh as calico-node's confd writes it for BIRD,
// in BIRD 2 syntax, with short timers so a lab notices a cut session in
// seconds rather than minutes. The kernel scan is rare so a route deleted by
// the route-missing fault stays missing until the fault is cleared.
var birdConf = template.Must(template.New("bird").Parse(`# podpath lab {{.Lab}}: BIRD for {{.Node.Name}}, full iBGP mesh as calico-node runs it
router id {{.Local}};
log "{{.Dir}}/bird.log" all;

protocol device { scan time 10; }

protocol kernel {
  scan time 3600;
  merge paths on;
  ipv4 { import none; export where source = RTS_BGP; };
}

# The node's IPAM block; the kernel already blackholes it, BIRD only announces it.
protocol static blocks {
  ipv4;
  route {{.Node.Block}} blackhole;
}

template bgp mesh {
  local {{.Local}} as {{.AS}};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 2;
  error wait time 1, 4;
  ipv4 { import all; export where proto = "blocks"; next hop self; };
}
{{range .Peers}}
protocol bgp {{.Name}} from mesh { neighbor {{.Address}} as {{$.AS}}; }
{{- end}}
{{- if .Node.Block6.IsValid}}

# Dual-stack: the IPv6 side, as calico-node's bird6 runs it (in BIRD 2 one
# daemon, channels of both families): sessions between the nodes' IPv6
# addresses announcing the IPv6 blocks.
protocol kernel kernel6 {
  scan time 3600;
  merge paths on;
  ipv6 { import none; export where source = RTS_BGP; };
}

protocol static blocks6 {
  ipv6;
  route {{.Node.Block6}} blackhole;
}

template bgp mesh6 {
  local {{.Node.Address6}} as {{.AS}};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 2;
  error wait time 1, 4;
  ipv6 { import all; export where proto = "blocks6"; next hop self; };
}
{{range .Peers6}}
protocol bgp {{.Name}} from mesh6 { neighbor {{.Address}} as {{$.AS}}; }
{{- end}}
{{- end}}
`))

type birdPeer struct {
	Name    string
	Address string
}

// birdFiles: the socket has a directory of its own, which a node with a
// kubelet mounts as its /var/run/calico, where calico-node keeps BIRD's.
func birdFiles(dir, node string) (conf, sock, pid string) {
	d := filepath.Join(dir, node)
	return filepath.Join(d, "bird.conf"), filepath.Join(calicoRunDir(dir, node), "bird.ctl"), filepath.Join(d, "bird.pid")
}

// calicoRunDir is node's /var/run/calico when it runs a kubelet.
func calicoRunDir(dir, node string) string { return filepath.Join(dir, node, "run-calico") }

// BIRDSocket is where the lab's BIRD for node listens.
func BIRDSocket(lab, node string) string {
	_, sock, _ := birdFiles(Dir(lab), node)
	return sock
}

// startBIRD writes n's BIRD configuration and starts BIRD in n's namespace.
func startBIRD(ctx context.Context, s *Spec, n *Node) (string, error) {
	return startBIRDWith(ctx, s, n, nil)
}

// startBIRDWith is startBIRD with some nodes' BGP addresses not their
// underlay address (bgpAddr by node name), as when calico-node's address
// auto-detection picked another interface: the node peers from it, its
// peers peer with it there.
func startBIRDWith(ctx context.Context, s *Spec, n *Node, bgpAddr map[string]netip.Addr) (string, error) {
	dir := Dir(s.Name)
	conf, sock, pidf := birdFiles(dir, n.Name)
	for _, d := range []string{filepath.Dir(conf), filepath.Dir(sock)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create BIRD directory: %w", err)
		}
	}
	addr := func(r *Node) netip.Addr {
		if a, ok := bgpAddr[r.Name]; ok {
			return a
		}
		return r.Address
	}
	var peers, peers6 []birdPeer
	for i := range s.Nodes {
		if r := &s.Nodes[i]; r.Name != n.Name {
			peers = append(peers, birdPeer{Name: calico.MeshPeerName(addr(r)), Address: addr(r).String()})
			if r.Address6.IsValid() {
				peers6 = append(peers6, birdPeer{Name: calico.MeshPeerName(r.Address6), Address: r.Address6.String()})
			}
		}
	}
	var b strings.Builder
	if err := birdConf.Execute(&b, map[string]any{"Lab": s.Name, "Node": n, "Local": addr(n), "Dir": filepath.Dir(conf), "AS": ASNumber,
		"Peers": peers, "Peers6": peers6}); err != nil {
		return "", fmt.Errorf("render BIRD configuration: %w", err)
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write BIRD configuration: %w", err)
	}
	if pidAlive(readPid(pidf), sock) {
		// A running BIRD reads its configuration again and restarts only
		// the protocols that changed: the other sessions stay up. BIRD 2
		// answers "Reconfiguration in progress", BIRD 1 "Reconfigured".
		ctx, cancel := context.WithTimeout(ctx, birdStartTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "birdc", "-s", sock, "configure").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Reconfigur") {
			return sock, fmt.Errorf("reconfigure bird in %s: %v: %s", n.Netns, err, strings.TrimSpace(string(out)))
		}
		return sock, nil
	}
	return sock, runBIRD(ctx, n.Netns, conf, sock, pidf)
}

func runBIRD(ctx context.Context, ns, conf, sock, pidf string) error {
	ctx, cancel := context.WithTimeout(ctx, birdStartTimeout)
	defer cancel()
	_ = os.Remove(pidf)
	// BIRD daemonises once its configuration parses; the parent's exit status
	// tells whether it did.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "bird", "-c", conf, "-s", sock, "-P", pidf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start bird in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	for {
		if pid := readPid(pidf); pidAlive(pid, sock) {
			if _, err := os.Stat(sock); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bird in %s did not come up within %s", ns, birdStartTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopBIRD stops the lab's BIRD on node, if it runs; it only signals a PID
// whose command line names this lab's socket.
func stopBIRD(dir, node string) {
	_, sock, pidf := birdFiles(dir, node)
	stopPid(readPid(pidf), sock, birdStopTimeout)
	_ = os.Remove(pidf)
}

func stopPid(pid int, marker string, grace time.Duration) {
	if !pidAlive(pid, marker) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !pidAlive(pid, marker) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// BGPSessions reads node's BGP sessions from its BIRD control socket.
func (l *Lab) BGPSessions(ctx context.Context, node string) ([]bird.Protocol, error) {
	if l.Spec.Backend != BackendBGP {
		return nil, errors.New("lab runs no BGP")
	}
	if _, err := l.Spec.Node(node); err != nil {
		return nil, err
	}
	protos, err := bird.ShowProtocols(ctx, BIRDSocket(l.Spec.Name, node))
	if err != nil {
		return nil, err
	}
	var out []bird.Protocol
	for _, p := range protos {
		if p.Proto == "BGP" {
			out = append(out, p)
		}
	}
	return out, nil
}

func bgpRoute(eth0 netlink.Link, r Node) *netlink.Route {
	return &netlink.Route{Dst: prefixNet(r.Block), Gw: r.Address.AsSlice(), LinkIndex: eth0.Attrs().Index, Protocol: rtprotBIRD}
}
