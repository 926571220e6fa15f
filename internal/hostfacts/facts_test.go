package hostfacts

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ptr(n int) *int { return &n }

func TestEffectiveRPFilter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		all      *int
		link     *int
		wantMode int
		wantOK   bool
	}{
		{"both_off", ptr(0), ptr(0), 0, true},
		{"all_strict_wins_over_link_off", ptr(1), ptr(0), 1, true},
		{"link_loose_wins_over_all_off", ptr(0), ptr(2), 2, true},
		{"loose_beats_strict", ptr(1), ptr(2), 2, true},
		{"all_unknown", nil, ptr(1), 0, false},
		{"link_unknown", ptr(1), nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Sysctls{RPFilterAll: tc.all, Conf: map[string]LinkConf{"vxlan.calico": {RPFilter: tc.link}}}
			mode, ok := s.EffectiveRPFilter("vxlan.calico")
			if mode != tc.wantMode || ok != tc.wantOK {
				t.Errorf("EffectiveRPFilter = %d, %v; want %d, %v", mode, ok, tc.wantMode, tc.wantOK)
			}
		})
	}
	s := Sysctls{RPFilterAll: ptr(0)}
	if _, ok := s.EffectiveRPFilter("eth9"); ok {
		t.Errorf("EffectiveRPFilter of a link without conf: ok = true; want false")
	}
}

func TestLinkState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		adminUp bool
		oper    string
		want    string
	}{
		{"up", true, "up", LinkUp},
		{"loopback_reports_unknown", true, "unknown", LinkUp},
		{"no_carrier", true, "lowerlayerdown", LinkDown},
		{"admin_down", false, "down", LinkDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := linkState(tc.adminUp, tc.oper); got != tc.want {
				t.Errorf("linkState(%v, %q) = %q; want %q", tc.adminUp, tc.oper, got, tc.want)
			}
		})
	}
}

func TestRouteNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RouteProtoName(12), "bird"},
		{RouteProtoName(80), "felix"},
		{RouteProtoName(2), "kernel"},
		{RouteProtoName(77), "77"},
		{RouteTypeName(6), "blackhole"},
		{RouteTypeName(7), "unreachable"},
		{RouteScopeName(253), "link"},
		{RouteScopeName(0), "global"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q; want %q", tc.got, tc.want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.BIRDSocket != "/var/run/calico/bird.ctl" || o.FelixHealthURL != "http://localhost:9099/readiness" ||
		o.CalicoMTUFile != "/var/lib/calico/mtu" || o.Timeout != DefaultTimeout {
		t.Errorf("defaults = %+v; want calico-node's paths and %s", o, DefaultTimeout)
	}
	if o := (Options{BIRDSocket: "/x"}).withDefaults(); o.BIRDSocket != "/x" {
		t.Errorf("BIRDSocket = %q; want the caller's /x", o.BIRDSocket)
	}
}

