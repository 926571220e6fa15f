// Command image builds podpath's container image without a container daemon: FROM scratch, the
// static podpath binary as /podpath (the entrypoint), and /etc/passwd and /etc/group naming root
// and nobody. It writes a tarball that `docker load` and `podman load` read and, with -push,
// pushes the image to a registry with the credentials docker or podman login stored.
//
//	go run ./scripts/image -binary bin/podpath -o dist/podpath-image.tar -tag podpath/podpath:v0.1.0 [-push REF]
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// User is the image's default user: nobody. The chart's Pod agent runs as it (the
	// "restricted" Pod Security level wants a non-root user); the host agent's Pod sets
	// runAsUser 0 explicitly, as it reads root-only host state.
	User = "65534:65534"
	// Entrypoint is where the binary lives in the image; the chart passes arguments only.
	Entrypoint = "/podpath"
	// pushTimeout bounds a push: the image is one layer of a few tens of megabytes.
	pushTimeout = 5 * time.Minute
)

// epoch is every timestamp in the image: the same binary gives the same image digest, whenever
// and wherever it is built.
var epoch = time.Unix(0, 0).UTC()

var passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
`

var group = `root:x:0:
nobody:x:65534:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binary := fs.String("binary", "bin/podpath", "the podpath binary: static (CGO_ENABLED=0), Linux")
	out := fs.String("o", "dist/podpath-image.tar", "where to write the image tarball (docker load / podman load)")
	tag := fs.String("tag", "podpath/podpath:dev", "the image's name in the tarball")
	version := fs.String("version", "", "org.opencontainers.image.version (default: -tag's tag)")
	push := fs.String("push", "", "also push the image to this reference (REGISTRY/REPO:TAG), with docker's or podman's stored credentials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", *tag, err)
	}
	if *version == "" {
		*version = ref.TagStr()
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("read the binary: %w", err)
	}
	img, err := Build(bin, *version)
	if err != nil {
		return fmt.Errorf("%s: %w", *binary, err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %s): docker load -i %s, or podman load -i %s\n", *out, ref, digest, *out, *out)
	if *push != "" {
		dst, err := name.ParseReference(*push)
		if err != nil {
			return fmt.Errorf("-push %q: %w", *push, err)
		}
		ctx, cancel := context.WithTimeout(ctx, pushTimeout)
		defer cancel()
		if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", dst, err)
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", dst.Context(), digest)
	}
	return nil
}

// Build makes the image from a static Linux binary: one layer, the config pointing at it.
func Build(binary []byte, version string) (v1.Image, error) {
	arch, err := staticLinux(binary)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "scripts/image: /podpath, /etc/passwd, /etc/group"}})
	if err != nil {
		return nil, fmt.Errorf("add the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{Entrypoint}
	cf.Config.User = User
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "podpath",
		"org.opencontainers.image.description": "podpath agent: Pod network diagnosis and monitoring for Kubernetes",
		"org.opencontainers.image.version":     version,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// staticLinux checks the binary can run FROM scratch (a Linux ELF executable with no
// interpreter: no libc to load there) and returns its Go architecture name.
func staticLinux(binary []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return "", fmt.Errorf("not an ELF executable (build it for Linux): %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("dynamically linked: an image FROM scratch has no libc (build with CGO_ENABLED=0)")
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	default:
		return "", fmt.Errorf("architecture %s: podpath images are amd64 or arm64", strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
}

// rootfs is the layer: the binary and the two files that give uid and gid 65534 a name (tools
// such as `ps` and `id` in a debug container read them).
func rootfs(binary []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/", 0o755, nil},
		{"etc/group", 0o644, []byte(group)},
		{"etc/passwd", 0o644, []byte(passwd)},
		{strings.TrimPrefix(Entrypoint, "/"), 0o755, binary},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), ModTime: epoch,
			Uid: 0, Gid: 0, Uname: "root", Gname: "root", Format: tar.FormatPAX, Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}
