package lab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"podpath/internal/lab/cni"
	"podpath/internal/pki"
)

// A lab node with a kubelet runs in its own network, mount and UTS
// namespace. In the mount namespace, everything kubelet, containerd and
// runc write outside their configured directories lands on the node's own
// copy: /run is a fresh tmpfs, and /var, /etc and /opt are overlays whose
// writes go to the node's directory, so /var/lib/kubelet, /var/log/pods,
// /etc/cni/net.d or /opt/cni/bin of one node are not another's, and the
// machine's are never touched. The host-wide sysctls kubelet sets are
// plain files there. Every process of the node lives in the node's cgroup
// subtree, in every hierarchy.
const (
	containerdSocket   = "/run/containerd/containerd.sock"
	kubeletPort        = 10250
	containerdReady    = 30 * time.Second
	PauseImage         = "registry.k8s.io/pause:3.10"
	podpathImageRepo   = "podpath/podpath"
	overlayRoots       = "var etc opt"
	supervisorStopWait = 10 * time.Second
)

// hostSysctls are the kernel settings kubelet writes that are not per
// network namespace: each node gets a file of its own over them.
var hostSysctls = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// nodeKubeDir holds a node's configuration, certificates, logs and the
// upper layers of its overlays.
func nodeKubeDir(lab, node string) string { return filepath.Join(Dir(lab), node, "kube") }

// startKubeNode writes the node's configuration and starts its supervisor
// (`podpath lab kube-node`) in new mount and UTS namespaces inside the
// node's network namespace.
func startKubeNode(s *Spec, n *Node, ca *pki.CA, exe, nodeBin, kubeBin string) error {
	dir := nodeKubeDir(s.Name, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create node directory: %w", err)
	}
	if err := os.MkdirAll(calicoRunDir(Dir(s.Name), n.Name), 0o755); err != nil {
		return err
	}
	if err := writeNodeConfig(s, n, ca, exe); err != nil {
		return err
	}
	if err := makeCgroups(cgroupName(s.Name, n.Name)); err != nil {
		return err
	}
	d := daemon{name: "supervisor", netns: n.Netns, dir: dir, cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS,
		argv: []string{exe, "lab", "kube-node", "--lab", s.Name, "--node", n.Name, "--node-bin", nodeBin, "--kube-bin", kubeBin,
			"--id", "podpath-kube-node:" + Dir(s.Name)}}
	_, err := d.start()
	return err
}

