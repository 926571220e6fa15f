package hostfacts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"podpath/internal/bird"
	"podpath/internal/lab"
	"podpath/internal/nsenter"
)

// labUpTimeout bounds building a lab; a 3-node one takes well under a second.
const labUpTimeout = 30 * time.Second

// testLab builds a 3-node lab with a unique name and removes it when the test ends.
func testLab(t *testing.T, backend lab.Backend) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces (CI runs as root)")
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "hf" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), labUpTimeout)
	defer cancel()
	l, err := lab.New(name).Nodes(3).Backend(backend).Up(ctx)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), l.Spec.Name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// collectIn collects the facts of a lab node from inside its namespace, on
// a thread locked into it, as an agent confined to a namespace would.
func collectIn(t *testing.T, l *lab.Lab, node string, opts Options) *Facts {
	t.Helper()
	n, err := l.Spec.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	var f *Facts
	err = nsenter.Do(n.Netns, func() error {
		var err error
		f, err = Collect(context.Background(), opts)
		return err
	})
	if err != nil {
		t.Fatalf("collect facts on %s: %v", node, err)
	}
	if _, err := json.Marshal(f); err != nil {
		t.Fatalf("facts of %s do not marshal: %v", node, err)
	}
	return f
}

// serveFelix answers readiness on the loopback of a node's namespace only,
// as calico-node's Felix does on a real node.
func serveFelix(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	n, _ := l.Spec.Node(node)
	var ln net.Listener
	err := nsenter.Do(n.Netns, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", node, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/readiness"
}

func addFault(t *testing.T, l *lab.Lab, spec string) {
	t.Helper()
	f, err := lab.ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), labUpTimeout)
	defer cancel()
	if err := l.AddFault(ctx, f); err != nil {
		t.Fatalf("fault add %s: %v", spec, err)
	}
}

func clearFaults(t *testing.T, l *lab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), labUpTimeout)
	defer cancel()
	if err := l.ClearFaults(ctx); err != nil {
		t.Fatalf("fault clear: %v", err)
	}
}

func linkOf(f *Facts, name string) *Link {
	for i := range f.Links {
		if f.Links[i].Name == name {
			return &f.Links[i]
		}
	}
	return nil
}

func routeOf(f *Facts, dst string) *Route {
	for i := range f.Routes {
		if f.Routes[i].Dst == dst {
			return &f.Routes[i]
		}
	}
	return nil
}

func val(p *int) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}

