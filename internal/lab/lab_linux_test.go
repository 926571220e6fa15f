package lab

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"podpath/internal/cluster/inventory"
)

func TestVXLANPodsReachEachOther(t *testing.T) {
	l := testLab(t, New("").Nodes(3).PodsPerNode(2).Backend(BackendVXLAN))
	allPodsReach(t, l)

	// The dataplane is Calico's: check what Felix and the CNI plugin would program.
	h, err := openNS(pod(l, "node1", 0).Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	routes, err := h.nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var viaGateway bool
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == PodGateway {
			viaGateway = true
		}
	}
	if !viaGateway {
		t.Errorf("Pod routes %v: want default via %s", routes, PodGateway)
	}
	out := run(t, l, "node1", "ip", "-d", "link", "show", VXLANDevice)
	for _, want := range []string{"mtu 1450", "vxlan id 4096", "dstport 4789", "nolearning"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip -d link show %s lacks %q:\n%s", VXLANDevice, want, out)
		}
	}
	out = run(t, l, "node1", "ip", "route")
	for _, want := range []string{"blackhole 10.233.64.0/26", "10.233.64.64/26 via 10.233.64.64 dev vxlan.calico proto 80 onlink"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip route on node1 lacks %q:\n%s", want, out)
		}
	}
	host := pod(l, "node1", 0).HostIf
	out = run(t, l, "node1", "ip", "link", "show", host)
	if !strings.Contains(out, CaliMAC) {
		t.Errorf("%s has no MAC %s:\n%s", host, CaliMAC, out)
	}
	if v := strings.TrimSpace(run(t, l, "node1", "cat", "/proc/sys/net/ipv4/conf/"+host+"/proxy_arp")); v != "1" {
		t.Errorf("proxy_arp on %s = %s; want 1", host, v)
	}

	inv, err := inventory.Load(l.Inventory)
	if err != nil {
		t.Fatalf("lab inventory does not load: %v", err)
	}
	if len(inv.Nodes) != 3 || inv.Nodes[2].Address != "198.18.0.3" || inv.Network.PodMTU != 0 || len(inv.Nodes[0].Pods) != 2 {
		t.Errorf("inventory = %+v; want 3 nodes, node3 at 198.18.0.3, Pod MTU 0 (auto-detected), 2 Pods per node", inv)
	}
}

func TestRoutedVXLANPodsReachEachOther(t *testing.T) {
	l := testLab(t, New("").Nodes(4).Backend(BackendVXLAN).Topology(TopologyRouted))
	if got := nodeAddr(l, "node4"); !netip.MustParsePrefix("198.19.0.0/16").Contains(got) {
		t.Fatalf("node4 address %s; want it on the second subnet 198.19.0.0/16", got)
	}
	allPodsReach(t, l)
	out := run(t, l, "node1", "tracepath", "-n", "-m", "3", nodeAddr(l, "node4").String())
	if !strings.Contains(out, "198.18.255.254") {
		t.Errorf("node1 → node4 does not cross the router:\n%s", out)
	}
}

func TestBGPSessionsEstablishedAndPodsReach(t *testing.T) {
	l := testLab(t, New("").Nodes(3).Backend(BackendBGP))
	waitBGP(t, l, 3*2)
	allPodsReach(t, l)
	out := run(t, l, "node1", "ip", "route")
	if !strings.Contains(out, "10.233.64.64/26 via 198.18.0.2 dev eth0 proto bird") {
		t.Errorf("node1 has no BGP route to node2's block:\n%s", out)
	}
	if strings.Contains(out, "vxlan") {
		t.Errorf("BGP lab routes through an encapsulation:\n%s", out)
	}

	// BIRD stopped on node2: its peers lose the session and the route.
	addFault(t, l, "bird-down=node2")
	waitFor(t, 20*time.Second, "node1 to drop the route to node2's block", func() bool {
		return !strings.Contains(run(t, l, "node1", "ip", "route"), "10.233.64.64/26")
	})
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node2", 0).Address, 84, false, false)
	clearFaults(t, l)
	waitBGP(t, l, 3*2)
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node2", 0).Address, 84, false, true)

	// TCP 179 dropped at node2: sessions time out (hold time 9 s) and come back.
	addFault(t, l, "block-bgp=node2")
	waitFor(t, 30*time.Second, "the sessions with node2 to go down", func() bool {
		return established(t, l, "node1") == 1 && established(t, l, "node3") == 1
	})
	wantPing(t, l, pod(l, "node3", 0).Name, pod(l, "node2", 0).Address, 84, false, false)
	clearFaults(t, l)
	waitBGP(t, l, 3*2)

	// A route BIRD programmed, deleted by hand, stays deleted until cleared.
	addFault(t, l, "route-missing=node1:10.233.64.128/26")
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node3", 0).Address, 84, false, false)
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node2", 0).Address, 84, false, true)
	clearFaults(t, l)
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node3", 0).Address, 84, false, true)
}

