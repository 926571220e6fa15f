// Command krew makes kubectl-podpath's krew release: one archive per platform
// (dist/kubectl-podpath_<version>_<os>_<arch>.tar.gz: the static binary as kubectl-podpath, and
// LICENSE when the repository has one) and the plugin manifest dist/podpath.yaml, filled in from
// deploy/krew/podpath.yaml.tmpl with each archive's URI and sha256, then checked the way krew
// checks a manifest.
//
//	go run ./scripts/krew -version v0.1.0 [-o dist] [-platforms linux/amd64,linux/arm64]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	// Bin is the executable's name in the archive and on the PATH: kubectl runs kubectl-podpath
	// as `kubectl podpath`.
	Bin = "kubectl-podpath"
	// PluginName is the manifest's name; krew wants the file named after it.
	PluginName = "podpath"
	// apiVersion and kind of a krew plugin manifest.
	apiVersion = "krew.googlecontainertools.github.com/v1alpha2"
	kind       = "Plugin"
	// buildTimeout bounds one platform's go build: the first one compiles every dependency.
	buildTimeout = 15 * time.Minute
)

// DefaultPlatforms are the platforms podpath builds for: where operators run kubectl. Off
// Linux the cluster commands run; the agent, the lab and facts say they need Linux.
var DefaultPlatforms = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64"

// epoch is every archive entry's time: the same binaries give the same archives and sha256.
var epoch = time.Unix(0, 0).UTC()

// semverRE is the version krew accepts (its semver.Parse wants the leading v).
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type options struct {
	version, out, pkg, tmpl, baseURL, ldflags, license, binaries string
	platforms                                                    []platform
}

type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// bin is the executable's name on p: Windows runs only what ends in .exe.
func (p platform) bin() string {
	if p.OS == "windows" {
		return Bin + ".exe"
	}
	return Bin
}

// manifestData fills the template.
type manifestData struct {
	Version   string
	Platforms []manifestPlatform
}

