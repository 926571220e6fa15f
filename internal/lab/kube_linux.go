package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"podpath/internal/nsenter"
	"podpath/internal/pki"
)

// Bounds of a Kubernetes lab's start and stop.
const (
	toolsTimeout     = 45 * time.Minute // a first build of the binaries on a fresh machine
	apiReadyTimeout  = 90 * time.Second
	nodesTimeout     = 3 * time.Minute // every node Ready, calico-node running everywhere
	daemonStopGrace  = 5 * time.Second
	cgroupKillRounds = 50
)

// KubeState is what a Kubernetes lab adds to its state file.
type KubeState struct {
	// Kubeconfig is the admin kubeconfig for the machine: it talks to the
	// API server through Forward.
	Kubeconfig string `json:"kubeconfig"`
	// Forward is the loopback address on the machine that carries
	// connections to the API server inside the lab.
	Forward string `json:"forward"`
	// KubeBin and NodeBin are the directories of the control plane's and
	// nodes' binaries (scripts/kube-tools.sh, scripts/node-tools.sh),
	// DNSBin CoreDNS's (scripts/dns-tools.sh): the cluster DNS's image.
	KubeBin string `json:"kubeBin"`
	NodeBin string `json:"nodeBin"`
	DNSBin  string `json:"dnsBin"`
}

// KubeTools finds the directories of the Kubernetes binaries, of
// containerd's and of CoreDNS's. The default runs scripts/kube-tools.sh,
// scripts/node-tools.sh and scripts/dns-tools.sh of the checkout above the
// working directory (they build once, then answer from their cache), unless
// PODPATH_KUBE_BIN, PODPATH_NODE_BIN and PODPATH_DNS_BIN name the
// directories.
var KubeTools = findTools

func findTools(ctx context.Context) (kube, node, dns string, err error) {
	kube, node, dns = os.Getenv("PODPATH_KUBE_BIN"), os.Getenv("PODPATH_NODE_BIN"), os.Getenv("PODPATH_DNS_BIN")
	if kube != "" && node != "" && dns != "" {
		return kube, node, dns, nil
	}
	root, err := checkout()
	if err != nil {
		return "", "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, toolsTimeout)
	defer cancel()
	dirs := []*string{&kube, &node, &dns}
	for i, script := range []string{"kube-tools.sh", "node-tools.sh", "dns-tools.sh"} {
		if *dirs[i] != "" {
			continue // named by its variable
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", script))
		// The scripts say when they build (minutes, the first time).
		cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
		out, err := cmd.Output()
		if err != nil {
			return "", "", "", fmt.Errorf("build the nodes' binaries (scripts/%s): %w: %s", script, err, lastLine(stderr.Bytes()))
		}
		*dirs[i] = strings.TrimSpace(string(out))
	}
	return kube, node, dns, nil
}

// checkout is the podpath source tree above the working directory.
func checkout() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "kube-tools.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("a Kubernetes lab needs podpath's checkout (scripts/kube-tools.sh builds its binaries): run it from there, or set PODPATH_KUBE_BIN, PODPATH_NODE_BIN and PODPATH_DNS_BIN")
		}
		dir = parent
	}
}

// cpDir holds the control plane's certificates, configuration, data and logs.
func cpDir(lab string) string { return filepath.Join(Dir(lab), "cp") }

