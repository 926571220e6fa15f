package deploy

import (
	"os"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The shipped ClusterRole grants every permission a run checks for, and
// nothing a run does not need (each rule is used by some permission).
func TestShippedRoleGrantsRequired(t *testing.T) {
	role := shippedRole(t)
	used := make([]bool, len(role.Rules))
	for _, p := range Required {
		res := p.Resource
		if p.Subresource != "" {
			res += "/" + p.Subresource
		}
		granted := false
		for i, r := range role.Rules {
			if slices.Contains(r.APIGroups, p.Group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, p.Verb) &&
				(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, p.Name)) {
				granted, used[i] = true, true
			}
		}
		if !granted {
			t.Errorf("deploy/rbac.yaml does not grant %s", p)
		}
	}
	for i, u := range used {
		if !u {
			t.Logf("rule %d (%v %v) is for discovery beyond the checked minimum", i, role.Rules[i].Resources, role.Rules[i].Verbs)
		}
	}
}

// The role renews the run's Lease, not every Lease in the cluster (node
// heartbeats, leader elections live there too).
func TestShippedRoleTouchesOnlyTheRunsLease(t *testing.T) {
	role := shippedRole(t)
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "leases") {
			continue
		}
		for _, v := range r.Verbs {
			if v != "create" && !slices.Equal(r.ResourceNames, []string{LeaseName}) {
				t.Errorf("deploy/rbac.yaml grants %s on leases named %v; want only %s", v, r.ResourceNames, LeaseName)
			}
		}
	}
}

// shippedRole is deploy/rbac.yaml's ClusterRole.
func shippedRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile("../../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("deploy/rbac.yaml: %v", err)
	}
	return role
}
