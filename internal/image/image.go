// Package image builds container images without a container daemon, FROM
// scratch: podpath's own (the static binary as /podpath) and, for the lab's
// real nodes, a busybox image from Debian's static busybox, a pause image and
// CoreDNS's (the cluster DNS, built from its Go module).
// Every timestamp is the epoch, so the same inputs give the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// User is the image's default user: nobody. The chart's Pod agent runs as it (the
	// "restricted" Pod Security level wants a non-root user); the host agent's Pod sets
	// runAsUser 0 explicitly, as it reads root-only host state.
	User = "65534:65534"
	// Entrypoint is where the binary lives in the image; the chart passes arguments only.
	Entrypoint = "/podpath"
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

func Build(binary []byte, version string) (v1.Image, error) {
	arch, err := StaticLinux(binary)
	if err != nil {
		return nil, err
	}
	img, err := oneLayer(Entrypoint, binary, "podpath image: /podpath, /etc/passwd, /etc/group")
	if err != nil {
		return nil, err
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
func StaticLinux(binary []byte) (string, error) {
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

// oneLayer is an image of rootfs's one layer, its history saying createdBy.
func oneLayer(path string, binary []byte, createdBy string) (v1.Image, error) {
	layerTar, err := rootfs(path, binary)
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
		Created: v1.Time{Time: epoch}, CreatedBy: createdBy}})
	if err != nil {
		return nil, fmt.Errorf("add the layer: %w", err)
	}
	return img, nil
}

// rootfs is the layer: the binary at path and the two files that give uid and gid 65534 a name
// (tools such as `ps` and `id` in a debug container read them).
func rootfs(path string, binary []byte) ([]byte, error) {
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
		{strings.TrimPrefix(path, "/"), 0o755, binary},
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

// Pause is the Pod sandbox image of the lab's nodes: podpath's own image
// (the same layer, so a node pulls it once) whose entrypoint holds the Pod's
// namespaces until signalled (`podpath lab pause`).
func Pause(podpath v1.Image) (v1.Image, error) {
	return withConfig(podpath, func(c *v1.Config) {
		c.Entrypoint = []string{Entrypoint, "lab", "pause"}
		c.User = "65535:65535"
		c.Labels = map[string]string{"org.opencontainers.image.title": "podpath lab pause"}
	})
}

// CoreDNSEntrypoint is where CoreDNS's image keeps its binary, as the
// official image does; the Deployment gives the arguments.
const CoreDNSEntrypoint = "/coredns"

// CoreDNS is a CoreDNS image from a static coredns binary: /coredns as the
// entrypoint, with no command (the Deployment passes `-conf
// /etc/coredns/Corefile`), and user 0:0 so that with NET_BIND_SERVICE, its
// one added capability, it binds port 53.
func CoreDNS(binary []byte, version string) (v1.Image, error) {
	arch, err := StaticLinux(binary)
	if err != nil {
		return nil, fmt.Errorf("coredns: %w", err)
	}
	img, err := oneLayer(CoreDNSEntrypoint, binary, "podpath image: CoreDNS "+version+" built from its Go module")
	if err != nil {
		return nil, err
	}
	return withArch(img, arch, func(c *v1.Config) {
		c.Entrypoint = []string{CoreDNSEntrypoint}
		c.User = "0:0"
		c.Labels = map[string]string{"org.opencontainers.image.title": "coredns", "org.opencontainers.image.version": version}
	})
}

// Busybox is a busybox image from a static busybox binary: /bin/busybox and
// a link per applet it lists, sh as the command, as the official image has.
func Busybox(path string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	arch, err := StaticLinux(bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	applets, err := busyboxApplets(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, data []byte) error {
		h.ModTime, h.Format, h.Uname, h.Gname = epoch, tar.FormatPAX, "root", "root"
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("layer %s: %w", h.Name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/", "var/", "proc/", "sys/", "dev/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := write(&tar.Header{Name: d, Mode: mode, Typeflag: tar.TypeDir}, nil); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, data string }{{"etc/passwd", passwd}, {"etc/group", group}} {
		if err := write(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}, []byte(f.data)); err != nil {
			return nil, err
		}
	}
	if err := write(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}, bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := write(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "podpath image: Debian's static busybox"}})
	if err != nil {
		return nil, fmt.Errorf("add the layer: %w", err)
	}
	return withArch(img, arch, func(c *v1.Config) {
		c.Cmd = []string{"sh"}
		c.Env = []string{"PATH=/bin"}
	})
}

// busyboxApplets reads the applet names a busybox binary carries: they are
// stored as one NUL-separated list, and `busybox --list` prints the same.
func busyboxApplets(bin []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	defer f.Close()
	// The applet table is a run of sorted, NUL-terminated names starting
	// with "[\x00[[\x00": find it in the read-only data.
	for _, s := range f.Sections {
		if s.Name != ".rodata" {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("busybox: %w", err)
		}
		i := bytes.Index(data, []byte("[\x00[[\x00"))
		if i < 0 {
			break
		}
		var out []string
		for _, name := range bytes.Split(data[i:], []byte{0}) {
			if len(name) == 0 || !applet(name) {
				break
			}
			out = append(out, string(name))
		}
		sort.Strings(out)
		if len(out) > 10 {
			return out, nil
		}
	}
	return nil, errors.New("busybox: no applet list found (is it Debian's busybox-static?)")
}

func applet(name []byte) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '[' || c == '.') {
			return false
		}
	}
	return true
}

func withConfig(img v1.Image, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return withArch(img, cf.Architecture, edit)
}

func withArch(img v1.Image, arch string, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.WorkingDir = "/"
	edit(&cf.Config)
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return out, nil
}
