package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Projected service account tokens, kept fresh as the kubelet's token
// manager keeps them: a new token at 80% of the old one's lifetime, and at
// least daily.
const (
	defaultTokenSeconds = 3600 // a serviceAccountToken source without expirationSeconds (the API's default)
	tokenMaxAge         = 24 * time.Hour
	tokenRetry          = 10 * time.Second // after a failed refresh; the old token is still good meanwhile
	tokenMinLife        = time.Second      // renewing sooner is a loop, whatever the answer's expiry says
)

// mount is a volume mount the kubelet made: mountPath inside the
// container stands for dir on the host.
type mount struct{ path, dir string }

// token is a projected service account token file the worker keeps fresh.
type token struct {
	file    string
	src     corev1.ServiceAccountTokenProjection
	refresh time.Time // when to ask for the next one
}

// writeVolumes writes each volume the container mounts that the lab
// kubelet supports (Secret, ConfigMap, downward API, projected) as files
// under dir/volumes/NAME, one directory per volume. Files are 0644 and
// directories 0755 whatever the volume's modes: the container may run as
// any user and there is no fsGroup ownership to give. Contents are written
// once; only tokens are renewed (see keepTokens).
func (k *Kubelet) writeVolumes(ctx context.Context, pod *corev1.Pod, c *corev1.Container, sb sandbox, dir string) ([]mount, []*token, error) {
	var mounts []mount
	var tokens []*token
	for _, vol := range pod.Spec.Volumes {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == vol.Name })
		if i < 0 {
			continue
		}
		vdir := filepath.Join(dir, "volumes", vol.Name)
		var err error
		switch v := vol.VolumeSource; {
		case v.Secret != nil:
			err = k.writeSecret(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, isTrue(v.Secret.Optional), vdir)
		case v.ConfigMap != nil:
			err = k.writeConfigMap(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, isTrue(v.ConfigMap.Optional), vdir)
		case v.DownwardAPI != nil:
			err = writeDownwardAPI(pod, v.DownwardAPI.Items, sb, vdir)
		case v.Projected != nil:
			var ts []*token
			ts, err = k.writeProjected(ctx, pod, v.Projected, sb, vdir)
			tokens = append(tokens, ts...)
		default:
			continue // not supported: the container sees no such directory
		}
		if err != nil {
			return nil, nil, fmt.Errorf("volume %s: %w", vol.Name, err)
		}
		mounts = append(mounts, mount{path: filepath.Clean(c.VolumeMounts[i].MountPath), dir: vdir})
	}
	// The longest mount path first, so a nested mount wins when rewriting.
	slices.SortFunc(mounts, func(a, b mount) int { return len(b.path) - len(a.path) })
	return mounts, tokens, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// writeProjected writes a projected volume's sources into one directory,
// as the ServiceAccount admission plugin's kube-api-access-* volume needs
// them: a token, kube-root-ca.crt's ca.crt, the namespace.
func (k *Kubelet) writeProjected(ctx context.Context, pod *corev1.Pod, src *corev1.ProjectedVolumeSource, sb sandbox, dir string) ([]*token, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var tokens []*token
	for _, s := range src.Sources {
		var err error
		switch {
		case s.ServiceAccountToken != nil:
			t := &token{file: inside(dir, s.ServiceAccountToken.Path), src: *s.ServiceAccountToken}
			if err = k.writeToken(ctx, pod, t); err == nil {
				tokens = append(tokens, t)
			}
		case s.ConfigMap != nil:
			err = k.writeConfigMap(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, isTrue(s.ConfigMap.Optional), dir)
		case s.Secret != nil:
			err = k.writeSecret(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, isTrue(s.Secret.Optional), dir)
		case s.DownwardAPI != nil:
			err = writeDownwardAPI(pod, s.DownwardAPI.Items, sb, dir)
		default:
			err = fmt.Errorf("only serviceAccountToken, configMap, secret and downwardAPI sources are supported by the lab kubelet")
		}
		if err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

func (k *Kubelet) writeSecret(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional bool, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	sec, err := k.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("read Secret %s: %w", name, err)
	}
	return writeKeys(dir, "Secret "+name, sec.Data, items, optional)
}

// writeConfigMap writes a ConfigMap's keys. One that does not exist yet
// (kube-root-ca.crt in a namespace a moment old) fails the attempt, and
// the worker tries again, as for a missing Secret.
func (k *Kubelet) writeConfigMap(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional bool, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cm, err := k.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("read ConfigMap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	return writeKeys(dir, "ConfigMap "+name, data, items, optional)
}

// writeKeys writes data under dir: every key to a file of its name or,
// with items, each item's key to its path. A missing key is an error
// unless the source is optional.
func writeKeys(dir, what string, data map[string][]byte, items []corev1.KeyToPath, optional bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{} // file → key
	if len(items) == 0 {
		for key := range data {
			files[key] = key
		}
	}
	for _, it := range items {
		files[it.Path] = it.Key
	}
	for file, key := range files {
		v, ok := data[key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, key)
		}
		if err := writeFileAtomic(inside(dir, file), v); err != nil {
			return fmt.Errorf("write %s key %s: %w", what, key, err)
		}
	}
	return nil
}

// writeDownwardAPI writes the Pod's fields as files.
func writeDownwardAPI(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, sb sandbox, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downward API %s: only fieldRefs are supported by the lab kubelet", it.Path)
		}
		v, err := volumeFieldValue(pod, it.FieldRef.FieldPath, sb)
		if err != nil {
			return fmt.Errorf("downward API %s: %w", it.Path, err)
		}
		if err := writeFileAtomic(inside(dir, it.Path), []byte(v)); err != nil {
			return fmt.Errorf("downward API %s: %w", it.Path, err)
		}
	}
	return nil
}

