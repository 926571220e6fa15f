// Package kubespray reads a Kubespray (Ansible) inventory directory the way
// Kubespray sees it: the hosts file with its groups, group_vars and host_vars,
// and Kubespray's role defaults for whatever the inventory leaves unset. It
// evaluates no Jinja and runs nothing, so podpath can check a cluster's plan
// from the inventory alone.
package kubespray

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Host is one inventory host.
type Host struct {
	Name string
	// Address is ip if set, else access_ip, else ansible_host, else "": the
	// name may be a DNS name, and resolving it is the caller's decision.
	// ansible_host may itself be a DNS name.
	Address string
	// Groups are every group the host is in, parents and Kubespray's dynamic
	// groups included (k8s_cluster for kube_control_plane, kube_node and
	// calico_rr hosts; kube_control_plane for kube-master hosts), sorted.
	Groups []string
	Vars   map[string]any // inline host vars, overridden by host_vars files
}

// InK8s: the host is a Kubernetes node (k8s_cluster, kube_node or
// kube_control_plane), not only etcd or a bastion.
func (h Host) InK8s() bool {
	for _, g := range h.Groups {
		if g == "k8s_cluster" || g == "kube_node" || g == "kube_control_plane" {
			return true
		}
	}
	return false
}

// Inventory is a Kubespray inventory directory as Kubespray sees it.
type Inventory struct {
	Dir       string
	HostsFile string // the hosts file read, relative to Dir
	Hosts     []Host // in file order
	// Vars are the effective cluster-wide variables, in Ansible's precedence:
	// Kubespray defaults < the hosts file's all vars < group_vars/all <
	// the hosts file's k8s_cluster vars < group_vars/k8s_cluster (groups
	// above k8s_cluster, if any, between all and k8s_cluster). Variables of
	// other groups and of hosts are not in here: they differ per host.
	Vars map[string]any
	// Source says where each variable's value came from: "default", or a file
	// relative to Dir with its line ("group_vars/k8s_cluster/k8s-net-calico.yml:41").
	// A file that could not be read (ansible-vault) is a key of its own.
	Source map[string]string
	// Warnings are things Ansible accepts that are probably not meant, one
	// line each, located like errors.
	Warnings []string
}

// hostsFiles are the names Load looks for, in order: Kubespray's sample uses
// inventory.ini; older releases and many users use hosts.yaml or hosts.ini.
var hostsFiles = []string{"hosts.yaml", "hosts.yml", "inventory.ini", "hosts.ini", "hosts"}

// Load reads the Kubespray inventory directory dir (e.g. inventory/mycluster).
// dir may also be the hosts file itself. Every error is one line,
// "file:line: what is wrong (what to do)".
func Load(dir string) (*Inventory, error) {
	dir, hostsFile, err := findHostsFile(dir)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Dir: dir, HostsFile: hostsFile, Vars: map[string]any{}, Source: map[string]string{}}
	l := &loader{inv: inv}
	if err := l.load(); err != nil {
		return nil, err
	}
	return inv, nil
}

func findHostsFile(dir string) (string, string, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", &Error{File: dir, Msg: "no such directory", Hint: "pass the Kubespray inventory directory, e.g. inventory/mycluster"}
	}
	if err != nil {
		return "", "", fmt.Errorf("open Kubespray inventory: %w", err)
	}
	if !info.IsDir() {
		return filepath.Dir(dir), filepath.Base(dir), nil
	}
	for _, name := range hostsFiles {
		info, err := os.Stat(filepath.Join(dir, name))
		if err == nil && !info.IsDir() {
			return dir, name, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("open Kubespray inventory: %w", err)
		}
	}
	return "", "", &Error{File: dir, Msg: "no hosts file: looked for " + strings.Join(hostsFiles, ", "),
		Hint: "pass the Kubespray inventory directory, the one holding inventory.ini and group_vars/, e.g. inventory/mycluster"}
}

type loader struct {
	inv     *Inventory
	src     *source
	cluster map[string]bool // groups whose variables apply to the whole cluster
	// ancestors caches ancestry by a host's own groups.
	ancestors  map[string]map[string]bool
	addrGroups *[]*group // see addressGroups
}

func (l *loader) warn(file string, line int, msg, hint string) {
	l.inv.Warnings = append(l.inv.Warnings, locate(file, line, msg, hint))
}

// where turns a variable's Source into a location for a message.
func (l *loader) where(name string) string {
	src := l.inv.Source[name]
	if src == "" || strings.HasPrefix(src, "default") {
		return "Kubespray defaults"
	}
	src, _, _ = strings.Cut(src, " (")
	return filepath.Join(l.inv.Dir, src)
}

func (l *loader) load() error {
	path := filepath.Join(l.inv.Dir, l.inv.HostsFile)
	data, err := readCapped(path)
	if err != nil {
		return err
	}
	if isVault(data) {
		return &Error{File: path, Msg: "encrypted with ansible-vault", Hint: "podpath holds no vault key: pass a decrypted copy of the inventory"}
	}
	switch filepath.Ext(path) {
	case ".yaml", ".yml", ".json":
		l.src, err = parseYAMLInventory(path, data)
	default:
		l.src, err = parseINI(path, data)
	}
	if err != nil {
		return err
	}
	l.inv.Warnings = append(l.inv.Warnings, l.src.warnings...)
	l.groupWarnings()
	if err := l.clusterVars(); err != nil {
		return err
	}
	if err := l.otherGroupVars(); err != nil {
		return err
	}
	if err := l.hosts(); err != nil {
		return err
	}
	l.resolve()
	if err := l.checkResolved(); err != nil {
		return err
	}
	l.varWarnings()
	return nil
}

// safeName reports whether a group or host name can be joined to a path
// without leaving group_vars/ or host_vars/. Ansible skips names starting
// with a separator; podpath also skips the rest, reading only inside the
// inventory.
func safeName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`) &&
		strings.IndexFunc(name, unicode.IsControl) < 0 // a NUL cannot be in a path at all
}
