// Package inventory reads and writes podpath's static description of a
// cluster: nodes, their agents, and the network they are configured with.
// It serves clusters without API access, hosts before install, and the lab.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"podpath/internal/safefile"

	"podpath/internal/model"
)

const (
	APIVersion = "podpath/v1"
	Kind       = "Inventory"
)

// Inventory is the file format of DESIGN.md ("Inventory").
type Inventory struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	TokenFile  string   `yaml:"tokenFile,omitempty"` // relative to the inventory file
	Network    *Network `yaml:"network,omitempty"`
	Nodes      []Node   `yaml:"nodes"`
}

// Network is what the cluster is configured with (model.Network).
type Network = model.Network

// Node is one node with its host-network agent and optional Pod-network agents.
type Node struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// Address6 is the node's IPv6 address on a dual-stack cluster whose
	// Address is IPv4: its agent answers there too, on the agent's port,
	// and podpath probes it in an IPv6 pass of its own.
	Address6 string `yaml:"address6,omitempty"`
	Agent    string `yaml:"agent,omitempty"`
	// Netns, when set, is the network namespace to reach the agent from
	// (the lab's agents listen only inside their namespaces).
	Netns string `yaml:"netns,omitempty"`
	Pods  []Pod  `yaml:"pods,omitempty"`
}

// Pod is a Pod-network agent.
type Pod struct {
	Name     string `yaml:"name"`
	Address  string `yaml:"address"`
	Address6 string `yaml:"address6,omitempty"` // as Node.Address6
	Agent    string `yaml:"agent,omitempty"`
	Netns    string `yaml:"netns,omitempty"`
}

// Marshal renders inv as YAML.
func Marshal(inv *Inventory) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(inv); err != nil {
		return nil, fmt.Errorf("encode inventory: %w", err)
	}
	return b.Bytes(), nil
}

// MaxFileBytes bounds an inventory file: 5,000 nodes with Pods fit in a
// few MiB; anything far larger is not an inventory.
const MaxFileBytes = 16 << 20

// Load reads and checks an inventory file; errors name the file and, where
// the YAML parser knows it, the line.
func Load(path string) (*Inventory, error) {
	data, err := safefile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	inv, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	if inv.TokenFile != "" {
		if inv.TokenFile, err = insideDir(path, inv.TokenFile); err != nil {
			return nil, fmt.Errorf("inventory %s: tokenFile: %w", path, err)
		}
	}
	return inv, nil
}

// insideDir resolves name, relative to the inventory's directory, and
// refuses it unless it lies inside that directory once symlinks are
// resolved: the token file's content is sent to every agent address in
// the inventory, so an inventory from elsewhere must not be able to name
// /etc/shadow or a service-account token. A file given on the command
// line (--token-file) is the user's own choice and is not checked here.
func insideDir(inventoryPath, name string) (string, error) {
	dir, err := filepath.Abs(filepath.Dir(inventoryPath))
	if err != nil {
		return "", err
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Missing: reading it says so. Where it would be still counts.
		real = filepath.Clean(p)
		if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			real = filepath.Join(d, filepath.Base(p))
		}
	} else if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q resolves to %s, outside the inventory's directory %s: keep the token file beside the inventory, or give it with --token-file", name, real, realDir)
	}
	return p, nil
}

// Parse decodes and validates inventory YAML. Unknown fields are errors, so a
// typo does not silently change what gets probed.
func Parse(data []byte) (*Inventory, error) {
	var inv Inventory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil {
		return nil, err
	}
	if inv.APIVersion != APIVersion || inv.Kind != Kind {
		return nil, fmt.Errorf("want apiVersion %s and kind %s, got %q and %q", APIVersion, Kind, inv.APIVersion, inv.Kind)
	}
	if len(inv.Nodes) == 0 {
		return nil, errors.New("no nodes")
	}
	seen := map[string]bool{}
	podOn := map[string]string{}
	for i, n := range inv.Nodes {
		if n.Name == "" {
			return nil, fmt.Errorf("nodes[%d]: no name", i)
		}
		if err := checkName(n.Name); err != nil {
			return nil, fmt.Errorf("nodes[%d]: node name %w", i, err)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("nodes[%d]: node %q listed twice", i, n.Name)
		}
		seen[n.Name] = true
		if _, err := netip.ParseAddr(n.Address); err != nil {
			return nil, fmt.Errorf("node %s: address %q is not an IP address", n.Name, n.Address)
		}
		if n.Agent != "" {
			if _, err := netip.ParseAddrPort(n.Agent); err != nil {
				return nil, fmt.Errorf("node %s: agent %q is not IP:port", n.Name, n.Agent)
			}
		}
		if err := checkAddress6(n.Address, n.Address6); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		for _, p := range n.Pods {
			if err := checkName(p.Name); err != nil {
				return nil, fmt.Errorf("node %s: Pod name %w", n.Name, err)
			}
			if on, dup := podOn[p.Name]; dup {
				return nil, fmt.Errorf("node %s: Pod %q listed twice (also on node %s): give each Pod a unique name", n.Name, p.Name, on)
			}
			podOn[p.Name] = n.Name
			if _, err := netip.ParseAddr(p.Address); err != nil {
				return nil, fmt.Errorf("node %s: Pod %q address %q is not an IP address", n.Name, p.Name, p.Address)
			}
			if p.Agent != "" {
				if _, err := netip.ParseAddrPort(p.Agent); err != nil {
					return nil, fmt.Errorf("node %s: Pod %q agent %q is not IP:port", n.Name, p.Name, p.Agent)
				}
			}
			if err := checkAddress6(p.Address, p.Address6); err != nil {
				return nil, fmt.Errorf("node %s: Pod %q: %w", n.Name, p.Name, err)
			}
		}
	}
	return &inv, nil
}

// checkAddress6 accepts a second address only as an IPv6 one beside an
// IPv4 address: the pair a dual-stack cluster gives its nodes and Pods.
func checkAddress6(addr, addr6 string) error {
	if addr6 == "" {
		return nil
	}
	a6, err := netip.ParseAddr(addr6)
	if err != nil || !a6.Is6() || a6.Is4In6() {
		return fmt.Errorf("address6 %q is not an IPv6 address", addr6)
	}
	if a, err := netip.ParseAddr(addr); err == nil && !a.Unmap().Is4() {
		return fmt.Errorf("address6 %q beside the IPv6 address %s: address6 is the IPv6 address of a dual-stack node or Pod whose address is IPv4", addr6, addr)
	}
	return nil
}

// MaxNameBytes is a Kubernetes object name's limit (a DNS subdomain).
const MaxNameBytes = 253

// checkName refuses a name that could forge lines of a text report or of
// the fix commands it suggests: control characters (ANSI escapes,
// newlines), spaces and other unprintable runes.
func checkName(name string) error {
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%.40q…: more than %d bytes", name, MaxNameBytes)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q: only printable characters without spaces, as in a host or Kubernetes name", name)
		}
	}
	return nil
}

// ErrNoToken: neither the command line nor the inventory names a token file.
var ErrNoToken = errors.New("no agent token: give --token-file or tokenFile in the inventory")

// Token reads the agents' token: from the file given on the command line
// (override), else from the inventory's tokenFile.
func (inv *Inventory) Token(override string) (string, error) {
	path := override
	if path == "" {
		path = inv.TokenFile
	}
	if path == "" {
		return "", ErrNoToken
	}
	tok, err := safefile.ReadToken(path)
	if err != nil {
		return "", fmt.Errorf("read agent token: %w", err)
	}
	return tok, nil
}