// buildKube makes the lab a cluster: the control plane in its own
// namespace, the in-lab registry, then a kubelet, containerd and
// kube-proxy on every node, Calico's objects and the cluster DNS; it
// returns when every node is Ready, calico-node runs on each and both
// CoreDNS Pods are Ready.
func buildKube(ctx context.Context, st *State) error {
	s := &st.Spec
	kubeBin, nodeBin, dnsBin, err := KubeTools(ctx)
	if err != nil {
		return err
	}
	st.Kube = &KubeState{KubeBin: kubeBin, NodeBin: nodeBin, DNSBin: dnsBin, Kubeconfig: filepath.Join(Dir(s.Name), "kubeconfig")}
	if err := saveState(st); err != nil {
		return err
	}
	if err := os.MkdirAll(cpDir(s.Name), 0o755); err != nil {
		return fmt.Errorf("create control plane directory: %w", err)
	}
	exe, err := labBinary(s.Name)
	if err != nil {
		return err
	}
	if err := buildControlPlaneNet(s); err != nil {
		return fmt.Errorf("control plane network: %w", err)
	}
	ca, err := writePKI(s)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := startControlPlane(ctx, s, kubeBin); err != nil {
		return err
	}
	fwd, err := startForward(ctx, s, exe)
	if err != nil {
		return err
	}
	st.Kube.Forward = fwd
	if err := ca.WriteKubeconfig(st.Kube.Kubeconfig, "https://"+fwd, "podpath-lab-admin", []string{"system:masters"}); err != nil {
		return err
	}
	if err := saveState(st); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kube.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load the lab's kubeconfig: %w", err)
	}
	if err := waitAPI(ctx, cfg, s.Name); err != nil {
		return err
	}
	if err := startControllers(s, kubeBin); err != nil {
		return err
	}
	if err := startRegistry(ctx, s, exe, dnsBin); err != nil {
		return err
	}
	for i := range s.Nodes {
		if err := startKubeNode(s, &s.Nodes[i], ca, exe, nodeBin, kubeBin); err != nil {
			return fmt.Errorf("%s: %w", s.Nodes[i].Name, err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := installCalico(ctx, cfg, s); err != nil {
		return fmt.Errorf("install Calico's objects: %w", err)
	}
	if err := installDNS(ctx, cfg); err != nil {
		return err
	}
	if err := waitNodes(ctx, cs, s); err != nil {
		return err
	}
	return waitDNS(ctx, cs, s)
}

// labBinary copies podpath into the lab's directory: the nodes run it (as
// their CNI plugin, their supervisor) from a path every node's mount
// namespace sees, and it stays the same binary for the lab's life.
func labBinary(lab string) (string, error) {
	src, err := binary()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(Dir(lab), "bin", "podpath")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create lab bin directory: %w", err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("read podpath binary: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return "", fmt.Errorf("copy podpath binary: %w", err)
	}
	return dst, nil
}

// buildControlPlaneNet puts the control plane's namespace on the first
// subnet with a route to every node's Pod block (the API server's Pod
// proxy dials Pods) and no default route.
func buildControlPlaneNet(s *Spec) error {
	if err := createNetns(s.ControlPlane); err != nil {
		return err
	}
	h, err := openNS(s.ControlPlane)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	if err := clampControlPlaneMSS(h); err != nil {
		return err
	}
	f, err := openNS(s.Fabric)
	if err != nil {
		return err
	}
	defer f.Close()
	const port = "cp0"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MTU: s.UnderlayMTU},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(h.fd), PeerMTU: uint32(s.UnderlayMTU), PeerTxQLen: -1}
	if err := f.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create control plane veth: %w", err)
	}
	if err := attachPort(f, port, s.Subnets[0].Bridge); err != nil {
		return err
	}
	eth0, err := h.link("eth0")
	if err != nil {
		return err
	}
	// One segment per skb, as on the nodes' eth0: what a real NIC puts on the wire.
	if err := h.nl.LinkSetGSOMaxSegs(eth0, 1); err != nil {
		return fmt.Errorf("set gso_max_segs on the control plane's eth0: %w", err)
	}
	if err := addAddr(h, eth0, netip.MustParseAddr(ControlPlaneAddr), s.Subnets[0].Prefix.Bits()); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("bring up control plane eth0: %w", err)
	}
	gw := s.Subnets[0].Gateway
	for _, sn := range s.Subnets[1:] {
		if err := h.nl.RouteAdd(&netlink.Route{Dst: prefixNet(sn.Prefix), Gw: gw.AsSlice(), LinkIndex: eth0.Attrs().Index}); err != nil {
			return fmt.Errorf("route to %s: %w", sn.Prefix, err)
		}
	}
	for _, n := range s.Nodes {
		via := n.Address
		if n.Subnet != 0 {
			via = gw
		}
		if err := h.nl.RouteAdd(&netlink.Route{Dst: prefixNet(n.Block), Gw: via.AsSlice(), LinkIndex: eth0.Attrs().Index}); err != nil {
			return fmt.Errorf("route to %s's block: %w", n.Name, err)
		}
	}
	if len(s.Subnets) > 1 {
		// The router learns the blocks of the far subnet's nodes only for
		// the control plane's own traffic (a policy rule on its source),
		// so no node's Pod traffic is ever routed by it instead of its
		// backend.
		if err := routeControlPlaneBlocks(f, s); err != nil {
			return err
		}
	}
	return nil
}

