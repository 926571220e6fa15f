package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"podpath/internal/lab"
	"podpath/internal/nsenter"
)

// Restart back-off of a container that exits (restartPolicy Always): 1 s
// doubling to 10 s, back to 1 s after a run this long.
const (
	backoffStart = time.Second
	backoffMax   = 10 * time.Second
	backoffReset = time.Minute
	prepareRetry = 2 * time.Second // a missing Secret, say
)

// runAgent runs a podpath agent Pod until it terminates: a sandbox (the
// node's namespace or a free lab Pod namespace), its volumes, then its
// first container's process, restarted whenever it exits.
func (w *podWorker) runAgent() {
	pod, n := w.pod, w.node.spec
	now := metav1.Now()
	w.set(podState{phase: corev1.PodPending, hostIP: n.Address, startTime: now,
		waitReason: "ContainerCreating", onlyFirst: true})
	sb := sandbox{netns: n.Netns, podIP: n.Address, hostIP: n.Address}
	if !pod.Spec.HostNetwork {
		slot, ok := w.waitSlot()
		if !ok {
			return
		}
		defer w.k.slots.release(slot.Netns, pod.UID)
		sb.netns, sb.podIP = slot.Netns, slot.Address
		w.k.cniMTU(w.ctx, slot.Name)
	}
	w.st.podIP, w.st.sandbox, w.st.reason, w.st.message = sb.podIP, true, "", ""
	w.dirty = true
	w.sync()

	dir := filepath.Join(w.k.root, pod.Namespace+"_"+pod.Name[:min(len(pod.Name), 100)]+"_"+string(pod.UID)) // under NAME_MAX
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.k.logf("%s: %v", podName(pod), err)
		<-w.ctx.Done()
		return
	}
	defer os.RemoveAll(dir)
	defer w.unrouteAPI()
	for {
		spec, tokens, err := w.prepare(sb, dir)
		if err == nil {
			w.runContainer(spec, tokens)
			return
		}
		w.st.waitReason, w.st.waitMessage = "ContainerCreating", err.Error()
		w.dirty = true
		w.sync()
		w.k.logf("%s: %v", podName(pod), err)
		if !w.sleep(prepareRetry) {
			return
		}
	}
}

// waitSlot takes a free lab Pod namespace of the node, waiting (Pending,
// saying why) while there is none.
func (w *podWorker) waitSlot() (slot lab.Pod, ok bool) {
	said := false
	for {
		slot, ok, freed := w.k.slots.acquire(w.node.spec, w.pod.UID)
		if ok {
			w.k.logf("%s: Pod namespace %s (%s)", podName(w.pod), slot.Netns, slot.Address)
			return slot, true
		}
		if !said {
			msg := fmt.Sprintf("no free lab Pod namespace on %s: all %d are in use (build the lab with more Pods per node)",
				w.node.spec.Name, len(w.node.spec.Pods))
			w.k.logf("%s: %s", podName(w.pod), msg)
			w.st.reason, w.st.message = "NoPodNamespace", msg
			w.dirty = true
			w.sync()
			said = true
		}
		for waiting := true; waiting; {
			select {
			case <-w.ctx.Done():
				return slot, false
			case <-freed:
				waiting = false
			case <-w.retry():
				w.sync()
			}
		}
	}
}

// prepare resolves the container's process: environment, arguments,
// volumes (with the tokens to keep fresh), user, and the sandbox's way to
// the API server.
func (w *podWorker) prepare(sb sandbox, dir string) (procSpec, []*token, error) {
	pod := w.pod
	c := &pod.Spec.Containers[0]
	if err := w.routeAPI(sb.netns); err != nil {
		return procSpec{}, nil, err
	}
	vars, env, err := containerEnv(pod, c, sb)
	if err != nil {
		return procSpec{}, nil, err
	}
	mounts, tokens, err := w.k.writeVolumes(w.ctx, pod, c, sb, dir)
	if err != nil {
		return procSpec{}, nil, err
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = expand(a, vars)
	}
	if !pod.Spec.HostNetwork {
		// As containerd does for every Pod sandbox: an unprivileged process
		// may open ICMP echo sockets.
		if err := setSysctl(sb.netns, "net/ipv4/ping_group_range", "0 2147483647"); err != nil {
			return procSpec{}, nil, err
		}
	}
	return procSpec{path: w.k.opts.Binary, args: rewriteArgs(args, mounts), env: env, netns: sb.netns,
		cred: credential(pod, c), logPath: filepath.Join(dir, c.Name+".log")}, tokens, nil
}

