package hostfacts

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// sysfs is where the kernel's files are. Tests point the roots at a
// t.TempDir() tree.
type sysfs struct {
	proc string // /proc
	sys  string // /sys
	lib  string // /lib/modules
}

var hostSysfs = sysfs{proc: "/proc", sys: "/sys", lib: "/lib/modules"}

// readSysctl reads a /proc/sys value. key is in path form
// ("net/ipv4/conf/vxlan.calico/rp_filter") because interface names hold dots.
// /proc/sys/net shows the network namespace of the calling thread.
func (s sysfs) readSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.proc, "sys", key))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// sysctlInt reads an integer sysctl; nil when it cannot be read.
func (s sysfs) sysctlInt(key string) *int {
	v, err := s.readSysctl(key)
	if err != nil {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	return &n
}

// sysctls reads the settings of Sysctls for the given links.
func (s sysfs) sysctls(links []string) Sysctls {
	out := Sysctls{
		IPv4Forward:     s.sysctlInt("net/ipv4/ip_forward"),
		IPv6Forwarding:  s.sysctlInt("net/ipv6/conf/all/forwarding"),
		RPFilterAll:     s.sysctlInt("net/ipv4/conf/all/rp_filter"),
		RPFilterDefault: s.sysctlInt("net/ipv4/conf/default/rp_filter"),
		Conf:            map[string]LinkConf{},
	}
	if v, err := s.readSysctl("net/ipv4/ping_group_range"); err == nil {
		out.PingGroupRange = strings.Join(strings.Fields(v), " ") // the kernel separates with a tab
	}
	for _, l := range links {
		c := LinkConf{
			RPFilter: s.sysctlInt("net/ipv4/conf/" + l + "/rp_filter"),
			ProxyARP: s.sysctlInt("net/ipv4/conf/" + l + "/proxy_arp"),
		}
		if c.RPFilter != nil || c.ProxyARP != nil {
			out.Conf[l] = c
		}
	}
	return out
}

// conntrack reads the conntrack table's fill; absent files leave it unknown.
func (s sysfs) conntrack() Conntrack {
	return Conntrack{
		Count: s.sysctlInt("net/netfilter/nf_conntrack_count"),
		Max:   s.sysctlInt("net/netfilter/nf_conntrack_max"),
	}
}

// moduleSpec is a module someone wants, the other names it goes by and the
// Kconfig symbols that build it.
type moduleSpec struct {
	name    string
	aliases []string
	config  []string
	need    string
}

// wantedModules are those `calicoctl node checksystem` checks, plus the
// encapsulations' and Kubespray's br_netfilter.
var wantedModules = []moduleSpec{
	{name: "ip_set", config: []string{"IP_SET"}, need: "calico"},
	{name: "ip_tables", config: []string{"IP_NF_IPTABLES"}, need: "calico"},
	{name: "ip6_tables", config: []string{"IP6_NF_IPTABLES"}, need: "calico-ipv6"},
	{name: "xt_set", config: []string{"NETFILTER_XT_SET"}, need: "calico"},
	// The rpfilter match is built as ipt_rpfilter / ip6t_rpfilter.
	{name: "xt_rpfilter", aliases: []string{"ipt_rpfilter", "ip6t_rpfilter"},
		config: []string{"IP_NF_MATCH_RPFILTER", "IP6_NF_MATCH_RPFILTER"}, need: "calico"},
	{name: "nf_conntrack_netlink", config: []string{"NF_CT_NETLINK"}, need: "calico"},
	{name: "xt_addrtype", config: []string{"NETFILTER_XT_MATCH_ADDRTYPE"}, need: "calico"},
	{name: "xt_conntrack", config: []string{"NETFILTER_XT_MATCH_CONNTRACK"}, need: "calico"},
	// xt_mark holds both the mark match and the MARK target.
	{name: "xt_mark", config: []string{"NETFILTER_XT_MARK"}, need: "calico"},
	{name: "xt_multiport", config: []string{"NETFILTER_XT_MATCH_MULTIPORT"}, need: "calico"},
	{name: "ipt_REJECT", aliases: []string{"xt_REJECT"}, config: []string{"IP_NF_TARGET_REJECT"}, need: "calico"},
	// kube-proxy's IPVS mode: what Kubespray loads for kube_proxy_mode ipvs.
	{name: "ip_vs", config: []string{"IP_VS"}, need: "kube-proxy-ipvs"},
	{name: "ip_vs_rr", config: []string{"IP_VS_RR"}, need: "kube-proxy-ipvs"},
	{name: "ip_vs_wrr", config: []string{"IP_VS_WRR"}, need: "kube-proxy-ipvs"},
	{name: "ip_vs_sh", config: []string{"IP_VS_SH"}, need: "kube-proxy-ipvs"},
	{name: "xt_ipvs", config: []string{"NETFILTER_XT_MATCH_IPVS"}, need: "kube-proxy-ipvs"},
	{name: "vxlan", config: []string{"VXLAN"}, need: NeedVXLAN},
	{name: "ipip", config: []string{"NET_IPIP"}, need: NeedIPIP},
	{name: "wireguard", config: []string{"WIREGUARD"}, need: NeedWireGuard},
	{name: "br_netfilter", config: []string{"BRIDGE_NETFILTER"}, need: "kubespray"},
}

// moduleSources is everything the kernel says about its modules, read once.
// A nil map is a source that could not be read.
type moduleSources struct {
	loaded  map[string]bool   // /proc/modules
	config  map[string]string // /proc/config.gz: symbol without CONFIG_ -> y or m
	builtin map[string]bool   // modules.builtin
	dep     map[string]bool   // modules.dep: loadable modules on disk
	libDir  string
}

func (s sysfs) moduleSources(release string) moduleSources {
	src := moduleSources{libDir: path.Join(s.lib, release)}
	// A kernel without CONFIG_MODULES has no /proc/modules: nothing is loaded.
	if b, err := os.ReadFile(filepath.Join(s.proc, "modules")); err == nil {
		src.loaded = map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				src.loaded[normModule(f[0])] = true
			}
		}
	}
	if cfg, err := readKernelConfig(filepath.Join(s.proc, "config.gz")); err == nil {
		src.config = cfg
	}
	src.builtin = readModuleList(filepath.Join(src.libDir, "modules.builtin"))
	src.dep = readModuleList(filepath.Join(src.libDir, "modules.dep"))
	return src
}

