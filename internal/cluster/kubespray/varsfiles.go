package kubespray

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// varsFiles lists the files Ansible's host_group_vars plugin reads for one
// group or host, in its order (later files win): <base>.yml, <base>.yaml,
// <base>.json, then <base> itself, a file or a directory read recursively in
// name order. rel is relative to the inventory dir.
func (l *loader) varsFiles(rel string) ([]string, error) {
	var found []string
	for _, ext := range []string{".yml", ".yaml", ".json", ""} {
		p := rel + ext
		info, err := os.Stat(filepath.Join(l.inv.Dir, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look for Kubespray variables: %w", err)
		}
		if !info.IsDir() {
			found = append(found, p)
			continue
		}
		files, err := l.dirVarsFiles(p)
		if err != nil {
			return nil, err
		}
		found = append(found, files...)
	}
	return found, nil
}

// dirVarsFiles lists a vars directory as Ansible does: sorted, recursive,
// skipping hidden and backup files and extensions other than .yml, .yaml and
// .json (a file with no extension is read too).
func (l *loader) dirVarsFiles(rel string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(l.inv.Dir, rel))
	if err != nil {
		return nil, fmt.Errorf("list Kubespray variables: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var found []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			continue
		}
		p := filepath.Join(rel, name)
		if e.IsDir() {
			sub, err := l.dirVarsFiles(p)
			if err != nil {
				return nil, err
			}
			found = append(found, sub...)
			continue
		}
		switch filepath.Ext(name) {
		case ".yml", ".yaml", ".json", "":
			found = append(found, p)
		}
	}
	return found, nil
}

// readVars reads the top-level variables of one vars file. An ansible-vault
// file is skipped: podpath holds no vault key and should not ask for one.
func (l *loader) readVars(rel string) ([]varDef, error) {
	path := filepath.Join(l.inv.Dir, rel)
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	if isVault(data) {
		l.inv.Source[rel] = "encrypted with ansible-vault: not read"
		l.warn(path, 0, "encrypted with ansible-vault, not read", "a variable set only there is not seen; podpath shows Kubespray's default instead")
		return nil, nil
	}
	root, err := parseYAML(path, data)
	if err != nil || root == nil {
		return nil, err
	}
	r := newYAMLReader(path, func(line int, msg, hint string) { l.warn(path, line, msg, hint) })
	top, err := r.deref(root)
	if err != nil || isNull(top) {
		return nil, err
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: top.Line, Msg: fmt.Sprintf("the top level is %s, not variables", kind(top)),
			Hint: "a vars file holds name: value lines"}
	}
	es, err := r.entries(top)
	if err != nil {
		return nil, err
	}
	defs := make([]varDef, 0, len(es))
	for _, e := range es {
		v, err := r.value(e.val)
		if err != nil {
			return nil, err
		}
		defs = append(defs, varDef{e.key, v, e.line})
	}
	return defs, nil
}