// volumeFieldValue is a field as a downward API file holds it: the
// environment's fields, and the labels and annotations, whole
// (`key="value"` lines, sorted) or one of them (metadata.labels['key']).
func volumeFieldValue(pod *corev1.Pod, path string, sb sandbox) (string, error) {
	for _, f := range []struct {
		name string
		m    map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if path == f.name {
			return formatMap(f.m), nil
		}
		if key, ok := strings.CutPrefix(path, f.name+"['"); ok && strings.HasSuffix(key, "']") {
			return f.m[strings.TrimSuffix(key, "']")], nil
		}
	}
	return fieldValue(pod, path, sb)
}

// formatMap renders labels or annotations as the kubelet's downward API does.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, key := range keys {
		lines[i] = fmt.Sprintf("%s=%q", key, m[key])
	}
	return strings.Join(lines, "\n")
}

// writeToken asks the API server for a token of the Pod's ServiceAccount
// bound to the Pod (it dies with the Pod, and names it), as the kubelet
// does for a serviceAccountToken source, writes it, and sets when to
// renew it.
func (k *Kubelet) writeToken(ctx context.Context, pod *corev1.Pod, t *token) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	seconds := int64(defaultTokenSeconds)
	if t.src.ExpirationSeconds != nil {
		seconds = *t.src.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &seconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}}
	if t.src.Audience != "" {
		req.Spec.Audiences = []string{t.src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	issued := time.Now()
	out, err := k.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
	}
	if out.Status.Token == "" {
		return fmt.Errorf("token for ServiceAccount %s: empty answer", sa)
	}
	if err := writeFileAtomic(t.file, []byte(out.Status.Token)); err != nil {
		return fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
	}
	expires := out.Status.ExpirationTimestamp.Time
	if expires.IsZero() {
		expires = issued.Add(time.Duration(seconds) * time.Second)
	}
	t.refresh = refreshTime(issued, expires)
	return nil
}

// refreshTime is when a token issued at issued and expiring at expires is
// renewed: at 80% of its lifetime, and no later than a day after issue.
// (The API server may extend the token itself well past expires, for
// legacy clients, but the kubelet goes by what it asked for, and so do we.)
func refreshTime(issued, expires time.Time) time.Time {
	life := expires.Sub(issued)
	return issued.Add(min(max(life*8/10, tokenMinLife), tokenMaxAge))
}

// keepTokens renews the Pod's projected tokens until the Pod terminates:
// whatever runs in the container can always read a valid one, across its
// restarts too. A failed renewal is logged and retried; the old token
// stays until it is replaced.
func (w *podWorker) keepTokens(tokens []*token) {
	for {
		next := tokens[0].refresh
		for _, t := range tokens[1:] {
			if t.refresh.Before(next) {
				next = t.refresh
			}
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-w.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		for _, t := range tokens {
			if time.Now().Before(t.refresh) {
				continue
			}
			if err := w.k.writeToken(w.ctx, w.pod, t); err != nil {
				if w.ctx.Err() != nil {
					return
				}
				w.k.logf("%s: renew token %s: %v (retrying in %s)", podName(w.pod), t.file, err, tokenRetry)
				t.refresh = time.Now().Add(tokenRetry)
				continue
			}
			w.k.logf("%s: token renewed (%s); next at %s", podName(w.pod), filepath.Join(filepath.Base(filepath.Dir(t.file)), filepath.Base(t.file)),
				t.refresh.Format(time.RFC3339))
		}
	}
}

// inside is file's path under dir: never outside it, whatever file says.
func inside(dir, file string) string { return filepath.Join(dir, filepath.Clean("/"+file)) }

// writeFileAtomic replaces path's contents in one step (a temporary file
// renamed over it): a reader never sees half a renewed token.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename: nothing there
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