func routeControlPlaneBlocks(f *nsHandle, s *Spec) error {
	const table = 100
	rule := netlink.NewRule()
	rule.Src = &net.IPNet{IP: net.ParseIP(ControlPlaneAddr).To4(), Mask: net.CIDRMask(32, 32)}
	rule.Table = table
	if err := f.nl.RuleAdd(rule); err != nil {
		return fmt.Errorf("policy rule for the control plane: %w", err)
	}
	for _, n := range s.Nodes {
		if n.Subnet == 0 {
			continue
		}
		if err := f.nl.RouteAdd(&netlink.Route{Dst: prefixNet(n.Block), Gw: n.Address.AsSlice(), Table: table}); err != nil {
			return fmt.Errorf("route to %s's block for the control plane: %w", n.Name, err)
		}
	}
	return nil
}

// writePKI makes the cluster's CA and every certificate and kubeconfig the
// control plane needs.
func writePKI(s *Spec) (*pki.CA, error) {
	dir := cpDir(s.Name)
	ca, err := pki.NewCA("podpath-lab-" + s.Name)
	if err != nil {
		return nil, err
	}
	if err := pki.WritePair(filepath.Join(dir, "ca"), ca.CertPEM, ca.KeyPEM()); err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue("kube-apiserver", nil,
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(ControlPlaneAddr), net.ParseIP("10.233.0.1")}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	if err := pki.WritePair(filepath.Join(dir, "apiserver"), cert, key); err != nil {
		return nil, err
	}
	// The API server's client certificate towards kubelets (logs, exec,
	// port-forward), as kubeadm's apiserver-kubelet-client.
	cert, key, err = ca.Issue("kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	if err := pki.WritePair(filepath.Join(dir, "apiserver-kubelet-client"), cert, key); err != nil {
		return nil, err
	}
	sa, err := pki.RSAKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), sa, 0o600); err != nil {
		return nil, err
	}
	server := apiURL()
	for _, who := range []string{"kube-controller-manager", "kube-scheduler"} {
		if err := ca.WriteKubeconfig(filepath.Join(dir, who+".kubeconfig"), server, "system:"+who, nil); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

func apiURL() string {
	return "https://" + net.JoinHostPort(ControlPlaneAddr, strconv.Itoa(APIServerPort))
}

// daemon is a long-running process of the lab, started detached.
type daemon struct {
	name, netns, dir string
	argv             []string
	env              []string
	cloneflags       uintptr
}

func (d daemon) pidFile() string { return filepath.Join(d.dir, d.name+".pid") }

// start runs the daemon in its namespace, logging to dir/<name>.log, and
// records its PID. It outlives the command that started it.
func (d daemon) start() (*os.Process, error) {
	logf, err := os.OpenFile(filepath.Join(d.dir, d.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", d.name, err)
	}
	defer logf.Close()
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), d.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: d.cloneflags}
	if err := nsenter.Do(d.netns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", d.name, d.netns, err)
	}
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return nil, err
	}
	// Reap it when it exits before the lab's command does; after that,
	// init does.
	go func() { _ = cmd.Wait() }()
	return cmd.Process, nil
}

func startControlPlane(ctx context.Context, s *Spec, bin string) error {
	dir := cpDir(s.Name)
	etcd := daemon{name: "etcd", netns: s.ControlPlane, dir: dir, argv: []string{filepath.Join(bin, "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"), "--name", "podpath-lab",
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "podpath-lab=http://127.0.0.1:2380", "--log-level", "warn"}}
	for _, d := range []daemon{etcd, apiServer(s, bin)} {
		if _, err := d.start(); err != nil {
			return err
		}
	}
	return nil
}

func apiServer(s *Spec, bin string) daemon {
	dir := cpDir(s.Name)
	p := func(f string) string { return filepath.Join(dir, f) }
	return daemon{name: "kube-apiserver", netns: s.ControlPlane, dir: dir, argv: []string{filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0", "--advertise-address", ControlPlaneAddr, "--secure-port", strconv.Itoa(APIServerPort),
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", p("ca.crt"),
		"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"), "--kubelet-client-key", p("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", p("ca.crt"),
		// Node names do not resolve in the lab: reach kubelets at their InternalIP.
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", p("sa.key"),
		"--service-account-signing-key-file", p("sa.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC", "--allow-privileged=true",
		"--enable-admission-plugins", "NodeRestriction"}}
}

// RestartAPIServer stops the lab's kube-apiserver (SIGTERM, as a rolling
// upgrade of a control plane does) and starts it again: clients see their
// connections and watches cut, then the same cluster.
func (l *Lab) RestartAPIServer(ctx context.Context) error {
	if l.Kube == nil {
		return invalidf("lab %s has no control plane (it was built without --kubernetes)", l.Spec.Name)
	}
	d := apiServer(&l.Spec, l.Kube.KubeBin)
	stopPid(readPid(d.pidFile()), Dir(l.Spec.Name), apiReadyTimeout)
	if _, err := d.start(); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kube.Kubeconfig)
	if err != nil {
		return err
	}
	return waitAPI(ctx, cfg, l.Spec.Name)
}

