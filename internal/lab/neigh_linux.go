package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel keeps one neighbour (ARP/NDP) table for all network
// namespaces, bounded by the initial namespace's gc_thresh sysctls
// (default 1024 entries). A real node holds the entries of its own
// neighbours only; a lab of N nodes on one machine holds about N² of
// them, and past gc_thresh3 the kernel drops packets that need a new
// entry ("neighbour table overflow"): a 50-node lab then looks
// partitioned. So the lab makes room for its own nodes, never lowers
// what is set, and the last lab down puts the old values back.
var neighKeys = []string{
	"net/ipv4/neigh/default/gc_thresh2", "net/ipv4/neigh/default/gc_thresh3",
	"net/ipv6/neigh/default/gc_thresh2", "net/ipv6/neigh/default/gc_thresh3",
}

// neighSaved holds the values found before the first lab raised them.
func neighSaved() string { return filepath.Join(StateRoot, "neigh-saved.json") }

// neighNeeded is the table room n lab nodes need: each node's neighbours
// on the underlay, its VXLAN peers and its Pods, for IPv4 and IPv6, with
// the machine's own entries on top.
func neighNeeded(n int) int { return 3*n*n + 1024 }

// makeNeighRoom raises gc_thresh2 and gc_thresh3 to fit n nodes.
func makeNeighRoom(n int) error {
	want := neighNeeded(n)
	saved := map[string]string{}
	if b, err := os.ReadFile(neighSaved()); err == nil {
		_ = json.Unmarshal(b, &saved)
	}
	changed := false
	for _, key := range neighKeys {
		cur, err := readSysctl(key)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return err
		}
		target := want
		if strings.HasSuffix(key, "gc_thresh2") {
			target = want / 2
		}
		if cur >= target {
			continue
		}
		if _, ok := saved[key]; !ok {
			saved[key] = strconv.Itoa(cur)
		}
		if err := os.WriteFile("/proc/sys/"+key, []byte(strconv.Itoa(target)), 0o644); err != nil {
			return fmt.Errorf("make room in the neighbour table for %d nodes (%s=%d): %w", n, key, target, err)
		}
		changed = true
	}
	if !changed {
		return nil
	}
	b, _ := json.Marshal(saved)
	return os.WriteFile(neighSaved(), b, 0o644)
}

// restoreNeigh puts back what makeNeighRoom found, once no lab is left.
func restoreNeigh() error {
	entries, err := os.ReadDir(StateRoot)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			return nil // another lab still runs
		}
	}
	b, err := os.ReadFile(neighSaved())
	if err != nil {
		return nil
	}
	saved := map[string]string{}
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("read %s: %w", neighSaved(), err)
	}
	var errs []error
	// gc_thresh3 first: the kernel keeps thresh2 at or below it.
	for i := len(neighKeys) - 1; i >= 0; i-- {
		if v, ok := saved[neighKeys[i]]; ok {
			if err := os.WriteFile("/proc/sys/"+neighKeys[i], []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore %s=%s: %w", neighKeys[i], v, err))
			}
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(neighSaved())
	}
	return errors.Join(errs...)
}

func readSysctl(key string) (int, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