type manifestPlatform struct {
	OS, Arch, URI, SHA256, Bin string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("krew", flag.ContinueOnError)
	fs.StringVar(&o.version, "version", "", "the release's version, vMAJOR.MINOR.PATCH (required: krew wants a semantic version)")
	fs.StringVar(&o.out, "o", "dist", "output directory for the archives and podpath.yaml")
	fs.StringVar(&o.pkg, "package", "./cmd/podpath", "the Go package of the binary")
	fs.StringVar(&o.tmpl, "template", "deploy/krew/podpath.yaml.tmpl", "the manifest template")
	fs.StringVar(&o.baseURL, "base-url", "https://github.com/podpath/podpath/releases/download/{{.Version}}", "where the archives are published (a template: {{.Version}})")
	fs.StringVar(&o.ldflags, "ldflags", "", "go build -ldflags (the Makefile passes the version stamp)")
	fs.StringVar(&o.license, "license", "LICENSE", "license file to ship in each archive; skipped when it does not exist")
	fs.StringVar(&o.binaries, "binaries", "", "use prebuilt binaries DIR/<os>_<arch>/"+Bin+" (.exe on windows) instead of building them")
	plats := fs.String("platforms", DefaultPlatforms, "comma-separated os/arch list")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !semverRE.MatchString(o.version) {
		return o, fmt.Errorf("-version %q: krew needs a semantic version such as v0.1.0 (make krew VERSION=v0.1.0)", o.version)
	}
	for s := range strings.SplitSeq(*plats, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(s), "/")
		if !ok || goos == "" || arch == "" {
			return o, fmt.Errorf("-platforms: %q is not os/arch", s)
		}
		o.platforms = append(o.platforms, platform{goos, arch})
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	base, err := execString(o.baseURL, o)
	if err != nil {
		return fmt.Errorf("-base-url: %w", err)
	}
	var license []byte
	if b, err := os.ReadFile(o.license); err == nil {
		license = b
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read the license: %w", err)
	}
	data := manifestData{Version: o.version}
	for _, p := range o.platforms {
		bin, err := binary(ctx, o, p)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s_%s_%s_%s.tar.gz", Bin, o.version, p.OS, p.Arch)
		sum, err := writeArchive(filepath.Join(o.out, name), p.bin(), bin, license)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		data.Platforms = append(data.Platforms, manifestPlatform{OS: p.OS, Arch: p.Arch,
			URI: strings.TrimSuffix(base, "/") + "/" + name, SHA256: sum, Bin: p.bin()})
		fmt.Fprintf(stdout, "%s  %s\n", sum, filepath.Join(o.out, name))
	}
	tmpl, err := os.ReadFile(o.tmpl)
	if err != nil {
		return fmt.Errorf("read the manifest template: %w", err)
	}
	manifest, err := renderManifest(string(tmpl), data)
	if err != nil {
		return err
	}
	if err := Validate(manifest, PluginName); err != nil {
		return fmt.Errorf("the manifest %s renders is invalid: %w", o.tmpl, err)
	}
	path := filepath.Join(o.out, PluginName+".yaml")
	if err := os.WriteFile(path, manifest, 0o644); err != nil {
		return fmt.Errorf("write the manifest: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s; try it: kubectl krew install --manifest=%s --archive=%s\n", path, path,
		filepath.Join(o.out, fmt.Sprintf("%s_%s_%s_%s.tar.gz", Bin, o.version, "linux", "amd64")))
	if len(license) == 0 {
		fmt.Fprintf(stdout, "note: no %s: the archives carry none (the krew index requires one)\n", o.license)
	}
	return nil
}

func execString(text string, data any) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// The options struct's Version field for -base-url's template.
func (o options) Version() string { return o.version }

// binary builds the static binary for p, or reads the prebuilt one.
func binary(ctx context.Context, o options, p platform) ([]byte, error) {
	if o.binaries != "" {
		b, err := os.ReadFile(filepath.Join(o.binaries, p.OS+"_"+p.Arch, p.bin()))
		if err != nil {
			return nil, fmt.Errorf("prebuilt binary for %s: %w", p, err)
		}
		return b, nil
	}
	dir, err := os.MkdirTemp("", "podpath-krew-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", p, err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, Bin)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	// -trimpath: no path of the build machine in a released binary.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", o.ldflags, "-o", out, o.pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s for %s: %w\n%s", o.pkg, p, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", p, err)
	}
	return b, nil
}

// writeArchive writes a .tar.gz with the binary (and the license) at its root and returns its
// sha256 in hex, as the manifest carries it.
func writeArchive(path, binName string, bin, license []byte) (string, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.ModTime = epoch
	tw := tar.NewWriter(gz)
	files := []struct {
		name string
		mode int64
		data []byte
	}{{binName, 0o755, bin}}
	if len(license) > 0 {
		files = append(files, struct {
			name string
			mode int64
			data []byte
		}{"LICENSE", 0o644, license})
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch,
			Typeflag: tar.TypeReg, Uname: "root", Gname: "root", Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

func renderManifest(tmpl string, data manifestData) ([]byte, error) {
	t, err := template.New("manifest").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("parse the manifest template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render the manifest: %w", err)
	}
	return b.Bytes(), nil
}

// Plugin is the part of krew's index.Plugin (v1alpha2) a manifest may carry.
type Plugin struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       PluginSpec        `json:"spec"`
}

// PluginSpec is krew's index.PluginSpec.
type PluginSpec struct {
	Version          string     `json:"version"`
	ShortDescription string     `json:"shortDescription"`
	Description      string     `json:"description,omitempty"`
	Caveats          string     `json:"caveats,omitempty"`
	Homepage         string     `json:"homepage,omitempty"`
	Platforms        []Platform `json:"platforms"`
}

// Platform is krew's index.Platform.
type Platform struct {
	URI      string                `json:"uri"`
	Sha256   string                `json:"sha256"`
	Selector *metav1.LabelSelector `json:"selector"`
	Files    []FileOperation       `json:"files,omitempty"`
	Bin      string                `json:"bin"`
}

// FileOperation is krew's index.FileOperation.
type FileOperation struct {
	From string `json:"from"`
	To   string `json:"to"`
}

