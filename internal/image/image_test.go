package image

import (
	"archive/tar"
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