func writeNodeConfig(s *Spec, n *Node, ca *pki.CA, exe string) error {
	dir := nodeKubeDir(s.Name, n.Name)
	p := func(f string) string { return filepath.Join(dir, f) }
	if err := os.WriteFile(p("ca.crt"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	// Serving certificate for the API server's calls (logs, exec) at the
	// node's address, signed by the cluster CA, as a real cluster's are.
	cert, key, err := ca.Issue("system:node:"+n.Name, []string{"system:nodes"}, []string{n.Name},
		[]net.IP{n.Address.AsSlice()}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	if err := pki.WritePair(p("kubelet-serving"), cert, key); err != nil {
		return err
	}
	if err := ca.WriteKubeconfig(p("kubelet.kubeconfig"), apiURL(), "system:node:"+n.Name, []string{"system:nodes"}); err != nil {
		return err
	}
	if err := ca.WriteKubeconfig(p("kube-proxy.kubeconfig"), apiURL(), "system:kube-proxy", nil); err != nil {
		return err
	}
	files := map[string]string{
		"containerd.toml": containerdConfig(dir),
		"kubelet.yaml":    kubeletConfig(s, n, dir),
		"kube-proxy.yaml": kubeProxyConfig(n, dir),
		// Every image name the lab's Pods use resolves to the lab's registry.
		"certs.d/docker.io/hosts.toml":       mirror(),
		"certs.d/registry.k8s.io/hosts.toml": mirror(),
		"certs.d/quay.io/hosts.toml":         mirror(),
		"block":                              n.Block.String() + "\n",
	}
	for _, d := range []string{"cni-bin", "sysctl", "containerd"} {
		if err := os.MkdirAll(p(d), 0o755); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(p(name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p(name), []byte(data), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.Symlink(exe, p("cni-bin/"+cni.ProgramName)); err != nil && !os.IsExist(err) {
		return fmt.Errorf("install the CNI plugin: %w", err)
	}
	return nil
}

func registryAddr() string { return net.JoinHostPort(ControlPlaneAddr, strconv.Itoa(RegistryPort)) }

// mirror sends a registry's pulls to the lab's own registry, with no
// fallback: the lab reaches no registry outside itself.
func mirror() string {
	return fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, registryAddr())
}

func containerdConfig(dir string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = "/run/containerd"

[grpc]
  address = %[2]q

[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"

[plugins."io.containerd.cri.v1.runtime"]
  # The machine withholds CAP_SYS_RESOURCE: a sandbox's oom_score_adj of
  # -998 would fail every Pod.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[3]q]
    conf_dir = "/etc/cni/net.d"
    use_internal_loopback = true

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[4]q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[5]q
`, filepath.Join(dir, "containerd"), containerdSocket, filepath.Join(dir, "cni-bin"), PauseImage, filepath.Join(dir, "certs.d"))
}

func kubeletConfig(s *Spec, n *Node, dir string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this kernel: still supported, behind this gate.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /%[1]s
enforceNodeAllocatable: [pods]
failSwapOn: false
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
port: %[4]d
readOnlyPort: 0
resolvConf: ""
hairpinMode: none
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%%", "imagefs.available": "1%%"}
serializeImagePulls: false
nodeLeaseDurationSeconds: 12
nodeStatusUpdateFrequency: 4s
clusterDomain: %[6]s
clusterDNS: [%[7]s]
tlsCertFile: %[5]s/kubelet-serving.crt
tlsPrivateKeyFile: %[5]s/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[5]s/ca.crt}
authorization:
  mode: Webhook
`, cgroupName(s.Name, n.Name), containerdSocket, n.Address, kubeletPort, dir, ClusterDomain, ClusterDNS)
}

// kubeProxyConfigMap is kube-system/kube-proxy as kubeadm and Kubespray
// leave it (config.conf: the configuration every node's kube-proxy runs
// with): what the doctor reads kube-proxy's mode from. The lab's nodes run
// kube-proxy from a file with the same settings (kubeProxyConfig).
func kubeProxyConfigMap() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: kube-proxy, namespace: kube-system, labels: {app: kube-proxy}}
data:
  config.conf: |
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: nftables
    clusterCIDR: %s
    metricsBindAddress: 127.0.0.1:10249
    healthzBindAddress: 127.0.0.1:10256
`, PodCIDR)
}

func kubeProxyConfig(n *Node, dir string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
# This kernel has no IPVS; nftables NAT and conntrack are built in.
mode: nftables
hostnameOverride: %[1]s
clusterCIDR: %[2]s
clientConnection:
  kubeconfig: %[3]s/kube-proxy.kubeconfig
# Conntrack limits are not per network namespace: leave the machine's alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, n.Name, PodCIDR, dir)
}

// makeCgroups creates a node's subtree in every hierarchy; cpuset needs its
// CPUs and memory nodes copied from the parent before anything can join.
func makeCgroups(name string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		d := filepath.Join(m, name)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(m, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("set %s of %s: %w", f, d, err)
				}
			}
		}
	}
	return nil
}

// joinCgroups moves the calling process into the node's subtree everywhere.
func joinCgroups(name string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, m := range mounts {
		if err := os.WriteFile(filepath.Join(m, name, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", filepath.Join(m, name), err)
		}
	}
	return nil
}

// KubeNodeOptions is what `podpath lab kube-node` is told.
type KubeNodeOptions struct {
	Lab, Node, NodeBin, KubeBin string
}

// RunKubeNode is a node's supervisor: it makes the node's mounts in its
// (new) mount namespace, names the host, joins the node's cgroups, then
// runs containerd, kubelet and kube-proxy until told to stop. It stops
// them on SIGTERM; whatever they leave (Pods, shims) lab down kills through
// the node's cgroups.
func RunKubeNode(ctx context.Context, o KubeNodeOptions) error {
	dir := nodeKubeDir(o.Lab, o.Node)
	if err := nodeMounts(o.Lab, dir); err != nil {
		return fmt.Errorf("node mounts: %w", err)
	}
	if err := unix.Sethostname([]byte(o.Node)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := joinCgroups(cgroupName(o.Lab, o.Node)); err != nil {
		return err
	}
	for _, d := range []string{"/etc/cni/net.d", "/var/lib/calico", "/var/log/calico", "/var/lib/kubelet", "/run/calico"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	block, err := os.ReadFile(filepath.Join(dir, "block"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(cni.BlockFile, block, 0o644); err != nil {
		return fmt.Errorf("write the node's IPAM block: %w", err)
	}
	// BIRD's control socket, where calico-node keeps it.
	if err := unix.Mount(calicoRunDir(Dir(o.Lab), o.Node), "/run/calico", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount /run/calico: %w", err)
	}
	if err := os.WriteFile("/etc/hostname", []byte(o.Node+"\n"), 0o644); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	env := []string{"PATH=" + o.NodeBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	p := func(f string) string { return filepath.Join(dir, f) }
	procs := map[string]*exec.Cmd{}
	startProc := func(name string, argv ...string) error {
		logf, err := os.OpenFile(p(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr, cmd.Env = logf, logf, env
		// Its own process group, so a signal to the supervisor's group
		// does not reach it before the supervisor stops it in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		procs[name] = cmd
		go func() { _ = cmd.Wait() }()
		return os.WriteFile(p(name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	}
	if err := startProc("containerd", filepath.Join(o.NodeBin, "containerd"), "--config", p("containerd.toml")); err != nil {
		return err
	}
	if err := waitSocket(ctx, containerdSocket, containerdReady); err != nil {
		return fmt.Errorf("containerd: %w (its log: %s)", err, p("containerd.log"))
	}
	if err := startProc("kubelet", filepath.Join(o.KubeBin, "kubelet"), "--config", p("kubelet.yaml"),
		"--kubeconfig", p("kubelet.kubeconfig"), "--hostname-override", o.Node, "--node-ip", nodeIP(dir), "--v", "1"); err != nil {
		return err
	}
	startKubeProxy := func() error {
		return startProc("kube-proxy", filepath.Join(o.KubeBin, "kube-proxy"), "--config", p("kube-proxy.yaml"))
	}
	if err := startKubeProxy(); err != nil {
		return err
	}
	// SIGUSR2 starts kube-proxy again once a fault stopped it (its
	// DaemonSet's controller would, on a real node).
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGUSR2)
	defer signal.Stop(again)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-again:
			if c := procs["kube-proxy"]; c != nil && pidAlive(c.Process.Pid, Dir(o.Lab)) {
				continue
			}
			if err := startKubeProxy(); err != nil {
				fmt.Fprintf(os.Stderr, "restart kube-proxy: %v\n", err)
			}
		}
	}
	for _, name := range []string{"kube-proxy", "kubelet", "containerd"} {
		if c := procs[name]; c != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() {
				for c.ProcessState == nil && pidAlive(c.Process.Pid, "") {
					time.Sleep(20 * time.Millisecond)
				}
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(supervisorStopWait / 3):
				_ = c.Process.Kill()
			}
		}
	}
	return nil
}

func nodeIP(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "kubelet.yaml"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "address: "); ok {
			return v
		}
	}
	return ""
}

// nodeMounts makes the node's view of the file system (see the top of this
// file). The namespace is new and a slave of nothing the machine does: its
// mounts never reach the machine's.
func nodeMounts(lab, dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	// The lab's directory lives under /run: keep a handle on it across the
	// fresh /run, then mount it back in its place.
	fd, err := unix.Open(Dir(lab), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open lab directory: %w", err)
	}
	defer unix.Close(fd)
	for _, root := range strings.Fields(overlayRoots) {
		upper, work := filepath.Join(dir, "overlay", root), filepath.Join(dir, "overlay", root+".work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		opts := "lowerdir=/" + root + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", "/"+root, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay /%s: %w", root, err)
		}
	}
	for _, key := range hostSysctls {
		cur, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			continue // not on this kernel: kubelet skips it too
		}
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(f, cur, 0o644); err != nil {
			return err
		}
		if err := unix.Mount(f, "/proc/sys/"+key, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("cover /proc/sys/%s: %w", key, err)
		}
	}
	// The copies of the machine's mounts under /run (other labs' netns
	// files above all) go first: a file that is a mount point in any
	// namespace cannot be removed, so a copy kept here would stop every
	// other lab's `down` from deleting its namespaces.
	if err := detachUnder("/run"); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("tmpfs /run: %w", err)
	}
	if err := os.MkdirAll(Dir(lab), 0o755); err != nil {
		return err
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), Dir(lab), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount the lab directory back: %w", err)
	}
	// Mounts made from here on (volumes, container rootfs, netns files)
	// propagate between the node's own mount points, as on a host with
	// shared mounts, and still never to the machine.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make the node's mounts shared: %w", err)
	}
	return nil
}

// detachUnder lazily unmounts, in this mount namespace only, every mount
// below dir, deepest first.
func detachUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detach %s: %w", points[i], err)
		}
	}
	return nil
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no socket %s within %s: %w", path, timeout, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NodeCommand prepares argv to run on a Kubernetes lab's node as a shell
// on that host would: in its network, mount and UTS namespaces (where its
// containerd socket and /var/lib/kubelet are), with the node's tools on
// PATH (ctr among them).
func (l *Lab) NodeCommand(ctx context.Context, node string, argv ...string) (*exec.Cmd, error) {
	if _, err := l.Spec.Node(node); err != nil {
		return nil, err
	}
	if l.Kube == nil {
		return nil, invalidf("lab %s has no kubelets (it was built without --kubernetes)", l.Spec.Name)
	}
	pid := readPid(filepath.Join(nodeKubeDir(l.Spec.Name, node), "supervisor.pid"))
	if !pidAlive(pid, Dir(l.Spec.Name)) {
		return nil, fmt.Errorf("node %s of lab %s is not running", node, l.Spec.Name)
	}
	args := append([]string{"--target", strconv.Itoa(pid), "--mount", "--net", "--uts", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = append(os.Environ(), "PATH="+l.Kube.NodeBin+":"+l.Kube.KubeBin+":/usr/sbin:/usr/bin:/sbin:/bin",
		"CONTAINERD_ADDRESS="+containerdSocket, "CONTAINERD_NAMESPACE=k8s.io")
	return cmd, nil
}
