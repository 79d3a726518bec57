package registry

import (
	"testing"

	"github.com/pgkube/pgkube/authz"
)

// TestValidateBootstrapPolicy: the default RBAC policy the server writes
// through its own API at start passes validation.
func TestValidateBootstrapPolicy(t *testing.T) {
	p := authz.DefaultPolicy()
	for i := range p.ClusterRoles {
		expectErrs(t, validateClusterRole(&p.ClusterRoles[i], nil))
	}
	for i := range p.ClusterRoleBindings {
		expectErrs(t, validateClusterRoleBinding(&p.ClusterRoleBindings[i], nil))
	}
	for i := range p.Roles {
		expectErrs(t, validateRole(&p.Roles[i], nil))
	}
	for i := range p.RoleBindings {
		expectErrs(t, validateRoleBinding(&p.RoleBindings[i], nil))
	}
}
