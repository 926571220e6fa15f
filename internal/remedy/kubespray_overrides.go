package remedy

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"podpath/internal/cluster/kubespray"
	"podpath/internal/safefile"
)

// overrides warns about calico_mtu or calico_veth_mtu set to another value elsewhere in the
// inventory's group_vars/ or host_vars/: Ansible merges those by precedence (host over child group
// over k8s_cluster over all; later files of a group directory over earlier ones), so a value there
// can beat the edited file and keep the old MTU. path is the edited file.
func overrides(path string, mtu int) []string {
	groupVars := filepath.Dir(filepath.Dir(path))
	if filepath.Base(groupVars) != "group_vars" {
		return nil // a file given directly, outside an inventory layout: nothing to compare with
	}
	inventory := filepath.Dir(groupVars)
	var warnings []string
	for _, sub := range []string{"group_vars", "host_vars"} {
		// The trailing separator makes WalkDir enter a group_vars that is itself a symlink.
		root := filepath.Join(inventory, sub) + string(filepath.Separator)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || p == path || strings.HasPrefix(d.Name(), ".") {
				return nil // unreadable parts are skipped: these are warnings, not the edit
			}
			vars := map[string]any{}
			b, err := safefile.Read(p, kubespray.MaxFileBytes)
			if err != nil || yaml.Unmarshal(b, &vars) != nil {
				return nil // vault-encrypted or not YAML: Ansible's business, not ours
			}
			for _, k := range []string{mtuKey, vethKey} {
				if v, ok := vars[k]; ok && v != any(mtu) {
					warnings = append(warnings, fmt.Sprintf("%s is also set, to %#v, in %s: Ansible may use that "+
						"value instead; set it to %d there too or remove it", k, v, p, mtu))
				}
			}
			return nil
		})
	}
	return warnings
}