// fakeTree builds a sysfs whose roots are under a temp dir, with files
// given as path (relative to the tree) -> content.
func fakeTree(t *testing.T, files map[string]string) sysfs {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		dir := filepath.Dir(full)
		if strings.HasSuffix(p, "/") {
			dir = full // a directory only
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if dir == full {
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sysfs{proc: filepath.Join(root, "proc"), sys: filepath.Join(root, "sys"), lib: filepath.Join(root, "lib/modules")}
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const testRelease = "6.1.0-test"

func moduleStates(sys sysfs) map[string]Module {
	out := map[string]Module{}
	for _, m := range sys.kernelModules(testRelease) {
		out[m.Name] = m
	}
	return out
}

func TestModuleStates(t *testing.T) {
	lib := "lib/modules/" + testRelease + "/"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  map[string]string // module -> state; others unchecked
	}{
		{
			name: "loadable_kernel_with_modules_dir",
			files: map[string]string{
				"proc/modules": "vxlan 49152 0 - Live 0x0000000000000000\n" +
					"ip_tables 36864 0 - Live 0x0000000000000000\n",
				lib + "modules.builtin": "kernel/net/netfilter/xt_mark.ko\n",
				lib + "modules.dep": "kernel/net/ipv4/ipip.ko.xz: kernel/net/ipv4/tunnel4.ko.xz kernel/net/ipv4/ip_tunnel.ko.xz\n" +
					"kernel/net/netfilter/xt_set.ko.zst: kernel/net/netfilter/ipset/ip_set.ko.zst\n" +
					"kernel/net/netfilter/ipset/ip_set.ko.zst:\n" +
					"kernel/net/ipv4/netfilter/ipt_REJECT.ko:\n",
			},
			want: map[string]string{
				"vxlan": ModuleLoaded, "ip_tables": ModuleLoaded, "xt_mark": ModuleBuiltin,
				"ipip": ModuleAvailable, "xt_set": ModuleAvailable, "ip_set": ModuleAvailable,
				"ipt_REJECT": ModuleAvailable, "wireguard": ModuleMissing, "br_netfilter": ModuleMissing,
			},
		},
		{
			// This machine's shape: no module support, no /lib/modules, most
			// things built in, and only some of them visible under /sys/module.
			name: "monolithic_kernel_config_only",
			files: map[string]string{
				"sys/module/vxlan/parameters/x":  "",
				"sys/module/ip_set/parameters/x": "",
				"proc/config.gz": gz(t, "# CONFIG_MODULES is not set\nCONFIG_VXLAN=y\nCONFIG_IP_SET=y\n"+
					"CONFIG_IP_NF_IPTABLES=y\nCONFIG_NETFILTER_XT_MARK=y\nCONFIG_IP_NF_MATCH_RPFILTER=y\n"+
					"# CONFIG_NET_IPIP is not set\nCONFIG_WIREGUARD=m\n"),
			},
			want: map[string]string{
				"vxlan": ModuleBuiltin, "ip_set": ModuleBuiltin, "ip_tables": ModuleBuiltin, "xt_mark": ModuleBuiltin,
				"xt_rpfilter": ModuleBuiltin, "ipip": ModuleMissing,
				// =m with no /lib/modules to check: a container often has it unmounted.
				"wireguard": ModuleAvailable,
			},
		},
		{
			name: "module_built_but_not_on_disk",
			files: map[string]string{
				"proc/config.gz":    gz(t, "CONFIG_WIREGUARD=m\n"),
				lib + "modules.dep": "kernel/drivers/net/vxlan/vxlan.ko:\n",
			},
			want: map[string]string{"wireguard": ModuleMissing, "vxlan": ModuleAvailable},
		},
		{
			name: "loaded_module_seen_only_in_sysfs",
			files: map[string]string{
				"sys/module/br_netfilter/initstate": "live\n",
				"sys/module/xt_REJECT/":             "",
			},
			want: map[string]string{"br_netfilter": ModuleLoaded, "ipt_REJECT": ModuleBuiltin},
		},
		{
			name:  "nothing_readable",
			files: map[string]string{"proc/": ""},
			want:  map[string]string{"vxlan": ModuleUnknown, "ipip": ModuleUnknown},
		},
		{
			name: "dash_and_underscore_are_one",
			files: map[string]string{
				lib + "modules.builtin": "kernel/net/bridge/br-netfilter.ko\n",
				lib + "modules.dep":     "",
			},
			want: map[string]string{"br_netfilter": ModuleBuiltin, "vxlan": ModuleMissing},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := moduleStates(fakeTree(t, tc.files))
			if len(got) != len(wantedModules) {
				t.Errorf("got %d modules; want one per wanted module (%d)", len(got), len(wantedModules))
			}
			for name, state := range tc.want {
				if m := got[name]; m.State != state {
					t.Errorf("%s: state %q (%s); want %q", name, m.State, m.Evidence, state)
				}
			}
		})
	}
}

func TestSysctlsFromProc(t *testing.T) {
	sys := fakeTree(t, map[string]string{
		"proc/sys/net/ipv4/ip_forward":                     "1\n",
		"proc/sys/net/ipv4/conf/all/rp_filter":             "1\n",
		"proc/sys/net/ipv4/conf/default/rp_filter":         "0\n",
		"proc/sys/net/ipv4/ping_group_range":               "0\t2147483647\n",
		"proc/sys/net/ipv4/conf/vxlan.calico/rp_filter":    "0\n",
		"proc/sys/net/ipv4/conf/vxlan.calico/proxy_arp":    "0\n",
		"proc/sys/net/ipv4/conf/cali1234567890a/rp_filter": "2\n",
		"proc/sys/net/ipv4/conf/cali1234567890a/proxy_arp": "1\n",
		"proc/sys/net/netfilter/nf_conntrack_max":          "262144\n",
	})
	s := sys.sysctls([]string{"vxlan.calico", "cali1234567890a", "gone0"})
	if s.IPv4Forward == nil || *s.IPv4Forward != 1 {
		t.Errorf("ipv4Forward = %v; want 1", s.IPv4Forward)
	}
	if s.IPv6Forwarding != nil {
		t.Errorf("ipv6Forwarding = %d; want unknown (no file)", *s.IPv6Forwarding)
	}
	if s.PingGroupRange != "0 2147483647" {
		t.Errorf("pingGroupRange = %q; want %q", s.PingGroupRange, "0 2147483647")
	}
	if c := s.Conf["cali1234567890a"]; c.ProxyARP == nil || *c.ProxyARP != 1 {
		t.Errorf("cali proxy_arp = %v; want 1", c.ProxyARP)
	}
	if mode, ok := s.EffectiveRPFilter("vxlan.calico"); !ok || mode != 1 {
		t.Errorf("effective rp_filter on vxlan.calico = %d, %v; want 1 (all=1 wins over the dotted name's 0)", mode, ok)
	}
	if _, ok := s.Conf["gone0"]; ok {
		t.Errorf("conf for a link without /proc/sys entries: present; want absent")
	}
	ct := sys.conntrack()
	if ct.Count != nil || ct.Max == nil || *ct.Max != 262144 {
		t.Errorf("conntrack = %+v; want count unknown, max 262144", ct)
	}
}
