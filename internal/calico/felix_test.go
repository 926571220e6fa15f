package calico

import (
	"slices"
	"testing"
)

// Felix's host MTU, case by case as findHostMTU decides it.
func TestFelixHostMTU(t *testing.T) {
	up := func(name string, mtu int) Iface { return Iface{Name: name, MTU: mtu, Running: true} }
	for _, tc := range []struct {
		name     string
		ifaces   []Iface
		pattern  string
		mtu      int
		from     []string
		fallback bool
	}{
		{"one uplink", []Iface{up("lo", 65536), up("eth0", 1500), up("cali1234", 1450), up("vxlan.calico", 1450)}, "", 1500, []string{"eth0"}, false},
		{"predictable names", []Iface{up("enp3s0", 9000), up("ens5", 9001)}, "", 9000, []string{"enp3s0"}, false},
		{"the smallest matching wins", []Iface{up("eth0", 9000), up("eth1", 1400)}, "", 1400, []string{"eth1"}, false},
		{"a down interface is skipped", []Iface{up("eth0", 9000), {Name: "eth1", MTU: 1400}}, "", 9000, []string{"eth0"}, false},
		{"bond uplink: its slaves decide", []Iface{up("bond0", 1500), up("eno1", 9000), up("eno2", 9000)}, "", 9000, []string{"eno1", "eno2"}, false},
		{"nothing matches: 1460", []Iface{up("lo", 65536), up("bond0", 9000), up("br0", 1500), up("team0", 1500)}, "", FallbackHostMTU, nil, true},
		{"wlan and wwan", []Iface{up("wlan0", 1500), up("wwan0", 1430)}, "", 1430, []string{"wwan0"}, false},
		{"a pattern for the bond", []Iface{up("bond0", 9000), up("eth9", 1500)}, "^bond", 9000, []string{"bond0"}, false},
		{"workload and tunnel devices never match the default", []Iface{up("cali0", 1300), up("tunl0", 1480), up("vxlan.calico", 1450), up("wireguard.cali", 1440), up("eth0", 1500)}, "", 1500, []string{"eth0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := FelixHostMTU(tc.ifaces, tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if h.MTU != tc.mtu || !slices.Equal(h.From, tc.from) || h.Fallback != tc.fallback {
				t.Errorf("host MTU %d from %v (fallback %v); want %d from %v (fallback %v)", h.MTU, h.From, h.Fallback, tc.mtu, tc.from, tc.fallback)
			}
		})
	}
	if _, err := FelixHostMTU(nil, "("); err == nil {
		t.Error("a pattern that does not compile was taken")
	}
}

// IFF_RUNNING as the kernel sets it from the admin state and operstate.
func TestRunning(t *testing.T) {
	for _, tc := range []struct {
		admin bool
		oper  string
		want  bool
	}{{true, "up", true}, {true, "unknown", true}, {true, "down", false}, {true, "lowerlayerdown", false}, {true, "dormant", false}, {false, "up", false}} {
		if got := Running(tc.admin, tc.oper); got != tc.want {
			t.Errorf("admin up %v, operstate %s: running %v; want %v", tc.admin, tc.oper, got, tc.want)
		}
	}
}
