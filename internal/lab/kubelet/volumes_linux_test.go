package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// apiAccessPod is a Pod as the ServiceAccount admission plugin leaves it:
// the kube-api-access volume mounted at the service account directory.
func apiAccessPod() *corev1.Pod {
	exp := int64(3607)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Labels: map[string]string{"b": "2", "a": `q"`}},
		Spec: corev1.PodSpec{ServiceAccountName: "checker", NodeName: "node1",
			Containers: []corev1.Container{{Name: "c", Args: []string{"agent", "--service-account-dir", saDir},
				VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-x1y2z", MountPath: saDir, ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x1y2z", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &exp, Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
						{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}},
						{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
						{Path: "sub/b", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['b']"}}}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "extra"}, Optional: ptrTo(true)}},
				}}}}}}}
}

// tokenIssuer answers TokenRequests on a fake clientset with numbered
// tokens living life, and records the requests.
type tokenIssuer struct {
	life time.Duration
	mu   sync.Mutex
	reqs []*authenticationv1.TokenRequest
	sas  []string
}

func (ti *tokenIssuer) react(a k8stesting.Action) (bool, runtime.Object, error) {
	ca, ok := a.(k8stesting.CreateAction)
	if !ok || a.GetSubresource() != "token" {
		return false, nil, nil
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	req := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
	ti.reqs = append(ti.reqs, req)
	name := ""
	if impl, ok := a.(k8stesting.CreateActionImpl); ok {
		name = impl.Name
	}
	ti.sas = append(ti.sas, a.GetNamespace()+"/"+name)
	req.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprintf("token-%d", len(ti.reqs)),
		ExpirationTimestamp: metav1.NewTime(time.Now().Add(ti.life))}
	return true, req, nil
}

func (ti *tokenIssuer) count() int {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return len(ti.reqs)
}

func fakeKubelet(t *testing.T, life time.Duration, objs ...runtime.Object) (*Kubelet, *tokenIssuer) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	ti := &tokenIssuer{life: life}
	cs.PrependReactor("create", "serviceaccounts", ti.react)
	return &Kubelet{cs: cs, started: time.Now(), opts: Options{Log: testLog{t}}}, ti
}

func rootCA() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "CA PEM"}}
}

func TestWriteVolumesServiceAccount(t *testing.T) {
	k, ti := fakeKubelet(t, time.Hour, rootCA())
	pod := apiAccessPod()
	dir := t.TempDir()
	mounts, tokens, err := k.writeVolumes(context.Background(), pod, &pod.Spec.Containers[0], sandbox{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(dir, "volumes", "kube-api-access-x1y2z")
	if want := []mount{{path: saDir, dir: vdir}}; !slices.Equal(mounts, want) {
		t.Errorf("mounts = %v; want %v", mounts, want)
	}
	for file, want := range map[string]string{"token": "token-1", "ca.crt": "CA PEM", "namespace": "ns",
		"labels": "a=\"q\\\"\"\nb=\"2\"", "sub/b": "2"} {
		got, err := os.ReadFile(filepath.Join(vdir, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
		if fi, err := os.Stat(filepath.Join(vdir, file)); err == nil && fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v; want 0644 (the container may run as any user)", file, fi.Mode())
		}
	}
	if len(ti.reqs) != 1 {
		t.Fatalf("token requests = %d; want 1", len(ti.reqs))
	}
	req := ti.reqs[0]
	if ti.sas[0] != "ns/checker" || *req.Spec.ExpirationSeconds != 3607 || len(req.Spec.Audiences) != 0 ||
		req.Spec.BoundObjectRef == nil || req.Spec.BoundObjectRef.Kind != "Pod" || req.Spec.BoundObjectRef.Name != "p" || req.Spec.BoundObjectRef.UID != "uid-1" {
		t.Errorf("token request for %s = %+v; want ns/checker, 3607 s, default audience, bound to Pod p uid-1", ti.sas[0], req.Spec)
	}
	if len(tokens) != 1 || tokens[0].file != filepath.Join(vdir, "token") {
		t.Fatalf("tokens = %v; want the one in %s", tokens, vdir)
	}
	if d := time.Until(tokens[0].refresh); d < 47*time.Minute || d > 48*time.Minute {
		t.Errorf("token renewal in %s; want at 80%% of its hour", d)
	}
	args := rewriteArgs(pod.Spec.Containers[0].Args, mounts)
	if want := []string{"agent", "--service-account-dir", vdir}; !slices.Equal(args, want) {
		t.Errorf("args = %q; want %q", args, want)
	}
	if left, _ := filepath.Glob(filepath.Join(vdir, ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// Until kube-controller-manager publishes kube-root-ca.crt in a new
// namespace, the volume cannot be written: the worker retries.
func TestWriteVolumesWaitsForRootCA(t *testing.T) {
	k, _ := fakeKubelet(t, time.Hour)
	pod := apiAccessPod()
	_, _, err := k.writeVolumes(context.Background(), pod, &pod.Spec.Containers[0], sandbox{}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "ConfigMap kube-root-ca.crt") {
		t.Errorf("writeVolumes without kube-root-ca.crt = %v; want an error naming it", err)
	}
}

func TestWriteVolumesUnsupportedSource(t *testing.T) {
	k, _ := fakeKubelet(t, time.Hour, rootCA())
	pod := apiAccessPod()
	src := &pod.Spec.Volumes[0].Projected.Sources
	*src = append(*src, corev1.VolumeProjection{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Path: "b"}})
	if _, _, err := k.writeVolumes(context.Background(), pod, &pod.Spec.Containers[0], sandbox{}, t.TempDir()); err == nil {
		t.Error("writeVolumes with a clusterTrustBundle source succeeded; want an error")
	}
}

func TestRefreshTime(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		life time.Duration
		want time.Duration
	}{
		{"one_hour", time.Hour, 48 * time.Minute},
		{"one_year_capped_at_a_day", 365 * 24 * time.Hour, 24 * time.Hour},
		{"expired_floor", -time.Hour, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshTime(at, at.Add(tc.life)).Sub(at); got != tc.want {
				t.Errorf("refresh after %s; want %s", got, tc.want)
			}
		})
	}
}

// keepTokens replaces a token before it expires, atomically, and stops
// with the Pod.
func TestKeepTokens(t *testing.T) {
	k, ti := fakeKubelet(t, 1500*time.Millisecond, rootCA())
	pod := apiAccessPod()
	mounts, tokens, err := k.writeVolumes(context.Background(), pod, &pod.Spec.Containers[0], sandbox{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mounts[0].dir, "token")
	w := &podWorker{k: k, pod: pod}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.keepTokens(tokens) }()
	deadline := time.Now().Add(5 * time.Second)
	for ti.count() < 3 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "token-") {
			t.Fatalf("token file while renewing = %q, %v", b, err) // never missing, never partial
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("keepTokens still running after the Pod ended")
	}
	n := ti.count()
	if n < 3 {
		t.Fatalf("%d token requests in 5 s with 1.5 s tokens; want at least 3", n)
	}
	if b, _ := os.ReadFile(file); string(b) != fmt.Sprintf("token-%d", n) {
		t.Errorf("token file = %q; want the latest, token-%d", b, n)
	}
}
