// Package chart renders and lints podpath's Helm chart (deploy/chart/podpath) with Helm's own
// code, as `helm template` and `helm lint` do, so tests see exactly what an install would apply.
package chart

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"podpath/internal/kubeobj"
)

const (
	// RelDir is where the chart lives, relative to the repository's root.
	RelDir = "deploy/chart/podpath"
	// KubeVersion is the Kubernetes version Render and Lint present to the chart
	// (.Capabilities.KubeVersion): the minor of the k8s.io modules this repository builds with.
	// Helm's own default is its client-go's, except in test binaries, where it is v1.20: below
	// the chart's kubeVersion.
	KubeVersion = "v1.37.0"
)

// Release is a rendered chart.
type Release struct {
	Manifest []byte                       // every object, as `helm template` prints them
	Objects  []*unstructured.Unstructured // Manifest decoded, in Helm's install order
	Notes    string                       // NOTES.txt rendered
}

// Find returns the first object of kind named name, or nil.
func (r *Release) Find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// Dir finds the chart from the working directory: it walks up to the repository's root (the
// directory holding go.mod) and returns RelDir there. The chart cannot be embedded in this
// package, as go:embed reads only files below the package's own directory.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the chart: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			chart := filepath.Join(dir, RelDir)
			if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
				return "", fmt.Errorf("find the chart: %w", err)
			}
			return chart, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the chart: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Render renders the chart in dir for release in namespace with values (nil: the chart's
// defaults), as `helm template release dir -n namespace` does: Helm's engine with its default
// capabilities, no cluster contacted, objects in Helm's install order.
func Render(dir string, values map[string]any, releaseName, namespace string) (*Release, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	caps, err := capabilities()
	if err != nil {
		return nil, err
	}
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s requires kubeVersion %s; Helm's default is %s", dir, ch.Metadata.KubeVersion, caps.KubeVersion)
	}
	if values == nil {
		values = map[string]any{}
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := commonutil.ToRenderValues(ch, values, opts, caps)
	if err != nil {
		return nil, fmt.Errorf("values for chart %s: %w", dir, err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", dir, err)
	}
	// NOTES.txt is rendered like a template but is no object (Helm's renderResources does this).
	notes := files[path.Join(ch.Name(), "templates", "NOTES.txt")]
	for name := range files {
		if strings.HasSuffix(name, "/NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("sort the rendered chart %s: %w", dir, err)
	}
	if len(hooks) > 0 {
		// The chart has none; a hook would be applied outside the install order this returns.
		return nil, fmt.Errorf("chart %s: unexpected hook %s", dir, hooks[0].Path)
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	objs, err := kubeobj.Decode([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("decode the rendered chart %s: %w", dir, err)
	}
	return &Release{Manifest: []byte(b.String()), Objects: objs, Notes: notes}, nil
}

// Lint runs `helm lint` on the chart in dir with values (nil: the defaults) and returns its
// messages of every severity, and an error listing those that are warnings or errors: a chart
// that lints with warnings is one `helm lint --strict` (and many CI set-ups) refuse.
func Lint(dir string, values map[string]any) ([]string, error) {
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version %s: %w", KubeVersion, err)
	}
	res := lint.RunAll(dir, values, "podpath", lint.WithKubeVersion(kv))
	var all, bad []string
	for _, m := range res.Messages {
		all = append(all, m.Error())
		if m.Severity >= support.WarningSev {
			bad = append(bad, m.Error())
		}
	}
	if len(bad) > 0 {
		return all, fmt.Errorf("helm lint %s: %s", dir, strings.Join(bad, "; "))
	}
	return all, nil
}

// capabilities are Helm's defaults (API versions, Helm's version) for KubeVersion.
func capabilities() (*common.Capabilities, error) {
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version %s: %w", KubeVersion, err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	return caps, nil
}
