package authz

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/pgkube/pgkube/authn"
)

func escalationFixture(t *testing.T) *Escalation {
	r := loadDefaultPolicy(t)
	r.Apply(root, testRB("a", "editor", "ClusterRole", "edit", userSubject("editor")), false)
	r.Apply(root, testRB("a", "administrator", "ClusterRole", "admin", userSubject("administrator")), false)
	r.Apply(root, testClusterRole("bind-admin",
		rbacv1.PolicyRule{Verbs: []string{"bind"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: []string{"admin"}}), false)
	r.Apply(root, testRB("a", "binder", "ClusterRole", "bind-admin", userSubject("binder")), false)
	r.Apply(root, testClusterRole("escalate-roles",
		rbacv1.PolicyRule{Verbs: []string{"escalate"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}}), false)
	r.Apply(root, testRB("a", "escalator", "ClusterRole", "escalate-roles", userSubject("escalator")), false)
	r.Apply(root, testCRB("superuser", "cluster-admin", userSubject("superuser")), false)
	r.Apply(root, testRole("a", "pod-reader", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}), false)
	r.Apply(root, testRB("a", "dangling", "Role", "gone", userSubject("dangler")), false)
	return &Escalation{RBAC: r, Authorizer: Union{PrivilegedGroups{authn.SystemPrivileged}, r}}
}

const heldPrefix = ` is forbidden: user "editor" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:` + "\n"

func TestCheckBinding(t *testing.T) {
	e := escalationFixture(t)
	authd := authn.AllAuthenticated
	clusterRole := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	tests := []struct {
		name string
		e    *Escalation
		user *authn.User
		ns   string
		ref  rbacv1.RoleRef
		err  string // "" allowed
	}{
		{"edit may bind view: edit aggregates it", e, u("editor", authd), "a", clusterRole("view"), ""},
		{"edit may bind edit", e, u("editor", authd), "a", clusterRole("edit"), ""},
		{"edit may not bind admin", e, u("editor", authd), "a", clusterRole("admin"),
			`rolebindings.rbac.authorization.k8s.io "b"` + heldPrefix +
				`{APIGroups:["authorization.k8s.io"], Resources:["localsubjectaccessreviews"], Verbs:["create"]}` + "\n" +
				`{APIGroups:["rbac.authorization.k8s.io"], Resources:["rolebindings"], Verbs:["create" "delete" "deletecollection" "get" "list" "patch" "update" "watch"]}` + "\n" +
				`{APIGroups:["rbac.authorization.k8s.io"], Resources:["roles"], Verbs:["create" "delete" "deletecollection" "get" "list" "patch" "update" "watch"]}`},
		{"edit may not bind view outside its namespace", e, u("editor", authd), "b", clusterRole("view"),
			`rolebindings.rbac.authorization.k8s.io "b"` + heldPrefix},
		{"rules held cluster-wide may be bound cluster-wide", e, u("editor", authd), "", clusterRole("system:public-info-viewer"), ""},
		{"edit may not bind cluster-admin", e, u("editor", authd), "a", clusterRole("cluster-admin"),
			`rolebindings.rbac.authorization.k8s.io "b"` + heldPrefix +
				`{APIGroups:["*"], Resources:["*"], Verbs:["*"]}` + "\n" +
				`{NonResourceURLs:["*"], Verbs:["*"]}`},
		{"admin may bind admin", e, u("administrator", authd), "a", clusterRole("admin"), ""},
		{"admin may bind a role of its namespace", e, u("administrator", authd), "a", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"}, ""},
		{"bind verb allows binding admin", e, u("binder", authd), "a", clusterRole("admin"), ""},
		{"bind verb is per namespace", e, u("binder", authd), "b", clusterRole("admin"), "forbidden"},
		{"bind verb is per role", e, u("binder", authd), "a", clusterRole("edit"), "forbidden"},
		{"bind verb needs an authorizer", &Escalation{RBAC: e.RBAC}, u("binder", authd), "a", clusterRole("admin"), "forbidden"},
		{"masters may bind anything", e, u("root", authn.SystemPrivileged), "", clusterRole("cluster-admin"), ""},
		{"masters need no authorizer", &Escalation{RBAC: e.RBAC}, u("root", authn.SystemPrivileged), "a", clusterRole("missing"), ""},
		{"cluster-admin may bind cluster-admin cluster-wide", e, u("superuser", authd), "", clusterRole("cluster-admin"), ""},
		{"missing role", e, u("editor", authd), "a", clusterRole("nope"), `clusterroles.rbac.authorization.k8s.io "nope" not found`},
		{"missing role in namespace", e, u("editor", authd), "b", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"}, `roles.rbac.authorization.k8s.io "pod-reader" not found`},
		{"edit may not bind view cluster-wide", e, u("editor", authd), "", clusterRole("view"),
			`clusterrolebindings.rbac.authorization.k8s.io "b"` + heldPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.e.CheckBindingNamed(context.Background(), root, tt.user, tt.ns, "b", tt.ref)
			checkEscalationErr(t, err, tt.err)
			// Unnamed, the decision is the same; only the message differs.
			err = tt.e.CheckBinding(context.Background(), root, tt.user, tt.ns, tt.ref)
			checkEscalationErr(t, err, strings.Replace(tt.err, `"b" is forbidden`, `is forbidden`, 1))
		})
	}
}

// checkEscalationErr compares err with want: "" for nil, "forbidden" for
// any Forbidden, a message ending in newline as a prefix, else exactly.
func checkEscalationErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "":
		if err != nil {
			t.Errorf("refused: %v", err)
		}
	case err == nil:
		t.Errorf("allowed, want %s", want)
	case want == "forbidden":
		if !apierrors.IsForbidden(err) {
			t.Errorf("error %v is not Forbidden", err)
		}
	case want[len(want)-1] == '\n':
		if !apierrors.IsForbidden(err) || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
			t.Errorf("error\n%s\nwant prefix\n%s", err, want)
		}
	default:
		if err.Error() != want {
			t.Errorf("error\n%s\nwant\n%s", err, want)
		}
		if want[len(want)-len("not found"):] == "not found" && !apierrors.IsNotFound(err) {
			t.Errorf("error %v is not NotFound", err)
		}
	}
}