func TestVXLANNodeFacts(t *testing.T) {
	t.Parallel()
	l := testLab(t, lab.BackendVXLAN)
	mtuFile := filepath.Join(t.TempDir(), "mtu")
	if err := os.WriteFile(mtuFile, []byte("1450\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{CalicoMTUFile: mtuFile, BIRDSocket: lab.BIRDSocket(l.Spec.Name, "node1"),
		FelixHealthURL: serveFelix(t, l, "node1")}
	f := collectIn(t, l, "node1", opts)

	vx := linkOf(f, lab.VXLANDevice)
	switch {
	case vx == nil:
		t.Fatalf("links of node1 = %v; want %s", f.Links, lab.VXLANDevice)
	case vx.VXLAN == nil || vx.VXLAN.VNI != 4096 || vx.VXLAN.Port != 4789 || vx.VXLAN.Dev != "eth0" || vx.VXLAN.Local != "198.18.0.1":
		t.Errorf("%s vxlan = %+v; want VNI 4096, port 4789, dev eth0, local 198.18.0.1", lab.VXLANDevice, vx.VXLAN)
	case vx.MTU != 1450 || vx.Type != "vxlan" || vx.State != LinkUp:
		t.Errorf("%s = MTU %d, type %s, state %s; want 1450, vxlan, up", lab.VXLANDevice, vx.MTU, vx.Type, vx.State)
	case !slices.Contains(vx.Addresses, "10.233.64.0/32"):
		t.Errorf("%s addresses = %v; want the VTEP address 10.233.64.0/32", lab.VXLANDevice, vx.Addresses)
	}
	if eth0 := linkOf(f, "eth0"); eth0 == nil || !slices.Contains(eth0.Addresses, "198.18.0.1/16") {
		t.Errorf("eth0 = %+v; want the underlay address 198.18.0.1/16 (facts from the node's namespace, not the host's)", eth0)
	}

	if r := routeOf(f, "10.233.64.0/26"); r == nil || r.Type != "blackhole" {
		t.Errorf("route to node1's own block = %+v; want a blackhole", r)
	}
	if r := routeOf(f, "10.233.64.64/26"); r == nil || r.Gw != "10.233.64.64" || r.Dev != lab.VXLANDevice ||
		!r.Onlink || r.Proto != 80 || r.ProtoName != "felix" {
		t.Errorf("route to node2's block = %+v; want via 10.233.64.64 dev %s onlink, proto felix (80)", r, lab.VXLANDevice)
	}

	s := f.Sysctls
	if val(s.IPv4Forward) != "1" || val(s.RPFilterAll) != "0" || val(s.RPFilterDefault) != "0" {
		t.Errorf("ip_forward %s, rp_filter all %s default %s; want 1, 0, 0", val(s.IPv4Forward), val(s.RPFilterAll), val(s.RPFilterDefault))
	}
	if mode, ok := s.EffectiveRPFilter(lab.VXLANDevice); !ok || mode != 0 {
		t.Errorf("effective rp_filter on %s = %d, %v; want 0 (read through a path with a dot)", lab.VXLANDevice, mode, ok)
	}
	var cali *Link
	for i := range f.Links {
		if strings.HasPrefix(f.Links[i].Name, "cali") {
			cali = &f.Links[i]
		}
	}
	if cali == nil {
		t.Fatalf("no cali* link on node1: %v", f.Links)
	}
	if c := s.Conf[cali.Name]; val(c.ProxyARP) != "1" || cali.MAC != lab.CaliMAC || cali.Type != "veth" {
		t.Errorf("%s: proxy_arp %s, MAC %s, type %s; want 1, %s, veth", cali.Name, val(c.ProxyARP), cali.MAC, cali.Type, lab.CaliMAC)
	}

	if len(f.Firewall.Drops) != 0 || f.Firewall.Error != "" {
		t.Errorf("firewall of a healthy node = %+v; want no drops and no error", f.Firewall)
	}
	if len(f.KernelModules) != len(wantedModules) {
		t.Errorf("kernel modules = %d; want %d", len(f.KernelModules), len(wantedModules))
	}
	c := f.Calico
	if c.MTUFile.Value != 1450 || c.MTUFile.Error != "" {
		t.Errorf("MTU file = %+v; want 1450", c.MTUFile)
	}
	if !c.Felix.Ready || c.Felix.StatusCode != http.StatusOK {
		t.Errorf("felix = %+v; want ready, 200 from the server in node1's namespace", c.Felix)
	}
	// The lab runs no BIRD with vxlan: a fact, not a failure.
	if c.BIRD.Error == "" || len(c.BIRD.Protocols) != 0 {
		t.Errorf("bird = %+v; want an error (no BIRD in a vxlan lab)", c.BIRD)
	}

	// Faults show up as what an operator would look for.
	addFault(t, l, "block-vxlan=node1")
	addFault(t, l, "rp-filter-strict=node1")
	addFault(t, l, "ip-forward-off=node1")
	addFault(t, l, "block-icmp=node2")
	f1, f2, f3 := collectIn(t, l, "node1", opts), collectIn(t, l, "node2", opts), collectIn(t, l, "node3", opts)
	want := FirewallDrop{Family: "inet", Table: "podpath_block_vxlan", Chain: "input", Hook: "input",
		Rule: "udp dport 4789 drop", Needs: []string{NeedVXLAN}}
	if d := f1.Firewall.Drops; len(d) != 1 || !sameDrop(d[0], want) {
		t.Errorf("node1 drops = %+v; want exactly %+v", d, want)
	}
	if mode, _ := f1.Sysctls.EffectiveRPFilter(lab.VXLANDevice); mode != 1 || val(f1.Sysctls.IPv4Forward) != "0" {
		t.Errorf("node1 effective rp_filter %d, ip_forward %s; want 1 (all=1 wins), 0", mode, val(f1.Sysctls.IPv4Forward))
	}
	var hooks []string
	for _, d := range f2.Firewall.Drops {
		if d.Rule != "meta l4proto icmp drop" || !slices.Equal(d.Needs, []string{NeedICMPFragNeeded, NeedICMP}) {
			t.Errorf("node2 drop %+v; want meta l4proto icmp drop hitting icmp-frag-needed and icmp", d)
		}
		hooks = append(hooks, d.Hook)
	}
	if slices.Sort(hooks); !slices.Equal(hooks, []string{"forward", "input", "output"}) {
		t.Errorf("node2 ICMP drops in hooks %v; want forward, input, output", hooks)
	}
	if len(f3.Firewall.Drops) != 0 {
		t.Errorf("node3 drops = %+v; want none (faults are on node1 and node2)", f3.Firewall.Drops)
	}
	// The same URL from node3 reaches node3's loopback, where nothing listens.
	if fx := f3.Calico.Felix; fx.Ready || !strings.Contains(fx.Error, "refused") {
		t.Errorf("felix seen from node3 = %+v; want connection refused: the GET must leave from the caller's namespace", fx)
	}

	clearFaults(t, l)
	if f1 := collectIn(t, l, "node1", opts); len(f1.Firewall.Drops) != 0 || val(f1.Sysctls.IPv4Forward) != "1" {
		t.Errorf("node1 after clear: drops %+v, ip_forward %s; want none, 1", f1.Firewall.Drops, val(f1.Sysctls.IPv4Forward))
	}
}

func sameDrop(a, b FirewallDrop) bool {
	a.Handle, b.Handle = 0, 0
	return a.Family == b.Family && a.Table == b.Table && a.Chain == b.Chain && a.Hook == b.Hook &&
		a.Rule == b.Rule && a.Conditional == b.Conditional && slices.Equal(a.Needs, b.Needs)
}

// bgpSettleTimeout bounds the wait for a fresh full mesh: BIRD retries
// connects every 2 s in the lab.
const bgpSettleTimeout = 30 * time.Second

func TestBGPNodeFacts(t *testing.T) {
	t.Parallel()
	l := testLab(t, lab.BackendBGP)
	waitEstablished(t, l)
	opts := func(node string) Options {
		return Options{BIRDSocket: lab.BIRDSocket(l.Spec.Name, node), FelixHealthURL: "http://127.0.0.1:9099/readiness"}
	}

	f := collectIn(t, l, "node1", opts("node1"))
	if f.Calico.BIRD.Error != "" {
		t.Fatalf("bird on node1: %s", f.Calico.BIRD.Error)
	}
	peers := map[string]string{}
	for _, p := range f.Calico.BIRD.Protocols {
		if strings.HasPrefix(p.Name, "Mesh_") {
			peers[p.Name] = p.Info
		}
	}
	for _, want := range []string{"Mesh_198_18_0_2", "Mesh_198_18_0_3"} {
		if !strings.HasPrefix(peers[want], "Established") {
			t.Errorf("BIRD peer %s: %q; want Established (peers %v)", want, peers[want], peers)
		}
	}
	if len(peers) != 2 {
		t.Errorf("mesh peers of node1 = %v; want node2 and node3", peers)
	}
	// BIRD's clock, its start and the sessions' since: how long each has
	// been up.
	if up, ok := f.Calico.BIRD.Uptime(); !ok || up < 0 || up > time.Hour {
		t.Errorf("BIRD started %q by its clock %q: up %s, %v; want a known uptime under an hour", f.Calico.BIRD.Started, f.Calico.BIRD.ServerTime, up, ok)
	}
	for _, p := range f.Calico.BIRD.Protocols {
		if age, ok := f.Calico.BIRD.StateAge(p); strings.HasPrefix(p.Name, "Mesh_") && (!ok || age < 0 || age > time.Hour) {
			t.Errorf("session %s since %q by BIRD's clock %q: age %s, %v; want a known age under an hour", p.Name, p.Since, f.Calico.BIRD.ServerTime, age, ok)
		}
	}
	if r := routeOf(f, "10.233.64.64/26"); r == nil || r.Gw != "198.18.0.2" || r.Dev != "eth0" || r.ProtoName != "bird" || r.Proto != 12 {
		t.Errorf("route to node2's block = %+v; want via 198.18.0.2 dev eth0 proto bird (12)", r)
	}
	if linkOf(f, lab.VXLANDevice) != nil {
		t.Errorf("BGP node has %s; want none", lab.VXLANDevice)
	}

	// Both directions of the session are dropped; the facts say so at once,
	// whether or not the sessions have noticed yet.
	addFault(t, l, "block-bgp=node1")
	var rules []string
	for _, d := range collectIn(t, l, "node1", opts("node1")).Firewall.Drops {
		if !slices.Equal(d.Needs, []string{NeedBGP}) {
			t.Errorf("drop %+v; want need bgp only", d)
		}
		rules = append(rules, d.Rule)
	}
	if slices.Sort(rules); !slices.Equal(rules, []string{"tcp dport 179 drop", "tcp sport 179 drop"}) {
		t.Errorf("node1 drops %v; want tcp dport 179 drop and tcp sport 179 drop", rules)
	}
	clearFaults(t, l)

	addFault(t, l, "bird-down=node2")
	f2 := collectIn(t, l, "node2", opts("node2"))
	if b := f2.Calico.BIRD; b.Error == "" || !strings.Contains(b.Error, b.Socket) {
		t.Errorf("bird on node2 with BIRD stopped = %+v; want an error naming the socket", b)
	}
	if f2.Calico.Felix.Ready || f2.Calico.Felix.Error == "" {
		t.Errorf("felix = %+v; want not ready with the connection error (the lab runs no Felix)", f2.Calico.Felix)
	}
	if linkOf(f2, "eth0") == nil {
		t.Errorf("node2 facts without BIRD lack links: %+v", f2.Links)
	}
}

// waitEstablished polls every node's BIRD until all its mesh sessions are Established.
func waitEstablished(t *testing.T, l *lab.Lab) {
	t.Helper()
	want := len(l.Spec.Nodes) - 1
	deadline := time.Now().Add(bgpSettleTimeout)
	for {
		ready := 0
		for _, n := range l.Spec.Nodes {
			ctx, cancel := context.WithTimeout(context.Background(), bird.Timeout)
			protos, err := bird.ShowProtocols(ctx, lab.BIRDSocket(l.Spec.Name, n.Name))
			cancel()
			est := 0
			for _, p := range protos {
				if err == nil && p.Established() {
					est++
				}
			}
			if est == want {
				ready++
			}
		}
		if ready == len(l.Spec.Nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BGP mesh not Established after %s", bgpSettleTimeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Collect in the test's own namespace, root or not: without privileges the
// firewall is unreadable, which is a fact and not a failure.
func TestCollectHere(t *testing.T) {
	f, err := Collect(context.Background(), Options{BIRDSocket: filepath.Join(t.TempDir(), "bird.ctl")})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if lo := linkOf(f, "lo"); lo == nil || lo.State != LinkUp || !slices.Contains(lo.Addresses, "127.0.0.1/8") {
		t.Errorf("lo = %+v; want up with 127.0.0.1/8", lo)
	}
	if f.Kernel == "" || f.CollectedAt.IsZero() || len(f.KernelModules) != len(wantedModules) {
		t.Errorf("kernel %q, collectedAt %v, %d modules; want all set", f.Kernel, f.CollectedAt, len(f.KernelModules))
	}
	if os.Geteuid() != 0 && f.Firewall.Error == "" {
		t.Errorf("firewall read without privileges: no error; want the permission error as a fact")
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"hostname"`, `"kernel"`, `"collectedAt"`, `"links"`, `"routes"`, `"sysctls"`,
		`"kernelModules"`, `"firewall"`, `"drops"`, `"conntrack"`, `"calico"`, `"mtuFile"`, `"felix"`, `"bird"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("facts JSON lacks %s", key)
		}
	}
}
