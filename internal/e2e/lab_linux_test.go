//go:build !agentonly

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"podpath/internal/cli"
	"podpath/internal/lab"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces (CI runs as root; try sudo make test)")
	}
}

func labName(t *testing.T) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "c" + hex.EncodeToString(b)
}

// netns lists the namespaces `ip netns list` shows whose names start with
// prefix (other packages' tests build labs at the same time).
func netns(t *testing.T, prefix string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix) {
			mine = append(mine, line)
		}
	}
	return strings.Join(mine, "\n")
}

func TestLabLifecycle(t *testing.T) {
	requireRoot(t)
	name := labName(t)
	before := netns(t, name+".")
	t.Cleanup(func() { _ = lab.Down(t.Context(), name) })

	code, out, errOut := run(t, "lab", "up", "--name", name, "--nodes", "3")
	if code != 0 {
		t.Fatalf("lab up: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"lab " + name + ": ready, 3 nodes, backend vxlan", "node3  198.18.0.3", "inventory: " + lab.Dir(name) + "/inventory.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up output lacks %q:\n%s", want, out)
		}
	}

	// Bad input on a running lab: exit 2, one line, lab untouched.
	wantUsageError(t, `no node "node7" in lab `+name, "lab", "fault", "add", "--name", name, "underlay-mtu=node7:1400")
	wantUsageError(t, "already exists (3 nodes, backend vxlan", "lab", "up", "--name", name, "--nodes", "4")
	wantUsageError(t, "has no BGP", "lab", "fault", "add", "--name", name, "bird-down=node1")
	// A bad second fault stops the first from being applied.
	wantUsageError(t, `no node "node9"`, "lab", "fault", "add", "--name", name, "block-vxlan=node2", "block-vxlan=node9")
	wantUsageError(t, "is not active", "lab", "fault", "clear", "--name", name, "block-icmp=node2")

	if code, out, errOut = run(t, "lab", "fault", "add", "--name", name, "underlay-mtu=node3:1400", "block-icmp=node1"); code != 0 {
		t.Fatalf("fault add: exit %d: %s", code, errOut)
	}
	code, out, _ = run(t, "lab", "status", "--name", name, "-o", "json")
	var st lab.State
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, out)
	}
	if len(st.Faults) != 2 || st.Faults[0].String() != "underlay-mtu=node3:1400" || st.Faults[1].String() != "block-icmp=node1" {
		t.Errorf("faults in status = %v; want exactly the two added", st.Faults)
	}
	if code, out, _ = run(t, "lab", "fault", "clear", "--name", name, "block-icmp=node1"); code != 0 || !strings.Contains(out, "fault block-icmp=node1 cleared") {
		t.Errorf("clear one fault: exit %d: %s", code, out)
	}
	if code, out, _ = run(t, "lab", "fault", "clear", "--name", name); code != 0 || !strings.Contains(out, "fault underlay-mtu=node3:1400 cleared") {
		t.Errorf("clear all: exit %d: %s", code, out)
	}
	if code, out, _ = run(t, "lab", "exec", "--name", name, "node1", "--", "ip", "-o", "link", "show", "eth0"); code != 0 || !strings.Contains(out, "mtu 1500") {
		t.Errorf("lab exec: exit %d: %s", code, out)
	}
	if code, _, _ = run(t, "lab", "exec", "--name", name, "node1", "--", "false"); code != 1 {
		t.Errorf("lab exec of a failing command: exit %d; want its exit code 1", code)
	}
	if code, _, errOut = run(t, "lab", "down", "--name", name); code != 0 {
		t.Fatalf("lab down: exit %d: %s", code, errOut)
	}
	if after := netns(t, name+"."); after != before {
		t.Errorf("ip netns list after down:\n%s\nwant as before up:\n%s", after, before)
	}
	if code, _, _ = run(t, "lab", "down", "--name", name); code != 0 {
		t.Errorf("second down: exit %d; want 0 (idempotent)", code)
	}
	wantUsageError(t, "no lab \""+name+"\"", "lab", "status", "--name", name)
}

// The same binary, run by an unprivileged user, refuses with exit 2 and
// builds nothing.
func TestLabNeedsRoot(t *testing.T) {
	requireRoot(t)
	bin := podpathBin
	name := labName(t)
	for _, args := range [][]string{{"lab", "up", "--name", name}, {"lab", "down"}, {"lab", "fault", "add", "pod-mtu=1500"}} {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if code != cli.ExitNoRun || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "needs root") {
			t.Errorf("podpath %s as nobody: exit %d (%v), stderr %q; want exit 2 and one line saying it needs root", strings.Join(args, " "), code, err, stderr.String())
		}
	}
	if left := netns(t, name+"."); left != "" {
		t.Errorf("namespaces left after a refused up:\n%s", left)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A Kubernetes lab's up killed outright while its nodes start: down removes
// every process, mount, cgroup, namespace and the state directory.
func TestKubeLabDownAfterSIGKILL(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short: starts a control plane and real nodes")
	}
	name := labName(t)
	up := exec.Command(podpathBin, "lab", "up", "--name", name, "--kubernetes", "--nodes", "2")
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the first node's kubelet runs: control plane, registry,
	// forwarder and node processes are all up, the lab not yet ready.
	kubelet := filepath.Join(lab.Dir(name), "node1", "kube", "kubelet.pid")
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(kubelet); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = up.Process.Kill()
			t.Fatalf("no kubelet on node1 within 3 minutes")
		}
	}
	_ = up.Process.Signal(syscall.SIGKILL)
	_ = up.Wait()
	if out, _ := exec.Command("pgrep", "-f", lab.Dir(name)+"/").Output(); len(out) == 0 {
		t.Fatalf("nothing of the lab was running when up was killed: the test proves nothing")
	}
	if code, out, errOut := run(t, "lab", "down", "--name", name); code != 0 {
		t.Fatalf("lab down: exit %d: %s %s", code, out, errOut)
	}
	if left := netns(t, name+"."); left != "" {
		t.Errorf("namespaces left:\n%s", left)
	}
	if out, _ := exec.Command("pgrep", "-af", lab.Dir(name)+"/").Output(); len(out) > 0 {
		t.Errorf("processes left:\n%s", out)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/podpath.lab." + name + ".*"); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), lab.Dir(name)) {
		t.Errorf("mounts left")
	}
	if _, err := os.Stat(lab.Dir(name)); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}
