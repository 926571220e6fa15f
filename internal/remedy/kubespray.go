package remedy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"podpath/internal/cluster/kubespray"
	"podpath/internal/safefile"

	"podpath/internal/calico"
)

// KubesprayMTU plans the MTU change in a Kubespray inventory directory: it finds
// group_vars/k8s_cluster/k8s-net-calico.yml (or .yaml) under dir, or takes dir as that file's
// path, and returns the edit that sets calico_mtu: mtu, plus warnings. It only reads: Apply writes.
// A kubectl-only fix would be reverted by the next Kubespray run, hence an inventory edit.
func KubesprayMTU(dir string, mtu int) (*FileChange, []string, error) {
	if err := calico.CheckMTU(mtu, false); err != nil {
		return nil, nil, fmt.Errorf("set %s in the Kubespray inventory: %w", mtuKey, err)
	}
	path, err := calicoVarsFile(dir)
	if err != nil {
		return nil, nil, err
	}
	old, err := safefile.Read(path, kubespray.MaxFileBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("read the Kubespray Calico variables: %w", err)
	}
	updated, warnings, err := setKubesprayMTU(old, mtu)
	if err != nil {
		return nil, nil, fmt.Errorf("set %s in %s: %w", mtuKey, path, err)
	}
	warnings = append(warnings, overrides(path, mtu)...)
	return &FileChange{Path: path, Old: old, New: updated, Diff: UnifiedDiff(path, old, updated)}, warnings, nil
}

// calicoVarsFile returns dir if it is a file, else the Calico vars file of the inventory dir.
// Only dir itself is looked in: guessing among a repository's inventory/*/ could edit the wrong
// cluster's file.
func calicoVarsFile(dir string) (string, error) {
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return filepath.Clean(dir), nil
	}
	var tried []string
	for _, name := range []string{"k8s-net-calico.yml", "k8s-net-calico.yaml"} {
		path := filepath.Join(dir, "group_vars", "k8s_cluster", name)
		_, err := os.Stat(path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find the Kubespray Calico variables: %w", err)
		}
		tried = append(tried, path)
	}
	return "", fmt.Errorf("find the Kubespray Calico variables: tried %s; --kubespray-inventory must be the "+
		"Kubespray inventory directory, the one holding group_vars/ (e.g. inventory/mycluster): %w",
		strings.Join(tried, " and "), fs.ErrNotExist)
}
