package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"podpath/internal/model"
)

// felixNodes makes the healthy cluster's nodes look as Felix sees them:
// every interface up and running, the underlay routed by eth0, and Felix's
// MTU file holding what its detection gives on them (1500 − 50), no MTU
// set anywhere.
func felixNodes(ev *Evidence) {
	ev.Network.PodMTU = 0
	for _, f := range ev.Facts {
		for i := range f.Links {
			f.Links[i].State, f.Links[i].OperState = model.LinkUp, "up"
		}
		f.Routes = append(f.Routes, model.Route{Family: "ipv4", Dst: "198.18.0.0/16", Type: "unicast", Dev: "eth0", Scope: "link"})
		f.Calico.MTUFile = model.MTUFile{Path: "/var/lib/calico/mtu", Value: 1450}
	}
}

func addLink(f *model.Facts, l model.Link) {
	l.State, l.OperState = model.LinkUp, "up"
	f.Links = append(f.Links, l)
}

// renameUplink makes node's underlay interface name and its route a bond's.
func renameUplink(f *model.Facts, name string, mtu int) {
	for i := range f.Links {
		if f.Links[i].Name == "eth0" {
			f.Links[i].Name, f.Links[i].MTU = name, mtu
		}
	}
	for i := range f.Routes {
		if f.Routes[i].Dev == "eth0" {
			f.Routes[i].Dev = name
		}
	}
}

func TestMTUAutodetect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(*Evidence)
		severity string // "": no finding
		evidence string
	}{
		{name: "healthy: eth0 is the uplink and what Felix took", change: func(*Evidence) {}},
		{name: "healthy: jumbo uplink, Felix took it", change: func(ev *Evidence) {
			for _, f := range ev.Facts {
				renameUplink(f, "ens5", 9001)
				f.Calico.MTUFile.Value = 8951
			}
		}},
		{name: "healthy: a bond uplink with an explicit MTU", change: func(ev *Evidence) {
			f := ev.Facts["node2"]
			renameUplink(f, "bond0", 1500) // Felix would fall back to 1460 …
			// … but calico_mtu set the MTU: the file is the configured 1450.
		}},
		{name: "healthy: no Felix on the hosts (no MTU file)", change: func(ev *Evidence) {
			for _, f := range ev.Facts {
				f.Calico.MTUFile = model.MTUFile{Path: "/var/lib/calico/mtu", Error: "no such file or directory"}
			}
			addLink(ev.Facts["node2"], model.Link{Name: "eth1", MTU: 1400})
		}},
		{name: "healthy: a smaller matching interface that is down", change: func(ev *Evidence) {
			f := ev.Facts["node2"]
			f.Links = append(f.Links, model.Link{Name: "eth1", MTU: 1400, State: model.LinkUp, OperState: "down"})
		}},
		{name: "a bond uplink: Felix falls back to 1460 and wastes the path", change: func(ev *Evidence) {
			f := ev.Facts["node2"]
			renameUplink(f, "bond0", 9000)
			f.Calico.MTUFile.Value = 1410
			for i := range f.Links {
				if strings.HasPrefix(f.Links[i].Name, "cali") {
					f.Links[i].MTU = 1410
				}
			}
		}, severity: Warning, evidence: "node node2: Felix matched no interface and fell back to 1460 and wrote Pod MTU 1410; the routes to the other nodes leave by bond0, MTU 9000, which mtuIfacePattern does not match; Pods there fit 8950"},
		{name: "a second, smaller NIC makes Felix pick less", change: func(ev *Evidence) {
			f := ev.Facts["node3"]
			addLink(f, model.Link{Name: "eth1", MTU: 1400, Addresses: []string{"192.168.5.3/24"}})
			f.Calico.MTUFile.Value = 1350
		}, severity: Warning, evidence: "node node3: Felix took eth1's MTU 1400 and wrote Pod MTU 1350; the routes to the other nodes leave by eth0, MTU 1500"},
		{name: "traffic leaves by a tunnel Felix does not look at: Pods too large", change: func(ev *Evidence) {
			f := ev.Facts["node2"]
			addLink(f, model.Link{Name: "wg0", Type: "wireguard", MTU: 1420, Addresses: []string{"10.99.0.2/24"}})
			for j := 1; j <= 3; j++ {
				if j != 2 {
					f.Routes = append(f.Routes, model.Route{Family: "ipv4", Dst: ip(j) + "/32", Type: "unicast", Dev: "wg0"})
				}
			}
		}, severity: Error, evidence: "node node2: Felix took eth0's MTU 1500 and wrote Pod MTU 1450; the routes to the other nodes leave by wg0, MTU 1420, which mtuIfacePattern does not match; Pods there fit 1370"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := healthy(3)
			felixNodes(&ev)
			tc.change(&ev)
			fs := Diagnose(ev)
			i := slices.IndexFunc(fs, func(f model.Finding) bool { return f.ID == MTUAutodetect })
			if tc.severity == "" {
				if i >= 0 {
					t.Fatalf("finding on a healthy variant: %+v", fs[i])
				}
				return
			}
			if i < 0 {
				t.Fatalf("no %s; findings %v", MTUAutodetect, ids(fs))
			}
			f := fs[i]
			if f.Severity != tc.severity || len(f.Evidence) != 1 || !strings.HasPrefix(f.Evidence[0], tc.evidence) {
				t.Errorf("%s %v: %q; want %s and evidence %q", f.Severity, f.Nodes, f.Evidence, tc.severity, tc.evidence)
			}
			if f.Remedy == nil || f.Remedy.MTU <= 0 || !strings.Contains(f.Remedy.Commands[0], "mtuIfacePattern") {
				t.Errorf("remedy %+v; want mtuIfacePattern first and an MTU", f.Remedy)
			}
		})
	}
}

