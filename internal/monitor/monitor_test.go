package monitor

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"podpath/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePath answers as a network would: some peers behind a silent MTU
// limit, some gone.
type fakePath struct {
	mu     sync.Mutex
	limit  map[string]int  // path MTU below 1450
	dead   map[string]bool // nothing answers
	visits map[string]int
	inMTU  bool
}

func (f *fakePath) Probe(ctx context.Context, p Peer, last *MTUResult, search bool) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.visits[p.Name]++
	r := Result{At: time.Now(), Sent: true}
	if f.dead[p.Name] {
		return r
	}
	r.Answered, r.RTT = true, 300*time.Microsecond
	r.MTU = &MTUResult{IfaceMTU: 1450, PathMTU: 1450, Limit: "none"}
	if l := f.limit[p.Name]; l > 0 {
		r.MTU = &MTUResult{IfaceMTU: 1450, PathMTU: l, Limit: "silent", Searched: true}
	}
	return r
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// The monitor visits every peer within the period, its metrics show a
// silent MTU limit and an unreachable peer by name and count, a peer that
// leaves takes its series with it, and nothing is left running or
// registered after Run returns (goleak in TestMain).
func TestMonitorRun(t *testing.T) {
	path := &fakePath{limit: map[string]int{"n3": 1350}, dead: map[string]bool{"n5": true}, visits: map[string]int{}}
	peers := make(chan []Peer, 1)
	reg := prometheus.NewRegistry()
	m, stop := runMonitor(t, Config{Node: "n1", Layer: model.LayerPod, Period: 300 * time.Millisecond, Rate: 100,
		Prober: path, Peers: peers, Registerer: reg})
	all := []Peer{{"n1", "10.0.0.1:7946"}, {"n2", "10.0.0.2:7946"}, {"n3", "10.0.0.3:7946"}, {"n4", "10.0.0.4:7946"}, {"n5", "10.0.0.5:7946"}}
	peers <- all
	// Three periods and a bit: n5 has been lost three times in a row.
	waitFor(t, 3*time.Second, func() bool {
		v, _ := gauge(t, reg, "podpath_monitor_findings", map[string]string{"id": "pod-network-partition"})
		return v == 1
	})
	path.mu.Lock()
	if path.visits["n1"] != 0 {
		t.Error("the agent probed itself")
	}
	for _, p := range all[1:] {
		if path.visits[p.Name] < 2 {
			t.Errorf("%s visited %d times in 3 periods", p.Name, path.visits[p.Name])
		}
	}
	path.mu.Unlock()
	for name, want := range map[string]float64{"podpath_monitor_peers": 4, "podpath_monitor_peers_reachable_ratio": 0.75, "podpath_monitor_path_mtu_min_bytes": 1350} {
		if v, ok := gauge(t, reg, name, map[string]string{"node": "n1", "layer": "pod"}); !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", name, v, ok, want)
		}
	}
	if v, _ := gauge(t, reg, "podpath_monitor_findings", map[string]string{"id": "mtu-blackhole"}); v != 1 {
		t.Errorf("mtu-blackhole count %v; want 1 (n3)", v)
	}
	if v, ok := gauge(t, reg, "podpath_monitor_worst_peer_path_mtu_bytes", map[string]string{"peer": "n3"}); !ok || v != 1350 {
		t.Errorf("worst path MTU for n3: %v %v; want 1350", v, ok)
	}
	if v, ok := gauge(t, reg, "podpath_monitor_worst_peer_loss_ratio", map[string]string{"peer": "n5"}); !ok || v != 1 {
		t.Errorf("worst loss for n5: %v %v; want 1", v, ok)
	}
	// /debug/pairs has the whole view.
	rec := httptest.NewRecorder()
	m.PairsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pairs", nil))
	var view struct {
		Node  string `json:"node"`
		Pairs []Pair `json:"pairs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil || view.Node != "n1" || len(view.Pairs) != 4 {
		t.Fatalf("/debug/pairs: %v %s", err, rec.Body)
	}
	if p := view.Pairs[1]; p.Peer != "n3" || p.MTU == nil || p.MTU.PathMTU != 1350 || !strings.Contains(strings.Join(p.Findings, ","), "mtu-blackhole") {
		t.Errorf("/debug/pairs n3: %+v", p)
	}

	// n3 and n5 leave (their nodes were removed): no series names them.
	peers <- all[:2]
	waitFor(t, time.Second, func() bool {
		v, _ := gauge(t, reg, "podpath_monitor_peers", nil)
		return v == 1
	})
	for _, name := range []string{"podpath_monitor_worst_peer_path_mtu_bytes", "podpath_monitor_worst_peer_loss_ratio"} {
		if n := testutil.CollectAndCount(reg, name); n != 0 {
			t.Errorf("%s: %d series after the peers left", name, n)
		}
	}
	if v, _ := gauge(t, reg, "podpath_monitor_findings", map[string]string{"id": "mtu-blackhole"}); v != 0 {
		t.Errorf("mtu-blackhole count %v after n3 left", v)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fams, _ := reg.Gather(); len(fams) != 0 {
		t.Errorf("%d metric families left registered after Run", len(fams))
	}
}

// runMonitor starts a monitor of cfg; stop ends it and returns Run's
// error, failing the test if Run does not return in time.
func runMonitor(t *testing.T, cfg Config) (m *Monitor, stop func() error) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return m, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(visitTimeout + 5*time.Second):
			t.Fatal("Run did not return after its context ended")
			return nil
		}
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Peers are the DaemonSet's Pods on Ready, schedulable nodes that have
// been Ready for the warm-up.
func TestPeersSelection(t *testing.T) {
	now := time.Unix(10_000, 0)
	node := func(name string, ready, cordoned bool) *corev1.Node {
		st := corev1.ConditionTrue
		if !ready {
			st = corev1.ConditionFalse
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		n.Spec.Unschedulable = cordoned
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}
		return n
	}
	pod := func(node, ip string, readyFor time.Duration, ready bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + node}}
		p.Spec.NodeName, p.Status.PodIP = node, ip
		st := corev1.ConditionTrue
		if !ready {
			st = corev1.ConditionFalse
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
		return p
	}
	gone := pod("n6", "10.0.0.6", time.Hour, true)
	gone.DeletionTimestamp = &metav1.Time{Time: now}
	nodes := []*corev1.Node{node("n1", true, false), node("n2", true, false), node("n3", false, false), node("n4", true, true),
		node("n5", true, false), node("n6", true, false), node("n7", true, false)}
	pods := []*corev1.Pod{pod("n1", "10.0.0.1", time.Hour, true), pod("n2", "10.0.0.2", 10*time.Second, true),
		pod("n3", "10.0.0.3", time.Hour, true), pod("n4", "10.0.0.4", time.Hour, true), pod("n5", "10.0.0.5", time.Hour, false),
		gone, pod("n7", "", time.Hour, true), pod("n8", "10.0.0.8", time.Hour, true)}
	var slimPods []*PeerPod // what the informers' caches hold
	var slimNodes []*PeerNode
	for _, p := range pods {
		s, _ := Slim(p)
		slimPods = append(slimPods, s.(*PeerPod))
	}
	for _, n := range nodes {
		s, _ := Slim(n)
		slimNodes = append(slimNodes, s.(*PeerNode))
	}
	got, wake := Peers(slimPods, slimNodes, 7946, 30*time.Second, now)
	if len(got) != 1 || got[0] != (Peer{"n1", "10.0.0.1:7946"}) {
		t.Errorf("peers %v; want only n1 (n2 warming up, n3 NotReady, n4 cordoned, n5 Pod not Ready, n6 deleting, n7 no IP, n8 no Node)", got)
	}
	if want := now.Add(20 * time.Second); !wake.Equal(want) {
		t.Errorf("wake at %s; want %s (n2's warm-up)", wake, want)
	}
}

// The 5,000-node case of issue 8, in virtual time: every ordered pair
// from this agent within the period, never more than the rate, series
// independent of the peer count. (bench/ runs it with CPU and memory.)
func TestSimulate5000(t *testing.T) {
	res, err := Simulate(SimOptions{Nodes: 5000, Period: 5 * time.Minute, Rate: 20, Periods: 2, Bad: 0.01, Lossy: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if res.Covered != 4999 || res.FirstCoverage > 5*time.Minute || res.MaxGap > 5*time.Minute {
		t.Errorf("coverage: %d peers, last first visit at %s, longest gap %s; want 4999 within 5m", res.Covered, res.FirstCoverage, res.MaxGap)
	}
	if res.MaxPerSecond > 20 {
		t.Errorf("%d visits in one second; limit 20", res.MaxPerSecond)
	}
	host, err := Simulate(SimOptions{Nodes: 5000, Period: 5 * time.Minute, Rate: 20, Periods: 1, Bad: 0.01, Lossy: 0.01, Layer: model.LayerNode})
	if err != nil {
		t.Fatal(err)
	}
	if res.Series+host.Series >= 50 {
		t.Errorf("%d series for the Pod agent and %d for the host agent: %d per node; want < 50", res.Series, host.Series, res.Series+host.Series)
	}
	if res.BlackholeCount < 30 || res.WorstMTUPeers != TopK || res.WorstLossPeers != TopK {
		t.Errorf("mtu-blackhole %d (want ~50), worst peers named: by path MTU %d, by loss %d (want %d)", res.BlackholeCount, res.WorstMTUPeers, res.WorstLossPeers, TopK)
	}
	t.Logf("%+v", res)
}

// A pair's findings follow its last visits: three lost in a row is a
// partition, three lost among the last ten is loss (one is not), a slow
// median is latency, a silent MTU limit is a black hole and an ICMP-told
// one is not.
func TestPairFindings(t *testing.T) {
	at := time.Unix(0, 0)
	ok := Result{At: at, Sent: true, Answered: true, RTT: time.Millisecond}
	lost := Result{At: at, Sent: true}
	slow := Result{At: at, Sent: true, Answered: true, RTT: 300 * time.Millisecond}
	silent := Result{At: at, Sent: true, Answered: true, RTT: time.Millisecond, MTU: &MTUResult{IfaceMTU: 1450, PathMTU: 1350, Limit: "silent"}}
	told := Result{At: at, Sent: true, Answered: true, RTT: time.Millisecond, MTU: &MTUResult{IfaceMTU: 1450, PathMTU: 1350, Limit: "icmp"}}
	for _, c := range []struct {
		name   string
		visits []Result
		want   string
	}{
		{"one lost echo", []Result{lost}, ""},
		{"three in a row", []Result{ok, lost, lost, lost}, "pod-network-partition"},
		{"three of ten", []Result{lost, ok, lost, ok, ok, lost, ok}, "packet-loss"},
		{"three, oldest out of the window", []Result{lost, ok, lost, ok, ok, ok, ok, ok, ok, ok, ok, lost}, ""},
		{"slow", []Result{slow, slow, ok}, "high-latency"},
		{"silent MTU limit", []Result{silent}, "mtu-blackhole"},
		{"ICMP-told MTU limit", []Result{told}, ""},
		{"limit gone", []Result{silent, ok}, "mtu-blackhole"}, // a visit without an MTU check keeps the last
		{"limit cleared", []Result{silent, {At: at, Sent: true, Answered: true, MTU: &MTUResult{IfaceMTU: 1450, PathMTU: 1450, Limit: "none"}}}, ""},
	} {
		st := NewState(model.LayerPod)
		st.Retain([]Peer{{"b", "10.0.0.2:7946"}}, at)
		for _, r := range c.visits {
			st.Record("b", r)
		}
		if got := strings.Join(st.Pairs()[0].Findings, ","); got != c.want {
			t.Errorf("%s: findings %q; want %q", c.name, got, c.want)
		}
	}
}

// heldPath holds every visit until released, so a peer can vanish while
// it is being probed.
type heldPath struct {
	started chan string
	release chan struct{}
}

func (h *heldPath) Probe(ctx context.Context, p Peer, _ *MTUResult, _ bool) Result {
	select {
	case h.started <- p.Name:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return Result{At: time.Now(), Sent: true, Answered: true, RTT: time.Millisecond, MTU: &MTUResult{IfaceMTU: 1450, PathMTU: 1300, Limit: "silent"}}
}

// A peer that vanishes while it is being probed: the visit's late result
// is dropped, not recorded under a ghost, and a monitor stopped with
// visits in flight returns (no stuck goroutine: goleak in TestMain), then
// runs again on the same registry, as a restarted agent process would.
func TestPeerVanishesMidProbe(t *testing.T) {
	reg := prometheus.NewRegistry()
	for run := range 2 {
		h := &heldPath{started: make(chan string, 1), release: make(chan struct{})}
		peers := make(chan []Peer, 1)
		m, stop := runMonitor(t, Config{Node: "a", Layer: model.LayerNode, Period: 200 * time.Millisecond, Rate: 50, Prober: h, Peers: peers, Registerer: reg})
		peers <- []Peer{{"b", "10.0.0.2:7946"}}
		select {
		case <-h.started:
		case <-time.After(5 * time.Second):
			t.Fatal("b never visited")
		}
		peers <- nil // b's node is gone while its visit is in flight
		waitFor(t, time.Second, func() bool { v, _ := gauge(t, reg, "podpath_monitor_peers", nil); return v == 0 })
		close(h.release)
		time.Sleep(50 * time.Millisecond)
		if n := len(m.State().Pairs()); n != 0 {
			t.Errorf("run %d: %d pairs after b left", run, n)
		}
		if n := testutil.CollectAndCount(reg, "podpath_monitor_worst_peer_path_mtu_bytes"); n != 0 {
			t.Errorf("run %d: b's late result made %d worst-peer series", run, n)
		}
		peers <- []Peer{{"c", "10.0.0.3:7946"}}
		select {
		case <-h.started: // c's visit, held: Run must still stop
		case <-time.After(5 * time.Second):
			t.Fatal("c never visited")
		}
		if err := stop(); err != nil { // with c's visit held
			t.Fatal(err)
		}
	}
}

// shortcutPath answers as UDPProber does once a limit is known: the old
// limit still holds (not searched) unless asked to search; a socket that
// cannot be opened sends nothing.
type shortcutPath struct {
	mu       sync.Mutex
	searches int
	broken   bool
}

func (s *shortcutPath) Probe(_ context.Context, _ Peer, last *MTUResult, search bool) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return Result{At: time.Now(), Err: "open probe socket: too many open files"}
	}
	r := Result{At: time.Now(), Sent: true, Answered: true, RTT: time.Millisecond}
	if last == nil || search {
		s.searches++
		r.MTU = &MTUResult{IfaceMTU: 1450, PathMTU: 1350, Limit: "silent", Searched: true}
	} else {
		m := *last
		m.Searched = false
		r.MTU = &m
	}
	return r
}

// A known limit is searched again after mtuStale periods (a limit that
// rose must be seen), and a visit that could not send is not a loss.
func TestMonitorSearchesAgainAndIgnoresLocalErrors(t *testing.T) {
	path := &shortcutPath{}
	peers := make(chan []Peer, 1)
	reg := prometheus.NewRegistry()
	period := 100 * time.Millisecond
	m, stop := runMonitor(t, Config{Node: "a", Layer: model.LayerPod, Period: period, Rate: 100, Prober: path, Peers: peers, Registerer: reg})
	peers <- []Peer{{"b", "10.0.0.2:7946"}}
	waitFor(t, 20*period, func() bool { path.mu.Lock(); defer path.mu.Unlock(); return path.searches >= 2 })
	path.mu.Lock()
	path.broken = true
	path.mu.Unlock()
	time.Sleep(6 * period)
	p := m.State().Pairs()[0]
	if p.LostInRow != 0 || len(p.Findings) != 1 || !strings.Contains(p.LastError, "too many open files") {
		t.Errorf("after local errors: lost in a row %d, findings %v, last error %q; want no loss, mtu-blackhole only, the error shown", p.LostInRow, p.Findings, p.LastError)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
