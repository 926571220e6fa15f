package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"podpath/internal/image"
)

// staticBinary writes a minimal static x86-64 Linux executable (exit(0): an ELF header, one
// loadable segment, no interpreter), so the test needs no toolchain and runs as any user.
func staticBinary(t *testing.T) string {
	t.Helper()
	const base = 0x400000
	code := []byte{0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov eax, 60; xor edi, edi; syscall
	hdr := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + 64 + 56,
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     1,
	}
	size := uint64(64 + 56 + len(code))
	prog := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base,
		Filesz: size, Memsz: size, Align: 0x1000}
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&b, binary.LittleEndian, prog); err != nil {
		t.Fatal(err)
	}
	b.Write(code)
	path := filepath.Join(t.TempDir(), "podpath")
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// files reads every regular file of the image's layers, with its header.
func files(t *testing.T, img v1.Image) map[string]struct {
	hdr  *tar.Header
	data []byte
} {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		hdr  *tar.Header
		data []byte
	}{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = struct {
				hdr  *tar.Header
				data []byte
			}{h, b}
		}
		rc.Close()
	}
	return out
}

func TestBuildTarball(t *testing.T) {
	bin := staticBinary(t)
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dist", "podpath-image.tar")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-binary", bin, "-o", out, "-tag", "podpath/podpath:v0.0.1-test"}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "docker load -i "+out) {
		t.Errorf("output %q does not say how to load the tarball", stdout.String())
	}
	// What docker load reads: the tarball's manifest names the tag.
	tag, err := name.NewTag("podpath/podpath:v0.0.1-test")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read the tarball back as podpath/podpath:v0.0.1-test: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/podpath"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q, cmd %q; want [/podpath] and no cmd (the chart passes args)", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.Config.User != "65534:65534" {
		t.Errorf("user %q; want 65534:65534", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if l := cf.Config.Labels; l["org.opencontainers.image.version"] != "v0.0.1-test" || l["org.opencontainers.image.title"] != "podpath" {
		t.Errorf("labels %v; want the version from the tag and the title", l)
	}
	fs := files(t, img)
	p, ok := fs["podpath"]
	if !ok {
		t.Fatalf("no /podpath in the image: %q", slices.Sorted(maps.Keys(fs)))
	}
	if p.hdr.Mode != 0o755 || p.hdr.Uid != 0 || p.hdr.Gid != 0 {
		t.Errorf("/podpath mode %o uid %d gid %d; want 0755 root:root", p.hdr.Mode, p.hdr.Uid, p.hdr.Gid)
	}
	if !bytes.Equal(p.data, want) {
		t.Errorf("/podpath differs from the binary given (%d bytes; want %d)", len(p.data), len(want))
	}
	if !strings.Contains(string(fs["etc/passwd"].data), "nobody:x:65534:65534:") || !strings.Contains(string(fs["etc/group"].data), "nobody:x:65534:") {
		t.Errorf("/etc/passwd, /etc/group do not name uid/gid 65534:\n%s%s", fs["etc/passwd"].data, fs["etc/group"].data)
	}

	// The same binary gives the same image: nothing of the build's time or place gets in.
	again, err := image.Build(want, "v0.0.1-test")
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of one binary: digests %s and %s", d1, d2)
	}
}

// -push writes the image to a registry (go-containerregistry's, on loopback) that serves it back.
func TestPush(t *testing.T) {
	bin := staticBinary(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	dst := u.Host + "/podpath/podpath:v0.0.1-test"
	out := filepath.Join(t.TempDir(), "img.tar")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-binary", bin, "-o", out, "-tag", "podpath/podpath:v0.0.1-test", "-push", dst}, &stdout); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(dst)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", dst, err)
	}
	local, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := pulled.Digest()
	d2, _ := local.Digest()
	if d1 != d2 {
		t.Errorf("pushed %s; the tarball holds %s", d1, d2)
	}
	if !strings.Contains(stdout.String(), "pushed ") {
		t.Errorf("output %q does not report the push", stdout.String())
	}
}

func TestRefuses(t *testing.T) {
	if _, err := image.Build([]byte("#!/bin/sh\necho not a binary\n"), "v1"); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("a shell script: %v; want it refused as no ELF", err)
	}
	// A dynamically linked binary would not start FROM scratch. /bin/sh is one on every
	// distribution that has a libc.
	dyn, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skipf("skipped: no /bin/sh to use as a dynamic binary: %v", err)
	}
	if _, err := image.StaticLinux(dyn); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("/bin/sh: %v; want it refused as dynamically linked", err)
	}
	if err := run(context.Background(), []string{"-binary", "/nonexistent/podpath", "-o", filepath.Join(t.TempDir(), "x.tar")}, io.Discard); err == nil {
		t.Errorf("a missing binary: no error")
	}
	if err := run(context.Background(), []string{"-binary", "/bin/sh", "-tag", "Not A Tag!"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-tag") {
		t.Errorf("a bad tag: %v; want it named", err)
	}
}
