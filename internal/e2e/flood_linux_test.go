//go:build !agentonly

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"podpath/internal/agent"
	"podpath/internal/apiauth"
	"podpath/internal/lab"
	"podpath/internal/model"
	"podpath/internal/nsenter"
	"podpath/internal/probe"
)

// flooder is an attacker in a Pod of the lab: it sends probe-shaped UDP
// datagrams to an agent and API requests without the token, bounded in
// rate and time, from inside its namespace only.
type flooder struct {
	udp, api atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Bounds of one flood: what a Pod on the node network can send from this
// machine's 2 cores while the doctor runs, and never longer than that run.
const (
	floodUDPPerMs = 15 // 15,000 datagrams/s per source, 30,000/s from two
	floodAPIEvery = 20 * time.Millisecond
	floodMax      = 60 * time.Second
)

func startFlood(t *testing.T, netns, agentAddr string) *flooder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), floodMax)
	f := &flooder{cancel: cancel}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := nsenter.DialContext(ctx, netns, d, "udp", agentAddr)
	if err != nil {
		cancel()
		t.Fatalf("flood from %s: %v", netns, err)
	}
	f.wg.Go(func() {
		defer c.Close()
		b := make([]byte, 64)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := uint32(1); ctx.Err() == nil; {
			<-tick.C
			for range floodUDPPerMs {
				probe.Header{Run: 7, Seq: seq, SentUnix: time.Now().UnixNano()}.Put(b)
				seq++
				if _, err := c.Write(b); err == nil {
					f.udp.Add(1)
				}
			}
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nsenter.DialContext(ctx, netns, d, network, addr)
		}}}
	f.wg.Go(func() {
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+agentAddr+"/v1/probe", strings.NewReader(`{"targets":["x"]}`))
			req.Header.Set(apiauth.Header, "v1 ts=1 nonce=00000000000000000000000000000000 sig=AAAA")
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				f.api.Add(1)
			}
			time.Sleep(floodAPIEvery)
		}
	})
	t.Cleanup(f.stop)
	return f
}

func (f *flooder) stop() { f.cancel(); f.wg.Wait() }

// verdict is what a reader acts on: the error and warning findings, by ID and node.
func verdict(t *testing.T, l *lab.Lab) (int, []string) {
	t.Helper()
	code, out, errOut := run(t, "doctor", "--inventory", l.Inventory, "-o", "json")
	var r model.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor: exit %d: %v\n%s", code, err, errOut)
	}
	var v []string
	for _, f := range r.Findings {
		if f.Severity != "info" {
			v = append(v, fmt.Sprintf("%s %s %s", f.Severity, f.ID, strings.Join(f.Nodes, ",")))
		}
	}
	slices.Sort(v)
	return code, v
}

// Issue 15, points 1 and 2: Pods on two other nodes flood node2's host
// agent with UDP probes (30,000/s) and unauthenticated API calls; the
// doctor's verdict is what it is without the flood, healthy and with the
// seed fault on node2 (before: node-unreachable, packet-loss).
func TestDoctorVerdictUnderAFlood(t *testing.T) {
	l := agentLab(t, lab.New(labName(t)).Nodes(3).Backend(lab.BackendVXLAN))
	target := netip.AddrPortFrom(l.Spec.Nodes[1].Address, lab.AgentPort).String()
	for _, state := range []string{"healthy", "underlay-mtu=node2:1400"} {
		if state != "healthy" {
			fault(t, l, state)
		}
		calmCode, calm := verdict(t, l)
		began := time.Now()
		a := startFlood(t, l.Spec.Nodes[0].Pods[0].Netns, target)
		b := startFlood(t, l.Spec.Nodes[2].Pods[0].Netns, target)
		time.Sleep(300 * time.Millisecond) // the flood is on before the doctor starts
		code, attacked := verdict(t, l)
		a.stop()
		b.stop()
		took := time.Since(began).Seconds()
		sent, calls := a.udp.Load()+b.udp.Load(), a.api.Load()+b.api.Load()
		t.Logf("%s: %d datagrams (%.0f/s) and %d unauthenticated calls to %s in %.1f s; verdict %q", state, sent, float64(sent)/took, calls, target, took, attacked)
		// Over the strangers' whole UDP budget (5,000/s) and their API budget (5/s): anything less tests nothing.
		if float64(sent)/took < probe.StrangerRate || float64(calls)/took < agent.StrangerRate {
			t.Fatalf("%s: the flood was too weak to test anything (%d datagrams, %d calls in %.1f s)", state, sent, calls, took)
		}
		if code != calmCode || !slices.Equal(attacked, calm) {
			t.Errorf("%s: under the flood exit %d %q; without it exit %d %q", state, code, attacked, calmCode, calm)
		}
	}
}
