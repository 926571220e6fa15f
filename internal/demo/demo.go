//go:build linux

// Package demo is podpath's seed case end to end on the lab's real
// Kubernetes nodes: busybox Pods that talk, the underlay towards node3
// shrunk silently, large pings lost, the doctor naming it, fix mtu
// setting it where Kubespray keeps it, new Pods crossing at the new MTU.
// It runs the podpath binary itself and kubectl, as a user would.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"podpath/internal/lab"
)

// fault is the seed case: VXLAN with Pod MTU 1450 over an underlay
// towards node3 that carries only 1400 bytes.
const fault = "underlay-mtu=node3:1400"

// commandTimeout bounds each command the demo runs (kubectl, the
// doctor, the fix with its rollout and re-check).
const commandTimeout = 5 * time.Minute

// Run builds the demo's lab (named name), shows the seed case on it and
// removes the lab unless keep; w hears every step and command.
func Run(ctx context.Context, w io.Writer, name string, keep bool) (err error) {
	start := time.Now()
	fmt.Fprintf(w, "== 1. A Kubespray-style Calico cluster of real nodes: 3 nodes, VXLAN, Pod MTU 1450 (lab %q)\n", name)
	fmt.Fprintln(w, "   (the first run builds Kubernetes and containerd from source: about 7 minutes on 2 cores; then cached)")
	l, err := lab.New(name).Nodes(3).Backend(lab.BackendVXLAN).Kubernetes(lab.CalicoKubespray).Up(ctx)
	if err != nil {
		return err
	}
	if !keep {
		defer func() {
			fmt.Fprintf(w, "\n== 8. Clean up: podpath lab down --name %s\n", name)
			if derr := lab.Down(context.WithoutCancel(ctx), name); derr != nil {
				err = errors.Join(err, derr)
			}
			if err == nil {
				fmt.Fprintf(w, "\nDone in %.0fs.\n", time.Since(start).Seconds())
			}
		}()
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	kc := l.Kube.Kubeconfig
	say := func(argv ...string) (string, error) {
		show := append([]string{}, argv...)
		fmt.Fprintf(w, "   $ %s\n", strings.Join(show, " "))
		bin := argv[0]
		switch bin {
		case "kubectl":
			bin = filepath.Join(l.Kube.KubeBin, "kubectl")
		case "podpath":
			bin = self
		}
		cctx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, bin, argv[1:]...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = io.MultiWriter(indent(w), &out), indent(w)
		err := cmd.Run()
		return out.String(), err
	}
	fmt.Fprintf(w, "   export KUBECONFIG=%s\n", kc)
	if _, err := say("kubectl", "get", "nodes", "-o", "wide"); err != nil {
		return err
	}

	fmt.Fprintln(w, "\n== 2. Pods on different nodes, as the seed case checks them with busybox")
	if _, err := say("kubectl", "run", "tester", "--image=busybox", "--overrides", `{"spec":{"nodeName":"node1"}}`, "--", "sleep", "3600"); err != nil {
		return err
	}
	if _, err := say("kubectl", "run", "target", "--image=busybox", "--overrides", `{"spec":{"nodeName":"node3"}}`, "--", "sleep", "3600"); err != nil {
		return err
	}
	if _, err := say("kubectl", "wait", "--for=condition=Ready", "pod/tester", "pod/target", "--timeout=120s"); err != nil {
		return err
	}
	ipOut, err := say("kubectl", "get", "pod", "target", "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return err
	}
	ip := strings.TrimSpace(ipOut)
	fmt.Fprintln(w)
	if _, err := say("kubectl", "exec", "tester", "--", "ping", "-c", "3", "-s", "1372", ip); err != nil {
		return fmt.Errorf("the healthy cluster's 1400-byte ping from node1 to node3 failed: %w", err)
	}

	f, _ := lab.ParseFault(fault)
	if err := l.AddFault(ctx, f); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== 3. Break it as the seed case broke: %s (the path towards node3 carries 1400 bytes, silently)\n", fault)
	if _, err := say("kubectl", "exec", "tester", "--", "ping", "-c", "3", ip); err != nil {
		return fmt.Errorf("small pings should still cross: %w", err)
	}
	if _, err := say("kubectl", "exec", "tester", "--", "ping", "-c", "3", "-W", "2", "-s", "1372", ip); err == nil {
		return fmt.Errorf("1400-byte pings crossed the broken underlay: the fault did not take")
	}
	fmt.Fprintln(w, "   small packets cross, 1400-byte ones are lost: Pods talk until a packet is full-size.")

	fmt.Fprintln(w, "\n== 4. podpath doctor: agents as Pods on every node, every pair measured")
	if _, err := say("podpath", "doctor"); err == nil {
		return errors.New("the doctor found nothing on the broken cluster")
	}

	fmt.Fprintln(w, "\n== 5. podpath fix mtu --apply: the MTU where Kubespray keeps it, calico-node restarted, re-checked")
	inv, err := kubesprayInventory(name)
	if err != nil {
		return err
	}
	// Exit 1 is expected: the re-check still sees the busybox Pods made
	// before the change, whose MTU is now above the tunnel's.
	_, err = say("podpath", "fix", "mtu", "--apply", "--kubespray-inventory", inv)
	if code := exitCode(err); code != 0 && code != 1 {
		return err
	}
	fmt.Fprintln(w, "\n== 6. Restart the Pods the fix listed: only new Pods get the new MTU")
	if _, err := say("kubectl", "delete", "pod", "tester", "target", "--wait=true"); err != nil {
		return err
	}
	// The cluster DNS's Pods too: deleted and waited for until gone (what
	// the listed rollout restart does, without old Pods lingering while the
	// doctor looks), then their Deployment's new ones.
	if _, err := say("kubectl", "-n", "kube-system", "delete", "pod", "-l", "k8s-app=kube-dns", "--wait=true"); err != nil {
		return err
	}
	if _, err := say("kubectl", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s"); err != nil {
		return err
	}
	for _, p := range [][2]string{{"tester", "node1"}, {"target", "node3"}} {
		if _, err := say("kubectl", "run", p[0], "--image=busybox", "--overrides", `{"spec":{"nodeName":"`+p[1]+`"}}`, "--", "sleep", "3600"); err != nil {
			return err
		}
	}
	if _, err := say("kubectl", "wait", "--for=condition=Ready", "pod/tester", "pod/target", "--timeout=120s"); err != nil {
		return err
	}
	if ipOut, err = say("kubectl", "get", "pod", "target", "-o", "jsonpath={.status.podIP}"); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if _, err := say("kubectl", "exec", "tester", "--", "ping", "-c", "3", "-s", "1322", strings.TrimSpace(ipOut)); err != nil {
		return fmt.Errorf("a full-size ping at the new MTU (1350) did not cross: %w", err)
	}
	fmt.Fprintln(w, "   full-size packets at the new MTU cross.")
	fmt.Fprintln(w, "\n== 7. podpath doctor again: the Pods are fixed; what is left concerns the hosts' own traffic")
	if _, err := say("podpath", "doctor"); err != nil {
		return fmt.Errorf("the doctor still finds an error after the fix: %w", err)
	}
	if keep {
		fmt.Fprintf(w, "\nDone in %.0fs. Lab %s kept: export KUBECONFIG=%s; podpath lab down --name %s\n", time.Since(start).Seconds(), name, kc, name)
	}
	return nil
}

// exitCode is a finished command's exit status (0 for no error, -1 when
// it did not run).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// kubesprayInventory is a Kubespray inventory for the demo's cluster: the
// fixtures' group_vars, as a Kubespray checkout has them, in the lab's
// directory.
func kubesprayInventory(name string) (string, error) {
	fixtures, err := lab.CalicoFixtures()
	if err != nil {
		return "", err
	}
	src := filepath.Join(filepath.Dir(fixtures), "kubespray", "k8s-net-calico.yml")
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("the Kubespray inventory sample: %w", err)
	}
	dir := filepath.Join(lab.Dir(name), "kubespray-inventory")
	file := filepath.Join(dir, "group_vars", "k8s_cluster", "k8s-net-calico.yml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(file, data, 0o644)
}

// indent prefixes every line written through it with three spaces.
func indent(w io.Writer) io.Writer { return &indenter{w: w, bol: true} }

type indenter struct {
	w   io.Writer
	bol bool
}

func (d *indenter) Write(p []byte) (int, error) {
	for _, b := range p {
		if d.bol && b != '\n' {
			if _, err := io.WriteString(d.w, "   "); err != nil {
				return 0, err
			}
		}
		if _, err := d.w.Write([]byte{b}); err != nil {
			return 0, err
		}
		d.bol = b == '\n'
	}
	return len(p), nil
}
