package kubelet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"podpath/internal/nsenter"
)

// reapTimeout bounds the wait for a process after SIGKILL.
const reapTimeout = 5 * time.Second

// procSpec is one container's process.
type procSpec struct {
	path    string
	args    []string
	env     []string
	netns   string
	cred    *syscall.Credential // nil: as the kubelet's own user
	logPath string
}

// proc is a started container process.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once reaped; cmd.ProcessState is set then
}

// startProcess starts spec's process inside its network namespace.
//
// Not `ip netns exec`: that would run the binary as root, and the Pod's
// runAsUser/runAsGroup must hold from the first instruction. Namespaces
// belong to threads, and fork copies the forking thread's: nsenter.Do runs
// cmd.Start on an OS thread switched into the namespace, and the child
// (forked by that locked thread) starts in it, then drops to
// SysProcAttr.Credential before exec. The e2e test checks both (the agent's
// /proc/PID/ns/net and its uid).
//
// Pdeathsig fires when the forking *thread* dies, not the kubelet:
// nsenter.Do returns its thread to the runtime, which keeps it, but a
// thread that later exits locked (a failed switch back, in any code) would
// take the agent with it; restartPolicy Always would then restart it.
func startProcess(spec procSpec) (*proc, error) {
	logf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Env = spec.env
	cmd.Dir = "/" // readable by whichever user the container runs as
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.cred}
	if err := nsenter.Do(spec.netns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", spec.path, spec.netns, err)
	}
	p := &proc{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process group: SIGTERM, SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		// Not the group again: once the leader is reaped its number may
		// belong to someone else's process.
		return nil
	case <-t.C:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(reapTimeout):
		return errors.New("process did not exit after SIGKILL")
	}
}

// terminated describes an exited process as a container's last state.
func (p *proc) terminated() *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{Reason: "Error", ContainerID: containerID(p.pid()),
		StartedAt: metav1.NewTime(p.started), FinishedAt: metav1.Now()}
	ps := p.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.ExitCode, t.Signal = 128+int32(ws.Signal()), int32(ws.Signal())
	} else {
		t.ExitCode = int32(ps.ExitCode())
	}
	if t.ExitCode == 0 {
		t.Reason = "Completed"
	}
	return t
}
