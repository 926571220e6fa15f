package kubelet

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// basePath is the PATH a container gets when its Pod sets none, as
// container runtimes default it.
const basePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandbox is where a Pod runs: its network namespace and addresses.
type sandbox struct {
	netns  string
	podIP  netip.Addr
	hostIP netip.Addr
}

// containerEnv resolves a container's environment in order, each value
// able to refer to the ones before it, as the kubelet does.
func containerEnv(pod *corev1.Pod, c *corev1.Container, sb sandbox) (map[string]string, []string, error) {
	vars := map[string]string{}
	hostname := pod.Name
	if pod.Spec.HostNetwork {
		hostname = pod.Spec.NodeName
	}
	list := []string{basePath, "HOSTNAME=" + hostname}
	// The "kubernetes" Service's variables come first, so the container's
	// own may refer to them, or override them (the later value wins).
	for _, kv := range kubernetesServiceEnv() {
		vars[kv[0]] = kv[1]
		list = append(list, kv[0]+"="+kv[1])
	}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			var err error
			if v, err = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath, sb); err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		default:
			return nil, nil, fmt.Errorf("env %s: only values and fieldRefs are supported by the lab kubelet", e.Name)
		}
		vars[e.Name] = v
		list = append(list, e.Name+"="+v)
	}
	return vars, list, nil
}

func fieldValue(pod *corev1.Pod, path string, sb sandbox) (string, error) {
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "status.podIP", "status.podIPs":
		return sb.podIP.String(), nil
	case "status.hostIP", "status.hostIPs":
		return sb.hostIP.String(), nil
	}
	return "", fmt.Errorf("fieldRef %s is not supported by the lab kubelet", path)
}

// expand replaces $(VAR) with VAR's value as Kubernetes does: $$ is a
// literal $, and a reference to an unknown variable stays as written.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// rewriteArgs points arguments at a mounted volume ("/etc/podpath/token",
// "--token-file=/etc/podpath/token") to where the kubelet wrote it.
func rewriteArgs(args []string, mounts []mount) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		prefix, value := "", a
		if flag, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(flag, "-") {
			prefix, value = flag+"=", v
		}
		for _, m := range mounts {
			if value == m.path || strings.HasPrefix(value, m.path+"/") {
				out[i] = prefix + m.dir + strings.TrimPrefix(value, m.path)
				break
			}
		}
	}
	return out
}

// credential is the user a container runs as: its runAsUser/runAsGroup,
// else the Pod's; nil when neither sets a user (the kubelet's own, root).
// Without runAsGroup the group is 0, as a runtime gives a numeric user
// that the image's /etc/passwd does not name.
func credential(pod *corev1.Pod, c *corev1.Container) *syscall.Credential {
	var uid, gid *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	if uid == nil && gid == nil {
		return nil
	}
	cred := &syscall.Credential{Groups: []uint32{}}
	if uid != nil {
		cred.Uid = uint32(*uid)
	}
	if gid != nil {
		cred.Gid = uint32(*gid)
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, g := range psc.SupplementalGroups {
			cred.Groups = append(cred.Groups, uint32(g))
		}
		if psc.FSGroup != nil {
			cred.Groups = append(cred.Groups, uint32(*psc.FSGroup))
		}
	}
	return cred
}