func startControllers(s *Spec, bin string) error {
	dir := cpDir(s.Name)
	p := func(f string) string { return filepath.Join(dir, f) }
	kcm, sched := p("kube-controller-manager.kubeconfig"), p("kube-scheduler.kubeconfig")
	for _, d := range []daemon{
		{name: "kube-controller-manager", argv: []string{filepath.Join(bin, "kube-controller-manager"),
			"--kubeconfig", kcm, "--authentication-kubeconfig", kcm, "--authorization-kubeconfig", kcm,
			"--bind-address", "127.0.0.1", "--secure-port", "0", "--use-service-account-credentials",
			"--service-account-private-key-file", p("sa.key"), "--root-ca-file", p("ca.crt"),
			"--cluster-signing-cert-file", p("ca.crt"), "--cluster-signing-key-file", p("ca.key"),
			// The lab gives each node its block, as Calico's IPAM does: no node IPAM here.
			"--controllers", "*,-nodeipam", "--leader-elect=false",
			// A stopped kubelet shows as NotReady within seconds, not a
			// minute (the kubelets renew their leases every 3 s).
			"--node-monitor-period", "2s", "--node-monitor-grace-period", "16s"}},
		{name: "kube-scheduler", argv: []string{filepath.Join(bin, "kube-scheduler"),
			"--kubeconfig", sched, "--authentication-kubeconfig", sched, "--authorization-kubeconfig", sched,
			"--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false"}},
	} {
		d.netns, d.dir = s.ControlPlane, dir
		if _, err := d.start(); err != nil {
			return err
		}
	}
	return nil
}

// waitAPI waits for the API server's readiness: the controllers need it up
// first (they exit on a refused first connection).
func waitAPI(ctx context.Context, cfg *rest.Config, lab string) error {
	tc, err := rest.TransportFor(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tc, Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, apiReadyTimeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready within %s: %v (its log: %s)", apiReadyTimeout, last, filepath.Join(cpDir(lab), "kube-apiserver.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startForward runs the loopback forwarder on the machine: the one lab
// process in the machine's network namespace, listening on 127.0.0.1 only,
// so kubectl there reaches the API server inside the lab.
func startForward(ctx context.Context, s *Spec, exe string) (string, error) {
	dir := cpDir(s.Name)
	ready := filepath.Join(dir, "forward.addr")
	_ = os.Remove(ready)
	d := daemon{name: "forward", dir: dir, argv: []string{exe, "lab", "forward", "--netns", s.ControlPlane,
		"--to", net.JoinHostPort(ControlPlaneAddr, strconv.Itoa(APIServerPort)), "--listen", "127.0.0.1:0",
		"--ready", ready, "--id", "podpath-forward:" + Dir(s.Name)}}
	// Started from the machine's own namespace: that is where it listens.
	logf, err := os.OpenFile(filepath.Join(dir, "forward.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the API forwarder: %w", err)
	}
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	addr, err := waitFile(ctx, ready, exited, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("API forwarder: %w (its log: %s)", err, logf.Name())
	}
	return addr, nil
}

// waitFile waits for a daemon to write its ready file and returns what it wrote.
func waitFile(ctx context.Context, path string, exited <-chan struct{}, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-exited:
			return "", errors.New("exited before it was ready")
		case <-deadline.C:
			return "", fmt.Errorf("not ready within %s", timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopKube stops every process of a Kubernetes lab: the nodes'
// supervisors, then whatever still runs in the nodes' cgroups (Pods,
// shims), then the control plane and the forwarder. Only PIDs whose command
// line names this lab's directory are signalled.
func stopKube(name string) error {
	dir := Dir(name)
	pids, _ := filepath.Glob(filepath.Join(dir, "*", "kube", "*.pid"))
	cp, _ := filepath.Glob(filepath.Join(cpDir(name), "*.pid"))
	for _, f := range pids {
		stopPid(readPid(f), dir, daemonStopGrace)
	}
	errs := []error{killCgroups(name)}
	for _, f := range cp {
		stopPid(readPid(f), dir, daemonStopGrace)
	}
	return errors.Join(errs...)
}

// cgroupName is a node's cgroup subtree, in every hierarchy: its kubelet's
// cgroupRoot.
func cgroupName(lab, node string) string { return "podpath.lab." + lab + "." + node }

// cgroupMounts lists the machine's cgroup hierarchies (v1 controllers,
// named ones, the v2 unified tree).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				out = append(out, fields[4])
			}
		}
	}
	return out, sc.Err()
}