func established(t *testing.T, l *Lab, node string) int {
	t.Helper()
	sessions, err := l.BGPSessions(ctxT(t, 5*time.Second), node)
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range sessions {
		if s.Established() {
			n++
		}
	}
	return n
}

// waitBGP waits until the BIRD control sockets report want Established sessions in all.
func waitBGP(t *testing.T, l *Lab, want int) {
	t.Helper()
	waitFor(t, 30*time.Second, "every BGP session to be Established", func() bool {
		total := 0
		for _, n := range l.Spec.Nodes {
			total += established(t, l, n.Name)
		}
		return total == want
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestBackendNoneReachesOnlyWithinANode(t *testing.T) {
	l := testLab(t, New("").Nodes(2).PodsPerNode(2).Backend(BackendNone))
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node1", 1).Address, 84, false, true)
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node2", 0).Address, 84, false, false)
	wantPing(t, l, "node1", nodeAddr(l, "node2"), 84, false, true)
}

// The case podpath exists for: VXLAN with Pod MTU 1450 over an underlay
// that carries only 1400 bytes towards node3.
func TestSeedCaseUnderlayMTU(t *testing.T) {
	l := testLab(t, New("").Nodes(3).PodsPerNode(2).Backend(BackendVXLAN))
	p1, p1b, p2, p3 := pod(l, "node1", 0), pod(l, "node1", 1), pod(l, "node2", 0), pod(l, "node3", 0)
	url := serveBytes(t, l, p3, 300_000)
	if n, err := download(p1, url); err != nil || n != 300_000 {
		t.Fatalf("healthy lab: 300 KB download node3 → node1 got %d bytes, %v", n, err)
	}

	addFault(t, l, "underlay-mtu=node3:1400")
	wantPing(t, l, p1.Name, p1b.Address, 1450, true, true) // same node: fine
	wantPing(t, l, p1.Name, p3.Address, 84, false, true)   // cross-node small: fine
	wantPing(t, l, p1.Name, p3.Address, 1350, true, true)  // fits 1400 with VXLAN's 50
	wantPing(t, l, p1.Name, p3.Address, 1351, true, false) // exact to the byte
	wantPing(t, l, p1.Name, p3.Address, 1450, true, false) // what the Pod MTU allows: lost
	wantPing(t, l, p3.Name, p1.Address, 1450, true, false) // and the other way
	wantPing(t, l, p1.Name, p2.Address, 1450, true, true)  // node1↔node2 untouched
	wantPing(t, l, "node1", nodeAddr(l, "node3"), 1400, true, true)
	wantPing(t, l, "node1", nodeAddr(l, "node3"), 1401, true, false)
	if n, err := download(p1, url); err == nil {
		t.Errorf("300 KB download node3 → node1 completed (%d bytes) across a 1400-byte underlay; want a stall", n)
	}

	clearFaults(t, l)
	wantPing(t, l, p1.Name, p3.Address, 1450, true, true)
	if n, err := download(p1, url); err != nil || n != 300_000 {
		t.Errorf("after clear: 300 KB download got %d bytes, %v; want all of it", n, err)
	}
}

func TestFaults(t *testing.T) {
	l := testLab(t, New("").Nodes(3).Backend(BackendVXLAN))
	p1, p2, p3 := pod(l, "node1", 0), pod(l, "node2", 0), pod(l, "node3", 0)
	n2 := nodeAddr(l, "node2")
	tests := []struct {
		fault string
		// broken and healthy check the fault's effect; healthy must hold
		// before the fault and again after it is cleared.
		broken, healthy func(t *testing.T)
	}{
		{
			fault: "block-vxlan=node2",
			broken: func(t *testing.T) {
				wantPing(t, l, p1.Name, p2.Address, 84, false, false)
				wantPing(t, l, p1.Name, p3.Address, 84, false, true)
				wantPing(t, l, "node1", n2, 84, false, true) // the node itself answers
			},
			healthy: func(t *testing.T) { wantPing(t, l, p1.Name, p2.Address, 84, false, true) },
		},
		{
			fault: "block-icmp=node2",
			broken: func(t *testing.T) {
				wantPing(t, l, "node1", n2, 84, false, false)
				wantPing(t, l, p1.Name, p2.Address, 84, false, false)
				url := serveBytes(t, l, p2, 100_000)
				if n, err := download(p1, url); err != nil || n != 100_000 {
					t.Errorf("TCP through node2 with ICMP blocked: %d bytes, %v; want all (only ICMP is blocked)", n, err)
				}
			},
			healthy: func(t *testing.T) { wantPing(t, l, "node1", n2, 84, false, true) },
		},
		{
			fault: "route-missing=node1:10.233.64.64/26",
			broken: func(t *testing.T) {
				wantPing(t, l, p1.Name, p2.Address, 84, false, false)
				wantPing(t, l, p1.Name, p3.Address, 84, false, true)
			},
			healthy: func(t *testing.T) { wantPing(t, l, p1.Name, p2.Address, 84, false, true) },
		},
		{
			fault: "ip-forward-off=node2",
			broken: func(t *testing.T) {
				wantPing(t, l, p1.Name, p2.Address, 84, false, false)
				wantPing(t, l, "node1", n2, 84, false, true)
			},
			healthy: func(t *testing.T) { wantPing(t, l, p1.Name, p2.Address, 84, false, true) },
		},
		{
			// A Pod talking to another node's host address un-NATed: the reply
			// path is the tunnel, so strict RPF at node2 drops the request.
			fault:   "rp-filter-strict=node2",
			broken:  func(t *testing.T) { wantPing(t, l, p1.Name, n2, 84, false, false) },
			healthy: func(t *testing.T) { wantPing(t, l, p1.Name, n2, 84, false, true) },
		},
		{
			fault: "pod-mtu=1500",
			broken: func(t *testing.T) {
				// The Pod now sends 1500-byte packets the 1450-byte tunnel cannot take:
				// its node answers "fragmentation needed".
				r := ping(t, l, p1.Name, p2.Address, 1500, true)
				if r.Received != 0 || !strings.Contains(r.Output, "mtu = 1450") {
					t.Errorf("1500-byte DF ping with Pod MTU 1500 over a 1450 tunnel: %d answered; want frag-needed (mtu = 1450):\n%s", r.Received, r.Output)
				}
			},
			healthy: func(t *testing.T) {
				r := ping(t, l, p1.Name, p2.Address, 1500, true)
				if !strings.Contains(r.Output, "message too long") {
					t.Errorf("1500-byte DF ping from a 1450-MTU Pod should fail locally:\n%s", r.Output)
				}
				wantPing(t, l, p1.Name, p2.Address, 1450, true, true)
			},
		},
		{
			fault: "delay=node2:40",
			broken: func(t *testing.T) {
				r := ping(t, l, "node1", n2, 84, false)
				if r.Received == 0 || r.AvgRTT < 40*time.Millisecond {
					t.Errorf("RTT node1 → node2 with 40 ms delay = %s (%d answered); want ≥ 40ms", r.AvgRTT, r.Received)
				}
				// TCP crosses the wire intact (checksum offload state and all).
				url := serveBytes(t, l, p2, 300_000)
				if n, err := download(p1, url); err != nil || n != 300_000 {
					t.Errorf("300 KB through the delayed link: %d bytes, %v", n, err)
				}
			},
			healthy: func(t *testing.T) {
				r := ping(t, l, "node1", n2, 84, false)
				if r.Received == 0 || r.AvgRTT > 10*time.Millisecond {
					t.Errorf("RTT node1 → node2 = %s (%d answered); want a few µs", r.AvgRTT, r.Received)
				}
			},
		},
		{
			fault: "loss=node2:30",
			broken: func(t *testing.T) {
				// Replies leave node2 and 30% of them are dropped: far from 0 or 200 of 200.
				cmd, _ := l.Command(ctxT(t, 30*time.Second), "node1", "ping", "-n", "-q", "-c", "200", "-i", "0.005", "-W", "1", n2.String())
				out, _ := cmd.CombinedOutput()
				m := pingSummary.FindStringSubmatch(string(out))
				if m == nil {
					t.Fatalf("ping: %s", out)
				}
				// Expect 140 of 200; the bounds are 9 standard deviations out.
				if got, _ := strconv.Atoi(m[2]); got < 80 || got > 190 {
					t.Errorf("200 pings with 30%% of replies dropped: %d answered; want about 140\n%s", got, out)
				}
			},
			healthy: func(t *testing.T) {
				cmd, _ := l.Command(ctxT(t, 30*time.Second), "node1", "ping", "-n", "-q", "-c", "50", "-i", "0.005", "-W", "1", n2.String())
				out, _ := cmd.CombinedOutput()
				if !strings.Contains(string(out), "50 received") {
					t.Errorf("50 pings on a healthy link: %s", out)
				}
			},
		},
		{
			fault: "rate=node2:100",
			broken: func(t *testing.T) {
				if mbit := downloadMbit(t, l, p2, p1); mbit < 60 || mbit > 110 {
					t.Errorf("download from node2 shaped to 100 Mbit/s ran at %.0f Mbit/s; want 60-110", mbit)
				}
			},
			healthy: func(t *testing.T) {
				if mbit := downloadMbit(t, l, p2, p1); mbit < 300 {
					t.Errorf("download from node2 unshaped ran at %.0f Mbit/s; want far above 100", mbit)
				}
			},
		},
		{
			fault: "node-mtu=node3:9000",
			broken: func(t *testing.T) {
				// node3 now sends 3000-byte frames unfragmented; the 1500 fabric drops them.
				wantPing(t, l, "node3", nodeAddr(l, "node1"), 3000, false, false)
				wantPing(t, l, "node3", nodeAddr(l, "node1"), 1500, true, true)
			},
			healthy: func(t *testing.T) { wantPing(t, l, "node3", nodeAddr(l, "node1"), 3000, false, true) },
		},
	}
	for _, tt := range tests {
		t.Run(strings.NewReplacer("=", "_", ":", "_", "/", "_").Replace(tt.fault), func(t *testing.T) {
			tt.healthy(t)
			addFault(t, l, tt.fault)
			if len(l.Faults) != 1 || l.Faults[0].String() != tt.fault {
				t.Fatalf("lab faults = %v; want [%s]", l.Faults, tt.fault)
			}
			tt.broken(t)
			clearFaults(t, l)
			tt.healthy(t)
		})
	}
}

// downloadMbit times a 4 MB HTTP download from server to client, in Mbit/s.
func downloadMbit(t *testing.T, l *Lab, server, client Pod) float64 {
	t.Helper()
	const size = 4 << 20
	url := serveBytes(t, l, server, size)
	start := time.Now()
	n, err := download(client, url)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	return 8 * size / time.Since(start).Seconds() / 1e6
}

func TestFiftyNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds 101 namespaces")
	}
	start := time.Now()
	l := testLab(t, New("").Nodes(50).Backend(BackendVXLAN))
	t.Logf("lab up, 50 nodes × 1 Pod: %s", time.Since(start).Round(time.Millisecond))
	wantPing(t, l, pod(l, "node1", 0).Name, pod(l, "node50", 0).Address, 1450, true, true)
	wantPing(t, l, pod(l, "node50", 0).Name, pod(l, "node25", 0).Address, 84, false, true)
}

func TestUpIsIdempotentAndNamesAreExclusive(t *testing.T) {
	l := testLab(t, New("").Nodes(2))
	again, err := Up(context.Background(), l.Spec.Config)
	if err != nil {
		t.Fatalf("second up with the same configuration: %v; want the running lab", err)
	}
	if again.CreatedAt != l.CreatedAt {
		t.Errorf("second up rebuilt the lab")
	}
	cfg := l.Spec.Config
	cfg.Nodes = 3
	if _, err := Up(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("up of a different lab under a taken name: %v; want an 'already exists' error", err)
	}
	if got := len(netnsWithPrefix(t, l.Spec.Name)); got != 1+2+2 {
		t.Errorf("lab has %d namespaces after the refused up; want 5 (untouched)", got)
	}
	if err := Down(context.Background(), l.Spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := Down(context.Background(), l.Spec.Name); err != nil {
		t.Errorf("second down: %v; want nothing to do", err)
	}
}

func TestFailedUpRemovesWhatItBuilt(t *testing.T) {
	requireRoot(t)
	// A namespace left by a crashed lab makes up refuse before building anything.
	name := "tfail"
	before := netnsList(t, name)
	if err := createNetns(name + ".node2"); err != nil {
		t.Fatal(err)
	}
	defer deleteNetns(name + ".node2")
	_, err := New(name).Nodes(3).Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "without its state") {
		t.Fatalf("up over a leftover namespace: %v; want a refusal", err)
	}
	if err := deleteNetns(name + ".node2"); err != nil {
		t.Fatal(err)
	}
	// Without BIRD on the PATH, a BGP lab fails at its last step, after every
	// namespace was built.
	bin := t.TempDir()
	ip, _ := exec.LookPath("ip")
	if err := os.Symlink(ip, filepath.Join(bin, "ip")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	_, err = New(name).Nodes(3).Backend(BackendBGP).Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bird") {
		t.Fatalf("BGP lab up without BIRD installed: %v; want an error naming bird", err)
	}
	if after := netnsList(t, name); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("namespaces after a failed up = %v; want %v", after, before)
	}
	if _, err := os.Stat(Dir(name)); !os.IsNotExist(err) {
		t.Errorf("state directory %s left after a failed up", Dir(name))
	}
}

func netnsWithPrefix(t *testing.T, name string) []string {
	t.Helper()
	out, err := listNetns(NamespacePrefix(name))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, l *Lab, who string, argv ...string) string {
	t.Helper()
	cmd, err := l.Command(ctxT(t, 30*time.Second), who, argv...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.HasPrefix(argv[0], "tracepath") {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), who, err, out)
	}
	return string(out)
}
