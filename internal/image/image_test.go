package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"slices"
	"testing"
)

// The busybox image carries the applets operators type (sh, ping, sleep,
// wget) as links to the static binary, and sh as its command.
func TestBusybox(t *testing.T) {
	const path = "/bin/busybox"
	if _, err := os.Stat(path); err != nil {
		t.Skip("no /bin/busybox: install Debian's busybox-static (scripts/deps.sh does)")
	}
	if _, err := StaticLinux(mustRead(t, path)); err != nil {
		t.Skipf("%s is not static (Debian's busybox, not busybox-static): %v", path, err)
	}
	img, err := Busybox(path)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Cmd, []string{"sh"}) || cf.OS != "linux" {
		t.Errorf("config %+v: want cmd [sh] on linux", cf.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	links := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
		}
	}
	for _, a := range []string{"bin/sh", "bin/ping", "bin/sleep", "bin/wget", "bin/ip"} {
		if links[a] != "busybox" {
			t.Errorf("%s: link to %q, want busybox (%d links)", a, links[a], len(links))
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The CoreDNS image runs /coredns (the Deployment gives the arguments) as
// root, so its NET_BIND_SERVICE capability lets it bind port 53, and holds
// the binary there, with every timestamp at the epoch.
func TestCoreDNS(t *testing.T) {
	bin := tinyELF(t)
	img, err := CoreDNS(bin, "v1.15.0")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/coredns"}) || len(cf.Config.Cmd) != 0 || cf.Config.User != "0:0" ||
		cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(epoch) {
		t.Errorf("config %+v (%s/%s, created %s): want entrypoint [/coredns], no cmd, user 0:0, linux/amd64, the epoch",
			cf.Config, cf.OS, cf.Architecture, cf.Created)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	found := false
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %s, want the epoch", h.Name, h.ModTime)
		}
		if h.Name == "coredns" {
			data, _ := io.ReadAll(tr)
			found = h.Mode&0o111 != 0 && bytes.Equal(data, bin)
		}
	}
	if !found {
		t.Error("no executable /coredns with the binary's bytes in the layer")
	}
	again, err := CoreDNS(bin, "v1.15.0")
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digests %s and %s: the same binary must give the same image", d1, d2)
	}
	if _, err := CoreDNS([]byte("#!/bin/sh\n"), "v1.15.0"); err == nil {
		t.Error("a shell script was taken as CoreDNS's binary")
	}
}

// tinyELF is the smallest file debug/elf takes as a static x86-64
// executable: its header alone, no program headers (so no interpreter).
func tinyELF(t *testing.T) []byte {
	t.Helper()
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
