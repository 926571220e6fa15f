// Package kubetest runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver (RBAC and admission on), kube-controller-manager and
// kube-scheduler, built from their Go modules by scripts/kube-tools.sh and
// cached, started on loopback and stopped when the test ends.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"podpath/internal/kubeobj"
	"podpath/internal/toolbuild"
)

// Bounds of the control plane's start.
const (
	BuildTimeout = 45 * time.Minute // first build on a fresh machine; later runs hit the cache
	StartTimeout = 60 * time.Second
	ServiceCIDR  = "10.233.0.0/18"
)

// Env is a running control plane.
type Env struct {
	Dir        string // certificates, kubeconfigs, logs
	Kubeconfig string // admin (system:masters)
	Config     *rest.Config
	URL        string
	caCert     *x509.Certificate
	caKey      *rsa.PrivateKey
	apiserver  process  // the running kube-apiserver
	apiArgs    []string // how it was started, for RestartAPIServer
	bin        string
}

// Binaries builds (or finds in the cache) the control plane's binaries.
func Binaries(t testing.TB) string {
	t.Helper()
	return toolbuild.Run(t, "kube-tools.sh", BuildTimeout)
}

// Options shape a control plane.
type Options struct {
	// Controllers also starts kube-controller-manager and kube-scheduler.
	Controllers bool
	// EgressSocket, when set, is a Unix socket where an HTTP CONNECT proxy
	// (the lab's) carries the API server's connections into the cluster
	// network: the Pod and node proxy, logs. The Konnectivity set-up of
	// many managed clusters, with the lab in the place of the agents.
	EgressSocket string
}

// Start runs etcd and kube-apiserver (and, with controllers, the
// controller-manager and scheduler) until the test ends.
func Start(t testing.TB, controllers bool) *Env {
	t.Helper()
	return StartWith(t, Options{Controllers: controllers})
}

// StartWith runs a control plane shaped by opts until the test ends.
// It skips the test (or benchmark) in -short and when not root: the
// control plane's binaries are built and cached by root, as CI runs.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: starts a real control plane")
	}
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the control plane's binaries are built for Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: the control plane's binaries are built and cached by root (CI runs as root)")
	}
	controllers := opts.Controllers
	bin := Binaries(t)
	dir := t.TempDir()
	e := &Env{Dir: dir}
	if err := e.pki(); err != nil {
		t.Fatal(err)
	}
	etcdClient, etcdPeer, apiPort := freePort(t), freePort(t), freePort(t)
	start(t, dir, filepath.Join(bin, "etcd"), "etcd",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:"+etcdClient, "--advertise-client-urls", "http://127.0.0.1:"+etcdClient,
		"--listen-peer-urls", "http://127.0.0.1:"+etcdPeer, "--initial-advertise-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-cluster", "default=http://127.0.0.1:"+etcdPeer, "--log-level", "warn")
	e.URL = "https://127.0.0.1:" + apiPort
	var extra []string
	if opts.EgressSocket != "" {
		cfg := filepath.Join(dir, "egress-selector.yaml")
		if err := os.WriteFile(cfg, []byte(egressConfig(opts.EgressSocket)), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "--egress-selector-config-file", cfg)
	}
	e.bin = bin
	e.apiArgs = append([]string{
		"--etcd-servers", "http://127.0.0.1:" + etcdClient,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", apiPort,
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC", "--allow-privileged=true",
		// The "kubernetes" Service's endpoint cannot be a loopback address.
		"--endpoint-reconciler-type", "none",
		"--enable-admission-plugins", "NodeRestriction"}, extra...)
	e.apiserver = start(t, dir, filepath.Join(bin, "kube-apiserver"), "kube-apiserver", e.apiArgs...)
	if err := e.writeKubeconfig("admin", []string{"system:masters"}, filepath.Join(dir, "admin.kubeconfig")); err != nil {
		t.Fatal(err)
	}
	e.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	e.Config = cfg
	e.waitReady(t, e.apiserver.done)
	if controllers {
		for _, who := range []string{"system:kube-controller-manager", "system:kube-scheduler"} {
			if err := e.writeKubeconfig(who, nil, filepath.Join(dir, strings.TrimPrefix(who, "system:")+".kubeconfig")); err != nil {
				t.Fatal(err)
			}
		}
		kcm := start(t, dir, filepath.Join(bin, "kube-controller-manager"), "kube-controller-manager",
			"--kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--authentication-kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--authorization-kubeconfig", filepath.Join(dir, "kube-controller-manager.kubeconfig"),
			"--bind-address", "127.0.0.1", "--secure-port", "0", "--use-service-account-credentials",
			"--service-account-private-key-file", filepath.Join(dir, "sa.key"), "--root-ca-file", filepath.Join(dir, "ca.crt"),
			"--cluster-signing-cert-file", filepath.Join(dir, "ca.crt"), "--cluster-signing-key-file", filepath.Join(dir, "ca.key"),
			"--controllers", "*,-nodeipam", "--leader-elect=false")
		sched := start(t, dir, filepath.Join(bin, "kube-scheduler"), "kube-scheduler",
			"--kubeconfig", filepath.Join(dir, "kube-scheduler.kubeconfig"),
			"--authentication-kubeconfig", filepath.Join(dir, "kube-scheduler.kubeconfig"),
			"--authorization-kubeconfig", filepath.Join(dir, "kube-scheduler.kubeconfig"),
			"--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false")
		// A bad flag makes them exit at once: say so here, not as a mystery later.
		for name, done := range map[string]<-chan struct{}{"kube-controller-manager": kcm.done, "kube-scheduler": sched.done} {
			select {
			case <-done:
				log, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Fatalf("%s exited:\n%s", name, tail(log, 3000))
			case <-time.After(time.Second):
			}
		}
	}
	return e
}

