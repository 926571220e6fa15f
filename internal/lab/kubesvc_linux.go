package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"podpath/internal/image"
	"podpath/internal/nsenter"
	"podpath/internal/version"
)

// Bounds of the lab's small services.
const (
	forwardDialTimeout = 5 * time.Second
	registryTimeout    = 2 * time.Minute // pushing the lab's images into it
	BusyboxPath        = "/bin/busybox"  // Debian's busybox-static
)

// RunForward listens on listen (in the calling process's namespace, the
// machine's) and carries each connection to `to`, dialled from inside
// netnsName. It writes the address it listens on to readyFile.
func RunForward(ctx context.Context, netnsName, to, listen, readyFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	defer ln.Close()
	if err := os.WriteFile(readyFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	d := &net.Dialer{Timeout: forwardDialTimeout}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, forwardDialTimeout)
			up, err := nsenter.DialContext(dctx, netnsName, d, "tcp", to)
			cancel()
			if err != nil {
				log.Printf("forward: dial %s in %s: %v", to, netnsName, err)
				return
			}
			defer up.Close()
			splice(c, up)
		}()
	}
}

// splice copies both ways until either side closes.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// RunRegistry serves an OCI registry (go-containerregistry's) on listen,
// blobs kept on disk under dir. Every node's containerd has it as the
// mirror of docker.io, registry.k8s.io and quay.io.
func RunRegistry(ctx context.Context, listen, dir, readyFile string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)),
		registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	if err := os.WriteFile(readyFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// RunPause holds a Pod's namespaces: the sandbox's one process, as the
// pause image's. It reaps the children it inherits and exits on SIGTERM or
// SIGINT.
func RunPause() error {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return nil
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return nil
}

// startRegistry runs the registry in the control plane's namespace and
// pushes the lab's images into it: podpath's (its agents and calico-node's
// stand-in), the pause image, busybox and CoreDNS (from dnsBin).
func startRegistry(ctx context.Context, s *Spec, exe, dnsBin string) error {
	dir := cpDir(s.Name)
	ready := filepath.Join(dir, "registry.addr")
	_ = os.Remove(ready)
	d := daemon{name: "registry", netns: s.ControlPlane, dir: dir, argv: []string{exe, "lab", "registry",
		"--listen", net.JoinHostPort("0.0.0.0", fmt.Sprint(RegistryPort)), "--dir", filepath.Join(dir, "registry"),
		"--ready", ready, "--id", "podpath-registry:" + Dir(s.Name)}}
	proc, err := d.start()
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		for pidAlive(proc.Pid, "") {
			time.Sleep(100 * time.Millisecond)
		}
		close(exited)
	}()
	if _, err := waitFile(ctx, ready, exited, 10*time.Second); err != nil {
		return fmt.Errorf("registry: %w (its log: %s)", err, filepath.Join(dir, "registry.log"))
	}
	return pushImages(ctx, s, exe, dnsBin)
}

func pushImages(ctx context.Context, s *Spec, exe, dnsBin string) error {
	bin, err := os.ReadFile(exe)
	if err != nil {
		return err
	}
	podpath, err := image.Build(bin, version.Version)
	if err != nil {
		return fmt.Errorf("podpath image: %w", err)
	}
	pause, err := image.Pause(podpath)
	if err != nil {
		return err
	}
	busybox, err := image.Busybox(BusyboxPath)
	if err != nil {
		return fmt.Errorf("%w (install Debian's busybox-static: scripts/deps.sh does)", err)
	}
	coreBin, err := os.ReadFile(filepath.Join(dnsBin, "coredns"))
	if err != nil {
		return fmt.Errorf("CoreDNS's binary: %w (scripts/dns-tools.sh builds it)", err)
	}
	coredns, err := image.CoreDNS(coreBin, CoreDNSVersion)
	if err != nil {
		return err
	}
	// The groups go up side by side (gzip is most of the time); within a
	// group one image after the other: they share podpath's layer, which
	// so goes up once.
	groups := [][]struct {
		ref string
		img v1.Image
	}{
		{{version.Image(), podpath}, {"podpath/podpath:latest", podpath}, {PauseImage, pause}},
		{{"busybox:latest", busybox}},
		{{CoreDNSImage, coredns}},
	}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nsenter.DialContext(ctx, s.ControlPlane, &net.Dialer{Timeout: forwardDialTimeout}, network, addr)
	}}
	defer tr.CloseIdleConnections()
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			for _, im := range g {
				if err := pushImage(ctx, tr, im.ref, im.img); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pushImage puts img into the lab's registry under ref's path.
func pushImage(ctx context.Context, tr http.RoundTripper, ref string, img v1.Image) error {
	src, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	// The registry holds each image under its path, whatever registry
	// the name says: the nodes' mirrors ask it for that path.
	dst, err := name.ParseReference(registryAddr()+"/"+src.Context().RepositoryStr()+":"+src.Identifier(), name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
		return fmt.Errorf("push %s into the lab's registry: %w", ref, err)
	}
	return nil
}
