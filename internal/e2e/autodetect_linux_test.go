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
	f := finding(r, diagnose.MTUAutodetect)
	if f == nil {
		t.Fatalf("exit %d, findings %s; want %s on node2", code, summary(r), diagnose.MTUAutodetect)
	}
	ev := strings.Join(f.Evidence, "\n")
	if f.Severity != model.SeverityWarning || len(f.Nodes) != 1 || f.Nodes[0] != "node2" ||
		!strings.Contains(ev, "took ens9's MTU 1400 and wrote Pod MTU 1350") || !strings.Contains(ev, "leave by eth0, MTU 1500") {
		t.Errorf("%s %v:\n%s\nwant a warning on node2: Felix took ens9's 1400, the uplink is eth0 at 1500", f.Severity, f.Nodes, ev)
	}
	if f.Remedy == nil || f.Remedy.MTU != 1450 || !strings.Contains(f.Remedy.Commands[0], `"mtuIfacePattern":"^(eth0)$"`) {
		t.Errorf("remedy %+v; want mtuIfacePattern ^(eth0)$ first, or the MTU 1450 set explicitly", f.Remedy)
	}
	if i := rankOf(r, diagnose.MTUAutodetect); i != 0 {
		t.Errorf("%s ranks %d in %s; the root cause comes first", diagnose.MTUAutodetect, i, summary(r))
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