func TestCheckRole(t *testing.T) {
	e := escalationFixture(t)
	authd := authn.AllAuthenticated
	podsGet := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	secrets := rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"secrets"}}
	rolesCreate := rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}}
	tests := []struct {
		name     string
		user     *authn.User
		ns       string
		resource string
		rules    []rbacv1.PolicyRule
		err      string
	}{
		{"rules held", u("editor", authd), "a", "roles", []rbacv1.PolicyRule{podsGet, secrets}, ""},
		{"no rules", u("nobody", authd), "a", "roles", nil, ""},
		{"rules not held", u("editor", authd), "a", "roles", []rbacv1.PolicyRule{podsGet, rolesCreate},
			`roles.rbac.authorization.k8s.io "r"` + heldPrefix + `{APIGroups:["rbac.authorization.k8s.io"], Resources:["roles"], Verbs:["create"]}`},
		{"rules held elsewhere", u("editor", authd), "b", "roles", []rbacv1.PolicyRule{podsGet},
			`roles.rbac.authorization.k8s.io "r"` + heldPrefix + `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`},
		{"clusterroles need cluster-wide rules", u("editor", authd), "a", "clusterroles", []rbacv1.PolicyRule{podsGet},
			`clusterroles.rbac.authorization.k8s.io "r"` + heldPrefix + `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`},
		{"cluster-wide rules cover clusterroles", u("editor", authd), "", "clusterroles",
			[]rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}}, ""},
		{"escalate verb", u("escalator", authd), "a", "roles", []rbacv1.PolicyRule{rolesCreate, secrets}, ""},
		{"escalate verb is per namespace", u("escalator", authd), "b", "roles", []rbacv1.PolicyRule{rolesCreate}, "forbidden"},
		{"escalate on roles is not on clusterroles", u("escalator", authd), "a", "clusterroles", []rbacv1.PolicyRule{rolesCreate}, "forbidden"},
		{"masters", u("root", authn.SystemPrivileged), "", "clusterroles", []rbacv1.PolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}, ""},
		{"resolution errors are reported", u("dangler", authd), "a", "roles", []rbacv1.PolicyRule{podsGet},
			`roles.rbac.authorization.k8s.io "r" is forbidden: user "dangler" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:` + "\n" +
				`{APIGroups:[""], Resources:["pods"], Verbs:["get"]}; resolution errors: [roles.rbac.authorization.k8s.io "gone" not found]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.CheckRole(context.Background(), root, tt.user, tt.ns, tt.resource, "r", tt.rules)
			checkEscalationErr(t, err, tt.err)
		})
	}
}