var (
	safeName = regexp.MustCompile(`^[\w-]+$`)
	sha256RE = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// krew's supported platforms: a selector must pick one of them and no two platforms the same.
	krewPlatforms = []platform{{"windows", "386"}, {"windows", "amd64"}, {"windows", "arm64"},
		{"linux", "386"}, {"linux", "amd64"}, {"linux", "arm"}, {"linux", "arm64"},
		{"darwin", "386"}, {"darwin", "amd64"}, {"darwin", "arm64"}}
)

// Validate checks a manifest as krew v0.4.3 does (its internal/index/validation.ValidatePlugin
// and cmd/validate-krew-manifest, which another module cannot import): strict decoding, the
// API version and kind, the name, a one-line short description, a semantic version, and per
// platform a URI, a sha256, bin, valid files and an os/arch selector that matches a platform
// krew knows and overlaps no other.
func Validate(manifest []byte, name string) error {
	var p Plugin
	if err := yaml.UnmarshalStrict(manifest, &p); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	switch {
	case p.APIVersion != apiVersion:
		return fmt.Errorf("apiVersion %q; want %s", p.APIVersion, apiVersion)
	case p.Kind != kind:
		return fmt.Errorf("kind %q; want %s", p.Kind, kind)
	case !safeName.MatchString(name) || p.Metadata.Name != name:
		return fmt.Errorf("name %q; want %q (the file's name)", p.Metadata.Name, name)
	case p.Spec.ShortDescription == "" || strings.ContainsAny(p.Spec.ShortDescription, "\r\n"):
		return fmt.Errorf("shortDescription %q: one line, required", p.Spec.ShortDescription)
	case !semverRE.MatchString(p.Spec.Version):
		return fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH", p.Spec.Version)
	case len(p.Spec.Platforms) == 0:
		return errors.New("no platforms")
	}
	matched := map[platform]int{}
	for i, pl := range p.Spec.Platforms {
		switch {
		case pl.URI == "":
			return fmt.Errorf("platforms[%d]: uri required", i)
		case !sha256RE.MatchString(pl.Sha256):
			return fmt.Errorf("platforms[%d]: sha256 %q is not 64 lower-case hex digits", i, pl.Sha256)
		case pl.Bin == "":
			return fmt.Errorf("platforms[%d]: bin required", i)
		case pl.Files != nil && len(pl.Files) == 0:
			return fmt.Errorf("platforms[%d]: files must be absent or non-empty", i)
		}
		for _, f := range pl.Files {
			if f.From == "" || f.To == "" {
				return fmt.Errorf("platforms[%d]: files need from and to", i)
			}
		}
		sel, err := selector(pl.Selector)
		if err != nil {
			return fmt.Errorf("platforms[%d]: %w", i, err)
		}
		selects := false
		for _, kp := range krewPlatforms {
			if sel.Matches(labelsOf(kp)) {
				selects = true
				if j, dup := matched[kp]; dup {
					return fmt.Errorf("platforms[%d] and [%d] both select %s", j, i, kp)
				}
				matched[kp] = i
			}
		}
		if !selects {
			return fmt.Errorf("platforms[%d]: selector %v matches no platform krew supports", i, pl.Selector)
		}
	}
	return nil
}

func labelsOf(p platform) labels.Set { return labels.Set{"os": p.OS, "arch": p.Arch} }

// selector converts a platform selector, refusing what krew refuses: none, an empty one, or
// keys other than os and arch.
func selector(sel *metav1.LabelSelector) (labels.Selector, error) {
	if sel == nil || sel.MatchLabels == nil && len(sel.MatchExpressions) == 0 {
		return nil, errors.New("selector required")
	}
	if sel.MatchLabels != nil && len(sel.MatchLabels) == 0 || sel.MatchExpressions != nil && len(sel.MatchExpressions) == 0 {
		return nil, errors.New("selector: matchLabels or matchExpressions given but empty")
	}
	for k := range sel.MatchLabels {
		if k != "os" && k != "arch" {
			return nil, fmt.Errorf("selector key %q: krew supports os and arch", k)
		}
	}
	for _, e := range sel.MatchExpressions {
		if e.Key != "os" && e.Key != "arch" {
			return nil, fmt.Errorf("selector key %q: krew supports os and arch", e.Key)
		}
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	return s, nil
}
