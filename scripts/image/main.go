// Command image builds podpath's container image without a container daemon: FROM scratch, the
// static podpath binary as /podpath (the entrypoint), and /etc/passwd and /etc/group naming root
// and nobody. It writes a tarball that `docker load` and `podman load` read and, with -push,
// pushes the image to a registry with the credentials docker or podman login stored.
//
//	go run ./scripts/image -binary bin/podpath -o dist/podpath-image.tar -tag podpath/podpath:v0.1.0 [-push REF]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"podpath/internal/image"
)

// pushTimeout bounds a push: the image is one layer of a few tens of megabytes.
const pushTimeout = 5 * time.Minute

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
	img, err := image.Build(bin, *version)
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