// routeAPI gives the worker a share of its sandbox's API server forwarder,
// once: a Pod holds it from its first start to its end.
func (w *podWorker) routeAPI(netns string) error {
	if w.apiNetns != "" {
		return nil
	}
	if err := w.k.fwd.acquire(netns); err != nil {
		return err
	}
	w.apiNetns = netns
	return nil
}

// unrouteAPI lets the forwarder go, after the Pod's processes have ended:
// an agent may still talk to the API server while it shuts down.
func (w *podWorker) unrouteAPI() {
	if w.apiNetns != "" {
		w.k.fwd.release(w.apiNetns)
		w.apiNetns = ""
	}
}

// runContainer supervises the container while its tokens are kept fresh, and
// returns once both are done (the Pod's files may go then).
func (w *podWorker) runContainer(spec procSpec, tokens []*token) {
	if len(tokens) == 0 {
		w.supervise(spec)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.keepTokens(tokens)
	}()
	w.supervise(spec) // returns when the Pod terminates, which ends keepTokens too
	<-done
}

// setSysctl writes a network sysctl of a namespace: /proc/sys/net follows
// the namespace of the thread that opens it.
func setSysctl(netns, key, value string) error {
	return nsenter.Do(netns, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, netns, err)
		}
		return nil
	})
}

// supervise runs the process, restarting it with back-off whenever it
// exits, until the Pod terminates.
func (w *podWorker) supervise(spec procSpec) {
	pod := w.pod
	backoff := backoffStart
	for w.ctx.Err() == nil {
		p, err := startProcess(spec)
		var exit *corev1.ContainerStateTerminated
		if err != nil {
			now := metav1.Now()
			exit = &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: now, FinishedAt: now}
		} else {
			w.k.logf("%s: started pid %d in %s: %s %v", podName(pod), p.pid(), spec.netns, spec.path, spec.args)
			var stopped bool
			if exit, stopped = w.watch(p, spec); stopped {
				return
			}
			if time.Since(p.started) > backoffReset {
				backoff = backoffStart
			}
		}
		w.k.logf("%s: container exited (%d %s %s); restarting in %s", podName(pod), exit.ExitCode, exit.Reason, exit.Message, backoff)
		w.st.running, w.st.ready, w.st.pid = false, false, 0
		w.st.restarts++
		w.st.lastExit = exit
		w.st.waitReason, w.st.waitMessage = "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container (log: %s)", backoff, spec.logPath)
		w.dirty = true
		w.sync()
		if !w.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// watch reports a started process as running, probes its readiness, and
// returns when it exits (with how) or when the Pod terminates (stopped,
// after ending it).
func (w *podWorker) watch(p *proc, spec procSpec) (exit *corev1.ContainerStateTerminated, stopped bool) {
	c := &w.pod.Spec.Containers[0]
	pr := newProber(c, w.st.podIP, spec.netns)
	w.st.phase, w.st.running, w.st.pid, w.st.startedAt = corev1.PodRunning, true, p.pid(), metav1.NewTime(p.started)
	w.st.waitReason, w.st.waitMessage = "", ""
	w.st.ready = pr == nil // without a probe, ready once started
	w.dirty = true
	w.sync()

	var next <-chan time.Time
	var results chan bool
	if pr != nil {
		next = time.After(pr.initialDelay)
		results = make(chan bool, 1)
	}
	for {
		select {
		case <-w.ctx.Done():
			grace, _ := w.termination()
			if err := p.stop(grace); err != nil {
				w.k.logf("%s: pid %d: %v", podName(w.pod), p.pid(), err)
			}
			w.k.logf("%s: stopped pid %d", podName(w.pod), p.pid())
			return nil, true
		case <-p.exited:
			return p.terminated(), false
		case <-next:
			next = nil
			w.k.wg.Add(1) // Stop waits for it too
			go func() { defer w.k.wg.Done(); results <- pr.probe(w.ctx) }()
		case ok := <-results:
			if ready := pr.record(ok); ready != w.st.ready {
				w.k.logf("%s: ready=%v", podName(w.pod), ready)
				w.st.ready = ready
				w.dirty = true
				w.sync()
			}
			next = time.After(pr.period)
		case <-w.retry():
			w.sync()
		}
	}
}