// Attach is an Env for a cluster that runs already (a Kubernetes lab): its
// admin kubeconfig, and its CA to issue users' certificates.
func Attach(t testing.TB, kubeconfig, caCert, caKey string) *Env {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Dir: t.TempDir(), Kubeconfig: kubeconfig, Config: cfg, URL: cfg.Host}
	certPEM, err := os.ReadFile(caCert)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(caKey)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		t.Fatalf("CA %s / %s: not PEM", caCert, caKey)
	}
	if e.caCert, err = x509.ParseCertificate(cb.Bytes); err != nil {
		t.Fatal(err)
	}
	if e.caKey, err = x509.ParsePKCS1PrivateKey(kb.Bytes); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Dir, "ca.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// RestartAPIServer stops the kube-apiserver (SIGTERM, as a rolling upgrade
// of a control plane does) and starts it again on the same port and etcd:
// clients see their connections and watches cut, then the same cluster.
func (e *Env) RestartAPIServer(t testing.TB) {
	t.Helper()
	e.apiserver.stop()
	e.apiserver = start(t, e.Dir, filepath.Join(e.bin, "kube-apiserver"), "kube-apiserver", e.apiArgs...)
	e.waitReady(t, e.apiserver.done)
}

// process is a started control-plane process.
type process struct {
	done <-chan struct{} // closed when it has exited
	stop func()          // SIGTERM, then SIGKILL; waits; safe to call again
}

// start runs a control-plane process, logging to dir/<name>.log, and stops
// it (SIGTERM, then SIGKILL) when the test ends.
func start(t testing.TB, dir, bin, name string, args ...string) process {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = groupAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			signalGroup(cmd.Process, false)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				signalGroup(cmd.Process, true)
				<-done
			}
			logf.Close()
		})
	}
	t.Cleanup(stop)
	return process{done: done, stop: stop}
}

// egressConfig routes the API server's "cluster" traffic (Pod and node
// proxy, logs, exec) through an HTTP CONNECT proxy on a Unix socket.
func egressConfig(socket string) string {
	return `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: ` + socket + `
`
}

func (e *Env) waitReady(t testing.TB, exited <-chan struct{}) {
	t.Helper()
	tc, err := rest.TransportFor(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tc, Timeout: 2 * time.Second}
	deadline := time.Now().Add(StartTimeout)
	for {
		resp, err := client.Get(e.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(e.Dir, "kube-apiserver.log"))
			t.Fatalf("kube-apiserver exited:\n%s", tail(log, 3000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(e.Dir, "kube-apiserver.log"))
			t.Fatalf("kube-apiserver not ready after %s: %v\n%s", StartTimeout, err, tail(log, 3000))
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePort finds a free loopback port below the kernel's ephemeral range
// (32768 and up by default), so that no outgoing connection of a test
// running beside this one takes it between this check and the server's
// bind; tests of several packages start control planes at once.
func freePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		n, _ := rand.Int(rand.Reader, big.NewInt(12000))
		port := strconv.Itoa(20000 + int(n.Int64()))
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port in 20000-31999")
	return ""
}

// pki writes a CA, the API server's serving certificate and the service
// account key.
func (e *Env) pki() error {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podpath-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if e.caCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	e.caKey = caKey
	if err := writePEM(filepath.Join(e.Dir, "ca.crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(e.Dir, "ca.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(caKey)); err != nil {
		return err
	}
	certPEM, keyPEM, err := e.issue("kube-apiserver", nil, []string{"kubernetes", "kubernetes.default", "localhost"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.233.0.1")}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.Dir, "apiserver.crt"), certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.Dir, "apiserver.key"), keyPEM, 0o600); err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(e.Dir, "sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))
}

func (e *Env) issue(cn string, groups, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dns, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.caCert, &key.PublicKey, e.caKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// Kubeconfig writes a kubeconfig for user (client certificate) in groups,
// as a test gives one to a user bound only to some role.
func (e *Env) writeKubeconfig(user string, groups []string, path string) error {
	certPEM, keyPEM, err := e.issue(user, groups, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(e.Dir, "ca.crt"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: e.URL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}

// UserKubeconfig writes a kubeconfig for an ordinary user (no groups) and
// returns its path: bind it to a role to test least privilege.
func (e *Env) UserKubeconfig(t testing.TB, user string) string {
	t.Helper()
	path := filepath.Join(e.Dir, user+".kubeconfig")
	if err := e.writeKubeconfig(user, nil, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Apply creates every object of a multi-document YAML file, as `kubectl
// create -f` would, waiting for CustomResourceDefinitions to be established
// so that objects of their kinds can follow.
func (e *Env) Apply(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ApplyBytes(context.Background(), data); err != nil {
		t.Fatalf("apply %s: %v", path, err)
	}
}

// ApplyBytes creates the objects of multi-document YAML.
func (e *Env) ApplyBytes(ctx context.Context, data []byte) error {
	return kubeobj.CreateAll(ctx, e.Config, data, "podpath-test")
}

// Labelled lists every object of every listable resource type, namespaced
// and cluster-scoped, that matches selector: what "nothing left behind"
// means on a real API server.
func (e *Env) Labelled(t testing.TB, selector string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = rest.NoWarnings{} // deprecated kinds are listed too, on purpose
	cfg.QPS, cfg.Burst = 500, 1000         // one list per resource type: do not crawl at client-go's 5/s
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				t.Errorf("list %s %s: %v", gv, r.Name, err)
				continue
			}
			for _, it := range items.Items {
				out = append(out, r.Name+"/"+it.GetNamespace()+"/"+it.GetName())
			}
		}
	}
	return out
}