// The patch's pattern names the uplinks, quoted for the regexp and the JSON.
func TestUplinkPattern(t *testing.T) {
	got := uplinkPattern([]felixChoice{{uplink: "bond0.100"}, {uplink: "bond0"}, {uplink: "bond0"}})
	if got != `^(bond0|bond0\.100)$` {
		t.Errorf("pattern %s", got)
	}
}

// The route lookup takes each family's default route for that family only.
func TestRouteToDefaultPerFamily(t *testing.T) {
	f := &model.Facts{Routes: []model.Route{
		{Family: "ipv4", Dst: "default", Type: "unicast", Dev: "eth0"},
		{Family: "ipv6", Dst: "default", Type: "unicast", Dev: "eth1"},
		{Family: "ipv6", Dst: "fd00:1::/64", Type: "unicast", Dev: "eth2"},
	}}
	for addr, want := range map[string]string{"198.18.0.9": "eth0", "2001:db8::9": "eth1", "fd00:1::9": "eth2"} {
		if got := routeDev(f, addr); got != want {
			t.Errorf("route to %s: %q; want %s", addr, got, want)
		}
	}
}

// VXLAN over an IPv6 underlay costs 70 bytes, not 50: the MTU a jumbo path
// allows is 9000 − 70 when every node's address is IPv6, 9000 − 50 when
// one is IPv4.
func TestOverheadFollowsTheUnderlayFamily(t *testing.T) {
	for _, tc := range []struct {
		v6   int // nodes with an IPv6 address, of 3
		want int
	}{{3, 8930}, {2, 8950}, {0, 8950}} {
		ev := healthy(3)
		for i, n := range ev.Nodes[:tc.v6] {
			ev.Addresses[n] = fmt.Sprintf("fd00:198:18::%d", i+1)
		}
		each(&ev, func(p model.Pair) bool { return p.Layer == model.LayerNode }, func(p *model.Pair) { p.PathMTU, p.IfaceMTU = 9000, 9000 })
		fs := Diagnose(ev)
		i := slices.IndexFunc(fs, func(f model.Finding) bool { return f.ID == MTUWasteful })
		if i < 0 || fs[i].Remedy == nil || fs[i].Remedy.MTU != tc.want {
			t.Errorf("%d of 3 nodes on IPv6: findings %v; want %s with remedy.mtu %d", tc.v6, ids(fs), MTUWasteful, tc.want)
		}
	}
}

// Pods on one node at another MTU than the rest: that node is named; a
// tie names nobody.
func TestOddNodesOut(t *testing.T) {
	for _, tc := range []struct {
		by   map[int][]string
		want []string
	}{
		{map[int][]string{1450: {"node1", "node3"}, 1350: {"node2"}}, []string{"node2"}},
		{map[int][]string{1450: {"node1", "node2", "node3"}, 1350: {"node2"}}, []string{"node2"}},
		{map[int][]string{1450: {"node1"}, 1350: {"node2"}}, nil},
		{map[int][]string{1450: {"node1", "node2"}, 1350: {"node3", "node4"}, 1300: {"node5"}}, nil},
	} {
		if got := oddNodesOut(tc.by); !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v; want %v", tc.by, got, tc.want)
		}
	}
}
