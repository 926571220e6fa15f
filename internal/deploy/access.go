package deploy

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one thing a run needs the caller's RBAC to allow.
type Permission struct {
	Verb, Group, Resource, Subresource, Namespace, Name string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Name != "" {
		r += " " + p.Name
	}
	return p.Verb + " " + r
}

// Required is what `podpath doctor`, `mtu` and `perf` cannot do without in
// a cluster; the shipped ClusterRole (deploy/rbac.yaml) grants this and the
// optional reads discovery does without when refused (calico-node logs,
// BGP objects, block affinities); a test keeps the file a superset.
var Required = []Permission{
	{Verb: "list", Resource: "nodes"},
	{Verb: "get", Resource: "configmaps", Namespace: "kube-system", Name: "calico-config"},
	{Verb: "get", Group: "apps", Resource: "daemonsets"},
	{Verb: "list", Resource: "pods"},
	{Verb: "list", Group: "crd.projectcalico.org", Resource: "ippools"},
	{Verb: "get", Group: "crd.projectcalico.org", Resource: "felixconfigurations"},
	{Verb: "get", Group: "operator.tigera.io", Resource: "installations"},
	{Verb: "create", Resource: "namespaces"},
	{Verb: "list", Resource: "namespaces"},
	{Verb: "delete", Resource: "namespaces"},
	{Verb: "create", Resource: "serviceaccounts"},
	{Verb: "create", Resource: "secrets"},
	{Verb: "create", Group: "apps", Resource: "daemonsets"},
	{Verb: "create", Group: "coordination.k8s.io", Resource: "leases"},
	{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Name: LeaseName},
	{Verb: "patch", Group: "coordination.k8s.io", Resource: "leases", Name: LeaseName},
	{Verb: "get", Resource: "pods", Subresource: "proxy"},
	{Verb: "create", Resource: "pods", Subresource: "proxy"},
	{Verb: "update", Resource: "pods", Subresource: "proxy"},
}

// Who grants what: named in the error that lists what is missing.
const (
	DoctorRole = "the ClusterRole podpath-doctor from deploy/rbac.yaml"
	FixRole    = "the ClusterRole podpath-fix from deploy/rbac-fix.yaml"
)

// MissingAccessError names the permissions the caller lacks and the
// ClusterRole that grants them.
type MissingAccessError struct {
	Missing   []Permission
	GrantedBy string
}

func (e *MissingAccessError) Error() string {
	var s []string
	for _, p := range e.Missing {
		s = append(s, p.String())
	}
	return fmt.Sprintf("missing RBAC permissions: %s (bind %s to this user)", strings.Join(s, ", "), e.GrantedBy)
}

// CheckAccess asks the API server, before anything is created, whether the
// caller may do everything a run does (SelfSubjectAccessReview, which every
// authenticated user may call): a run that would fail halfway never starts.
func CheckAccess(ctx context.Context, cs kubernetes.Interface) error {
	return CheckPermissions(ctx, cs, Required, DoctorRole)
}

// CheckPermissions asks the API server about each of perms and names the
// ones refused, and grantedBy, in one error.
func CheckPermissions(ctx context.Context, cs kubernetes.Interface, perms []Permission, grantedBy string) error {
	var missing []Permission
	for _, p := range perms {
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: p.Resource,
				Subresource: p.Subresource, Namespace: p.Namespace, Name: p.Name}}}
		got, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check RBAC permissions: %w", err)
		}
		if !got.Status.Allowed {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return &MissingAccessError{Missing: missing, GrantedBy: grantedBy}
	}
	return nil
}
