//go:build !agentonly

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"podpath/internal/cli"
	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// Felix's MTU auto-detection led astray, on real nodes: a manifest install
// sets no MTU, so Felix (the lab's stand-in, which detects as Felix does)
// takes the smallest running interface matching mtuIfacePattern. Healthy,
// that is eth0 and the doctor says nothing of it; a second NIC with a
// smaller MTU on node2 makes Felix restart and write 1350, and the doctor
// names node2, the NIC it took, the uplink it should have, and the
// pattern that fixes it.
func TestKubeMTUAutodetectSecondNIC(t *testing.T) {
	k := newKubeCluster(t, "manifest")
	r, code, _ := k.doctor(t)
	if code != cli.ExitOK || finding(r, diagnose.MTUAutodetect) != nil {
		t.Fatalf("healthy manifest install: exit %d, findings %s; want exit 0 and no %s", code, summary(r), diagnose.MTUAutodetect)
	}
	fault(t, k.lab, "second-nic-mtu=node2:1400")
	k.waitCalicoNodeRestarted(t, "node2")
	r, code, _ = k.doctor(t)
	t.Logf("with the second NIC: exit %d, findings %s", code, summary(r))
	checkAutodetect(t, r, code, "eth0", "took ens9's MTU 1400 and wrote Pod MTU 1350", "leave by eth0, MTU 1500")
	if i := rankOf(r, diagnose.MTUAutodetect); i != 0 {
		t.Errorf("%s ranks %d in %s; the root cause comes first", diagnose.MTUAutodetect, i, summary(r))
	}
}

// checkAutodetect: the finding is a warning on node2 whose evidence says
// what Felix took and which uplink the traffic uses, and whose remedy
// names that uplink in mtuIfacePattern first, or the MTU 1450 it fits.
func checkAutodetect(t *testing.T, r *model.Report, code int, uplink string, evidence ...string) {
	t.Helper()
	f := finding(r, diagnose.MTUAutodetect)
	if f == nil {
		t.Fatalf("exit %d, findings %s; want %s on node2", code, summary(r), diagnose.MTUAutodetect)
	}
	ev := strings.Join(f.Evidence, "\n")
	if f.Severity != model.SeverityWarning || len(f.Nodes) != 1 || f.Nodes[0] != "node2" {
		t.Errorf("%s %v; want a warning on node2", f.Severity, f.Nodes)
	}
	for _, want := range evidence {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	pattern := `"mtuIfacePattern":"^(` + uplink + `)$"`
	if f.Remedy == nil || f.Remedy.MTU != 1450 || !strings.Contains(f.Remedy.Commands[0], pattern) {
		t.Errorf("remedy %+v; want %s first, or the MTU 1450 set explicitly", f.Remedy, pattern)
	}
}

func rankOf(r *model.Report, id string) int {
	for i, f := range r.Findings {
		if f.ID == id {
			return i
		}
	}
	return -1
}

// waitCalicoNodeRestarted waits until calico-node on node has restarted
// (Felix re-detects the host MTU every 30 s) and is Ready again.
func (k *kubeCluster) waitCalicoNodeRestarted(t *testing.T, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		pods, err := k.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=calico-node", FieldSelector: "spec.nodeName=" + node})
		if err == nil && len(pods.Items) == 1 {
			p := &pods.Items[0]
			restarts := int32(0)
			for _, c := range p.Status.ContainerStatuses {
				restarts += c.RestartCount
			}
			if restarts > 0 && podReadyCond(p) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("calico-node on %s did not restart and become Ready within 3 minutes of its host MTU changing (%v)", node, err)
		case <-time.After(time.Second):
		}
	}
}

// The uplink a bridge over a NIC named em1 (a host set up for VMs, a Dell
// server's interface name): mtuIfacePattern matches neither, Felix falls
// back to 1460 and writes 1410, where the uplink carries 1500. The doctor
// names the fallback, the uplink and the pattern that fixes it.
func TestKubeMTUAutodetectUplinkBridge(t *testing.T) {
	k := newKubeCluster(t, "manifest")
	fault(t, k.lab, "uplink-bridge=node2")
	k.waitCalicoNodeRestarted(t, "node2")
	r, code, _ := k.doctor(t)
	t.Logf("with br0 as the uplink: exit %d, findings %s", code, summary(r))
	checkAutodetect(t, r, code, "br0", "matched no interface and fell back to 1460 and wrote Pod MTU 1410",
		"leave by br0, MTU 1500, which mtuIfacePattern does not match")
	for _, g := range r.Findings {
		if g.Severity == model.SeverityError {
			t.Errorf("%s (error) %v: the node's traffic works over br0", g.ID, g.Nodes)
		}
	}
}