// kernelModules resolves the state of every wanted module.
func (s sysfs) kernelModules(release string) []Module {
	src := s.moduleSources(release)
	out := make([]Module, 0, len(wantedModules))
	for _, m := range wantedModules {
		st, ev := s.moduleState(src, m)
		out = append(out, Module{Name: m.name, State: st, Need: m.need, Evidence: ev})
	}
	return out
}

// moduleState decides one module's state from the strongest evidence:
// in memory, then compiled in, then on disk. A built-in module shows under
// /sys/module only when it has parameters, so the kernel config and
// modules.builtin are asked too.
func (s sysfs) moduleState(src moduleSources, m moduleSpec) (state, evidence string) {
	names := append([]string{m.name}, m.aliases...)
	for _, n := range names {
		if src.loaded[normModule(n)] {
			return ModuleLoaded, "/proc/modules lists " + n
		}
	}
	for _, n := range names {
		dir := filepath.Join(s.sys, "module", normModule(n))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		// Only loadable modules have an initstate.
		if _, err := os.Stat(filepath.Join(dir, "initstate")); err == nil {
			return ModuleLoaded, dir + "/initstate exists"
		}
		return ModuleBuiltin, dir + " exists without initstate"
	}
	for _, n := range names {
		if src.builtin[normModule(n)] {
			return ModuleBuiltin, "modules.builtin lists " + n
		}
	}
	cfgVal, cfgSym := "", ""
	for _, sym := range m.config {
		if v := src.config[sym]; v == "y" && cfgVal != "y" || v == "m" && cfgVal == "" {
			cfgVal, cfgSym = v, sym
		}
	}
	if cfgVal == "y" {
		return ModuleBuiltin, "CONFIG_" + cfgSym + "=y in /proc/config.gz"
	}
	for _, n := range names {
		if src.dep[normModule(n)] {
			return ModuleAvailable, "modules.dep lists " + n
		}
	}
	switch {
	case cfgVal == "m" && src.dep == nil:
		// Built as a module; /lib/modules is not visible here (often so in
		// a container), so trust the config that modprobe on the host can.
		return ModuleAvailable, "CONFIG_" + cfgSym + "=m in /proc/config.gz (" + src.libDir + " not readable)"
	case cfgVal == "m":
		return ModuleMissing, "CONFIG_" + cfgSym + "=m but " + src.libDir + "/modules.dep does not list " + m.name
	case src.config != nil:
		return ModuleMissing, "CONFIG_" + strings.Join(m.config, ", CONFIG_") + " not set in /proc/config.gz"
	case src.builtin != nil && src.dep != nil:
		return ModuleMissing, "not in /proc/modules, /sys/module, modules.builtin or modules.dep of " + src.libDir
	}
	return ModuleUnknown, "not loaded; neither /proc/config.gz nor " + src.libDir + " readable"
}

// normModule is the name the kernel uses: '-' and '_' are the same in module names.
func normModule(n string) string { return strings.ReplaceAll(n, "-", "_") }

// readModuleList reads modules.builtin or modules.dep into module names:
// "kernel/net/ipv4/ipip.ko.xz: kernel/net/ipv4/tunnel4.ko.xz" names ipip.
func readModuleList(file string) map[string]bool {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, _, _ := strings.Cut(sc.Text(), ":")
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		name, _, _ := strings.Cut(path.Base(p), ".ko")
		out[normModule(name)] = true
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

// readKernelConfig reads the gzipped kernel config into symbol -> value,
// keeping only built (y) and modular (m) symbols.
func readKernelConfig(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(b) == 0 {
		return nil, errors.New(file + " is empty")
	}
	out := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), "=")
		sym, isCfg := strings.CutPrefix(k, "CONFIG_")
		if ok && isCfg && (v == "y" || v == "m") {
			out[sym] = v
		}
	}
	return out, nil
}
