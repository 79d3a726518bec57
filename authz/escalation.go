package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pgkube/pgkube/authn"
)

// Escalation keeps users from granting, through Roles, ClusterRoles and
// bindings, permissions they do not hold themselves, as kube-apiserver's
// RBAC storage does. Without it, anyone allowed to create a RoleBinding
// could bind themselves cluster-admin.
type Escalation struct {
	// RBAC resolves the user's own rules and the roles bindings refer to.
	RBAC *RBAC
	// Authorizer is asked for the explicit "escalate" and "bind" verbs; it
	// is normally the server's full authorizer chain. May be nil.
	Authorizer Authorizer
}

// CheckRole decides whether u may write a role named name with rules:
// resource is "roles" (namespace is the role's) or "clusterroles". It is
// allowed for system:masters, for users allowed the "escalate" verb on
// that role, and for users whose own rules in that scope cover rules. A
// refusal is a Forbidden StatusError worded as kube-apiserver's.
func (e *Escalation) CheckRole(ctx context.Context, cluster string, u *authn.User, namespace string, resource string, name string, rules []rbacv1.PolicyRule) error {
	if resource == "clusterroles" {
		namespace = ""
	}
	if isPrivileged(u) {
		return nil
	}
	if resource == "roles" || resource == "clusterroles" {
		if e.allowed(ctx, Attributes{
			Cluster: cluster, User: u, Verb: "escalate", ResourceRequest: true,
			Namespace: namespace, APIGroup: rbacv1.GroupName, APIVersion: "*", Resource: resource, Name: name,
		}) {
			return nil
		}
	}
	if err := e.confirmNoEscalation(cluster, u, namespace, rules); err != nil {
		return apierrors.NewForbidden(schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}, name, err)
	}
	return nil
}

// CheckBinding decides whether u may write a binding in namespace ("" for
// a ClusterRoleBinding) that refers to ref. It is allowed for
// system:masters, for users allowed the "bind" verb on the referenced role
// in the binding's namespace, and for users whose own rules there cover
// the role's. A missing role is NotFound; a refusal is a Forbidden
// StatusError on rolebindings or clusterrolebindings. Not knowing the
// binding's name, the error cannot name it as kube-apiserver's does;
// CheckBindingNamed can.
func (e *Escalation) CheckBinding(ctx context.Context, cluster string, u *authn.User, namespace string, ref rbacv1.RoleRef) error {
	return e.CheckBindingNamed(ctx, cluster, u, namespace, "", ref)
}

// CheckBindingNamed is CheckBinding for the binding called name, which
// its refusal names, so the message reads exactly as kube-apiserver's:
// rolebindings.rbac.authorization.k8s.io "name" is forbidden: ...
func (e *Escalation) CheckBindingNamed(ctx context.Context, cluster string, u *authn.User, namespace string, name string, ref rbacv1.RoleRef) error {
	if isPrivileged(u) {
		return nil
	}
	var resource string
	switch ref.Kind {
	case "ClusterRole":
		resource = "clusterroles"
	case "Role":
		resource = "roles"
	}
	if resource != "" && e.allowed(ctx, Attributes{
		Cluster: cluster, User: u, Verb: "bind", ResourceRequest: true,
		Namespace: namespace, APIGroup: ref.APIGroup, APIVersion: "*", Resource: resource, Name: ref.Name,
	}) {
		return nil
	}
	rules, err := e.RBAC.RoleRules(cluster, namespace, ref)
	if err != nil {
		return err
	}
	if err := e.confirmNoEscalation(cluster, u, namespace, rules); err != nil {
		bindings := "clusterrolebindings"
		if namespace != "" {
			bindings = "rolebindings"
		}
		return apierrors.NewForbidden(schema.GroupResource{Group: rbacv1.GroupName, Resource: bindings}, name, err)
	}
	return nil
}

func isPrivileged(u *authn.User) bool {
	return u != nil && u.InGroup(authn.SystemPrivileged)
}

func (e *Escalation) allowed(ctx context.Context, a Attributes) bool {
	if e.Authorizer == nil || a.User == nil {
		return false
	}
	// An authorizer error only means this shortcut is unavailable; the
	// rule comparison that follows still decides.
	d, _, _ := e.Authorizer.Authorize(ctx, a)
	return d == Allow
}

// confirmNoEscalation fails unless u's own rules in namespace cover rules,
// listing what is missing the way kube-apiserver does.
func (e *Escalation) confirmNoEscalation(cluster string, u *authn.User, namespace string, rules []rbacv1.PolicyRule) error {
	if u == nil {
		return errors.New("no user on context")
	}
	owned, dangling := e.RBAC.rulesFor(cluster, u, namespace)
	ok, missing := covers(owned, rules)
	if ok {
		return nil
	}
	var lines []string
	for _, r := range compactRules(missing) {
		lines = append(lines, compactString(r))
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", u.Name, u.Groups, strings.Join(lines, "\n"))
	if len(dangling) > 0 {
		msg += fmt.Sprintf("; resolution errors: %v", []error{notFoundErrors(dangling, true)})
	}
	return errors.New(msg)
}