// killCgroups kills every process left in the lab's node cgroups and
// removes the cgroups, deepest first. Subtrees are found by name, so a lab
// whose state was lost mid-start is cleaned too.
func killCgroups(lab string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var roots []string
	for _, m := range mounts {
		found, _ := filepath.Glob(filepath.Join(m, "podpath.lab."+lab+".*"))
		roots = append(roots, found...)
	}
	for range cgroupKillRounds {
		alive := 0
		for _, r := range roots {
			_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, _ := strconv.Atoi(f); pid > 0 {
						_ = unix.Kill(pid, unix.SIGKILL)
						alive++
					}
				}
				return nil
			})
		}
		if alive == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var errs []error
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// controlMSS is the largest TCP segment the control plane exchanges with
// the nodes: it clamps the MSS option of every SYN in and out of its
// namespace, as a VPN or load-balancer in front of a real control plane
// does. The kubelets' connections, the API server's calls to kubelets and
// its Pod proxy then survive an underlay that drops large frames silently
// (the seed's fault), so nodes stay Ready and the doctor's control channel
// keeps working, while the Pods' own traffic meets the fault in full. The
// rule lives in the control plane's namespace only: no node's firewall,
// which the doctor reads, carries it.
const controlMSS = 1200

func clampControlPlaneMSS(h *nsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.fd)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.name, err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "podpath_lab_mss"})
	accept := nftables.ChainPolicyAccept
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookOutput} {
		ch := c.AddChain(&nftables.Chain{Name: hookName(hook), Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityMangle, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			// tcp flags & (syn|rst) == syn: SYN and SYN-ACK
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x06}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(controlMSS)},
			&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: 2, Offset: 2, Len: 2, SourceRegister: 1},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("clamp the control plane's MSS: %w", err)
	}
	return nil
}

// CAFiles are the cluster CA's certificate and key of a Kubernetes lab:
// tests issue users' certificates with them.
func (l *Lab) CAFiles() (cert, key string) {
	return filepath.Join(cpDir(l.Spec.Name), "ca.crt"), filepath.Join(cpDir(l.Spec.Name), "ca.key")
}

// kubeProxyRunning stops node's kube-proxy (SIGTERM: it leaves its rules
// as they are, as a crashed or deleted kube-proxy Pod does), or has the
// node's supervisor start it again, and waits for either.
func kubeProxyRunning(ctx context.Context, s *Spec, n *Node, run bool) error {
	dir := nodeKubeDir(s.Name, n.Name)
	pidf := filepath.Join(dir, "kube-proxy.pid")
	if !run {
		stopPid(readPid(pidf), Dir(s.Name), daemonStopGrace)
		return nil
	}
	if pidAlive(readPid(pidf), Dir(s.Name)) {
		return nil
	}
	sup := readPid(filepath.Join(dir, "supervisor.pid"))
	if !pidAlive(sup, Dir(s.Name)) {
		return fmt.Errorf("start kube-proxy on %s: its node supervisor is not running", n.Name)
	}
	if err := syscall.Kill(sup, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("start kube-proxy on %s: %w", n.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !pidAlive(readPid(pidf), Dir(s.Name)) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("start kube-proxy on %s: not running 10 s after asking its supervisor (log: %s)", n.Name, filepath.Join(dir, "kube-proxy.log"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// StopKubelet stops node's kubelet (SIGTERM), as `systemctl stop kubelet`
// does: its Pods keep running, the node goes NotReady once the control
// plane misses its heartbeats.
func (l *Lab) StopKubelet(node string) error {
	if _, err := l.Spec.Node(node); err != nil {
		return err
	}
	if l.Kube == nil {
		return invalidf("lab %s has no kubelets (it was built without --kubernetes)", l.Spec.Name)
	}
	pid := readPid(filepath.Join(nodeKubeDir(l.Spec.Name, node), "kubelet.pid"))
	if !pidAlive(pid, Dir(l.Spec.Name)) {
		return nil
	}
	stopPid(pid, Dir(l.Spec.Name), daemonStopGrace)
	return nil
}
