package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// krewVersion is the krew whose own validator and installer TestKrewInstall runs.
const krewVersion = "v0.4.3"

const tmplPath = "../../deploy/krew/podpath.yaml.tmpl"

// fakeBinaries writes a distinct stand-in binary per platform in the -binaries layout.
func fakeBinaries(t *testing.T, plats ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range plats {
		d := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		name := Bin
		if strings.HasPrefix(p, "windows/") {
			name += ".exe"
		}
		if err := os.WriteFile(filepath.Join(d, name), []byte("binary for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type entry struct {
	hdr  *tar.Header
	data string
}

// untar reads an archive's entries.
func untar(t *testing.T, path string) map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = entry{h, string(b)}
	}
}

func readManifest(t *testing.T, path string) Plugin {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p Plugin
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerate(t *testing.T) {
	all := []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}
	bins := fakeBinaries(t, all...)
	out := filepath.Join(t.TempDir(), "dist")
	license := filepath.Join(t.TempDir(), "LICENSE")
	if err := os.WriteFile(license, []byte("license text"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	args := []string{"-version", "v0.2.0", "-o", out, "-binaries", bins, "-template", tmplPath, "-license", license}
	if err := run(context.Background(), args, &stdout); err != nil {
		t.Fatal(err)
	}
	p := readManifest(t, filepath.Join(out, "podpath.yaml"))
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Metadata.Name != "podpath" ||
		p.Spec.Version != "v0.2.0" || p.Spec.Homepage != "https://github.com/podpath/podpath" || p.Spec.ShortDescription == "" || p.Spec.Caveats == "" {
		t.Errorf("manifest header: %+v", p)
	}
	if len(p.Spec.Platforms) != len(all) {
		t.Fatalf("%d platforms; want %v (the default)", len(p.Spec.Platforms), all)
	}
	for i, plat := range all {
		goos, arch, _ := strings.Cut(plat, "/")
		bin := Bin
		if goos == "windows" {
			bin += ".exe" // Windows runs only what ends in .exe
		}
		pl := p.Spec.Platforms[i]
		name := "kubectl-podpath_v0.2.0_" + goos + "_" + arch + ".tar.gz"
		if pl.Selector.MatchLabels["os"] != goos || pl.Selector.MatchLabels["arch"] != arch {
			t.Errorf("platform %d selects %v; want %s", i, pl.Selector.MatchLabels, plat)
		}
		if want := "https://github.com/podpath/podpath/releases/download/v0.2.0/" + name; pl.URI != want {
			t.Errorf("uri %s; want %s", pl.URI, want)
		}
		if pl.Bin != bin {
			t.Errorf("%s: bin %q; want %q", plat, pl.Bin, bin)
		}
		archive := filepath.Join(out, name)
		data, err := os.ReadFile(archive)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != pl.Sha256 {
			t.Errorf("%s: sha256 %x; the manifest says %s", name, sum, pl.Sha256)
		}
		if !strings.Contains(stdout.String(), pl.Sha256+"  "+archive) {
			t.Errorf("output does not list %s with its sha256:\n%s", name, stdout.String())
		}
		entries := untar(t, archive)
		e, ok := entries[bin]
		if !ok || e.hdr.Mode != 0o755 || e.data != "binary for "+plat {
			t.Errorf("%s: %s entry %+v; want the binary for %s, mode 0755", name, bin, e, plat)
		}
		if l, ok := entries["LICENSE"]; !ok || l.data != "license text" {
			t.Errorf("%s: no LICENSE", name)
		}
		if len(entries) != 2 {
			t.Errorf("%s: %d entries; want the binary and LICENSE", name, len(entries))
		}
	}

	// Same binaries, same archives: a release can be rebuilt and checked.
	out2 := filepath.Join(t.TempDir(), "dist")
	args[3] = out2
	if err := run(context.Background(), args, io.Discard); err != nil {
		t.Fatal(err)
	}
	if p2 := readManifest(t, filepath.Join(out2, "podpath.yaml")); p2.Spec.Platforms[0].Sha256 != p.Spec.Platforms[0].Sha256 {
		t.Errorf("two runs over the same binaries: sha256 %s and %s", p.Spec.Platforms[0].Sha256, p2.Spec.Platforms[0].Sha256)
	}
}

func TestRefusesBadInput(t *testing.T) {
	bins := fakeBinaries(t, "linux/amd64")
	for name, args := range map[string][]string{
		"no_version":          {"-binaries", bins},
		"git_describe":        {"-version", "ce08b83-dirty", "-binaries", bins},
		"no_v":                {"-version", "0.1.0", "-binaries", bins},
		"missing_binary":      {"-version", "v0.1.0", "-binaries", bins, "-platforms", "linux/arm64"},
		"bad_platform":        {"-version", "v0.1.0", "-binaries", bins, "-platforms", "linux"},
		"platform_krew_lacks": {"-version", "v0.1.0", "-binaries", fakeBinaries(t, "plan9/amd64"), "-platforms", "plan9/amd64"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(args, "-o", t.TempDir(), "-template", tmplPath)
			if err := run(context.Background(), args, io.Discard); err == nil {
				t.Errorf("run %q: no error", args)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := `apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata: {name: podpath}
spec:
  version: v0.1.0
  shortDescription: one line
  platforms:
    - selector: {matchLabels: {os: linux, arch: amd64}}
      uri: https://example.invalid/a.tar.gz
      sha256: ` + strings.Repeat("a", 64) + `
      bin: kubectl-podpath
`
	if err := Validate([]byte(good), "podpath"); err != nil {
		t.Fatalf("a good manifest: %v", err)
	}
	for name, edit := range map[string][2]string{
		"api_version":        {"v1alpha2", "v1alpha1"},
		"kind":               {"kind: Plugin", "kind: Plugins"},
		"name":               {"name: podpath", "name: other"},
		"version":            {"v0.1.0", "0.1"},
		"short_description":  {"shortDescription: one line", "shortDescription: \"two\\nlines\""},
		"sha256_upper":       {strings.Repeat("a", 64), strings.Repeat("A", 64)},
		"sha256_short":       {strings.Repeat("a", 64), "abc"},
		"no_bin":             {"bin: kubectl-podpath", "bin: \"\""},
		"selector_key":       {"os: linux, arch: amd64", "os: linux, distro: debian"},
		"selector_matches_0": {"os: linux, arch: amd64", "os: linux, arch: sparc"},
		"unknown_field":      {"bin: kubectl-podpath", "bin: kubectl-podpath\n      binary: x"},
		"overlap": {"bin: kubectl-podpath\n", "bin: kubectl-podpath\n    - selector: {matchLabels: {os: linux}}\n      uri: u\n      sha256: " +
			strings.Repeat("b", 64) + "\n      bin: kubectl-podpath\n"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(good, edit[0], edit[1], 1)
			if bad == good {
				t.Fatalf("edit %q changed nothing", edit[0])
			}
			if err := Validate([]byte(bad), "podpath"); err == nil {
				t.Errorf("no error for:\n%s", bad)
			}
		})
	}
}

// hello writes a module with a main that prints its stamped version, as cmd/podpath's
// `version` does, so the real go build path runs in seconds instead of minutes.
func hello(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module hello\n\ngo 1.22\n",
		"main.go": "package main\n\nvar version = \"dev\"\n\nfunc main() { println(\"kubectl-podpath\", version) }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Without -binaries the tool builds each platform with the go command: static, for that
// architecture, with the -ldflags given.
func TestBuildsWithGo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: compiles the standard library for two platforms")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: no go command")
	}
	tmpl, err := filepath.Abs(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	t.Chdir(hello(t))
	args := []string{"-version", "v0.3.0", "-o", out, "-package", ".", "-template", tmpl,
		"-ldflags", "-s -w -X main.version=v0.3.0", "-platforms", "linux/amd64,linux/arm64"}
	if err := run(context.Background(), args, io.Discard); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("skipped: the go command cannot build here as this user (its caches are root's): %v", err)
		}
		t.Fatal(err)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		entries := untar(t, filepath.Join(out, "kubectl-podpath_v0.3.0_linux_"+arch+".tar.gz"))
		e, ok := entries[Bin]
		if !ok {
			t.Fatalf("linux/%s: no %s in the archive", arch, Bin)
		}
		f, err := elf.NewFile(strings.NewReader(e.data))
		if err != nil {
			t.Fatalf("linux/%s: %v", arch, err)
		}
		if f.Machine != machine {
			t.Errorf("linux/%s: built for %s", arch, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("linux/%s: dynamically linked; want CGO_ENABLED=0", arch)
			}
		}
		if runtime.GOOS == "linux" && runtime.GOARCH == arch {
			bin := filepath.Join(t.TempDir(), Bin)
			if err := os.WriteFile(bin, []byte(e.data), 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := exec.Command(bin).CombinedOutput()
			if err != nil || strings.TrimSpace(string(got)) != "kubectl-podpath v0.3.0" {
				t.Errorf("the built binary says %q (%v); want the version stamped by -ldflags", got, err)
			}
		}
	}
}

// krew's own checks on what the tool writes: its validate-krew-manifest, then `krew install
// --manifest --archive` into a scratch KREW_ROOT and `kubectl podpath` through the installed
// plugin. Both are built from sigs.k8s.io/krew with the go command (their module cannot be a
// dependency of this one: its validation is internal and it requires client-go v11).
func TestKrewInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds krew " + krewVersion)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("skipped: installs the linux/amd64 or linux/arm64 archive, not %s/%s's", runtime.GOOS, runtime.GOARCH)
	}
	gobin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, tool := range []string{"validate-krew-manifest", "krew"} {
		cmd := exec.CommandContext(ctx, "go", "install", "sigs.k8s.io/krew/cmd/"+tool+"@"+krewVersion)
		cmd.Dir = gobin // outside this module: krew's own go.mod decides its dependencies
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			if os.Geteuid() != 0 {
				t.Skipf("skipped: cannot build krew's %s as this user (the go command's caches are root's): %v\n%s", tool, err, out)
			}
			t.Fatalf("build krew's %s: %v\n%s", tool, err, out)
		}
	}

	// A real static binary for this machine, so that kubectl can run the installed plugin.
	bins := t.TempDir()
	plat := "linux_" + runtime.GOARCH
	if err := os.MkdirAll(filepath.Join(bins, plat), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bins, plat, Bin), "-ldflags", "-X main.version=v0.4.0", ".")
	build.Dir = hello(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test plugin: %v\n%s", err, out)
	}
	for _, p := range strings.Split(DefaultPlatforms, ",") {
		goos, arch, _ := strings.Cut(p, "/")
		if goos+"_"+arch == plat {
			continue
		}
		name := Bin
		if goos == "windows" {
			name += ".exe"
		}
		if err := os.MkdirAll(filepath.Join(bins, goos+"_"+arch), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bins, goos+"_"+arch, name), []byte("not for this machine"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	if err := run(ctx, []string{"-version", "v0.4.0", "-o", out, "-binaries", bins, "-template", tmplPath}, io.Discard); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "podpath.yaml")

	// Nothing here may reach the network: a proxy nobody listens on makes any attempt fail.
	offline := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9"}
	v := exec.CommandContext(ctx, filepath.Join(gobin, "validate-krew-manifest"), "-manifest", manifest, "-skip-install")
	v.Env = offline
	if msg, err := v.CombinedOutput(); err != nil {
		t.Fatalf("krew's validate-krew-manifest refuses the manifest: %v\n%s", err, msg)
	}
	root := t.TempDir()
	archive := filepath.Join(out, "kubectl-podpath_v0.4.0_"+plat+".tar.gz")
	install := exec.CommandContext(ctx, filepath.Join(gobin, "krew"), "install", "--manifest="+manifest, "--archive="+archive)
	install.Env = append(offline, "KREW_ROOT="+root, "KREW_OS=linux", "KREW_ARCH="+runtime.GOARCH)
	if msg, err := install.CombinedOutput(); err != nil {
		t.Fatalf("krew install --manifest --archive: %v\n%s", err, msg)
	}
	plugin := filepath.Join(root, "bin", Bin)
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("krew installed no %s: %v", plugin, err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("no kubectl: the installed plugin was not run through it")
		return
	}
	plug := exec.CommandContext(ctx, kubectl, "podpath")
	plug.Env = []string{"PATH=" + filepath.Join(root, "bin") + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	got, err := plug.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "kubectl-podpath v0.4.0" {
		t.Errorf("kubectl podpath through the krew-installed plugin: %q (%v)", got, err)
	}
}
