package admission

import (
	"context"

	"github.com/pgkube/pgkube/authn"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// EscalationChecker decides whether a user may write RBAC rules or
// bindings (package authz implements it).
type EscalationChecker interface {
	CheckRole(ctx context.Context, cluster string, u *authn.User, namespace, resource, name string, rules []rbacv1.PolicyRule) error
	CheckBindingNamed(ctx context.Context, cluster string, u *authn.User, namespace, name string, ref rbacv1.RoleRef) error
}

// RBACEscalation stops users from granting, through Roles and bindings,
// permissions they do not hold themselves, as kube-apiserver's RBAC
// storage does.
type RBACEscalation struct {
	Checker EscalationChecker
}

// Admit checks creates and rule-changing updates of RBAC objects.
func (p RBACEscalation) Admit(ctx context.Context, a *Attributes) error {
	if a.Group != rbacv1.GroupName || a.Operation == Delete {
		return nil
	}
	u := authn.UserFrom(ctx)
	if u == nil {
		return nil
	}
	switch obj := a.Object.(type) {
	case *rbacv1.Role:
		if old, ok := a.OldObject.(*rbacv1.Role); ok && equality.Semantic.DeepEqual(old.Rules, obj.Rules) {
			return nil
		}
		return p.Checker.CheckRole(ctx, a.Cluster, u, a.Namespace, "roles", a.Name, obj.Rules)
	case *rbacv1.ClusterRole:
		old, _ := a.OldObject.(*rbacv1.ClusterRole)
		if obj.AggregationRule != nil {
			// Aggregation pulls in whatever roles match the selectors, so
			// only someone who may escalate may set it up.
			if old != nil && equality.Semantic.DeepEqual(old.AggregationRule, obj.AggregationRule) {
				return nil
			}
			if err := p.Checker.CheckRole(ctx, a.Cluster, u, "", "clusterroles", a.Name,
				[]rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
					{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}); err != nil {
				return apierrors.NewForbidden(schema.GroupResource{Group: rbacv1.GroupName, Resource: "clusterroles"}, a.Name,
					errString("must have cluster-admin privileges to use the aggregationRule"))
			}
			return nil
		}
		if old != nil && equality.Semantic.DeepEqual(old.Rules, obj.Rules) {
			return nil
		}
		return p.Checker.CheckRole(ctx, a.Cluster, u, "", "clusterroles", a.Name, obj.Rules)
	case *rbacv1.RoleBinding:
		if a.Operation != Create {
			return nil // roleRef is immutable
		}
		return p.Checker.CheckBindingNamed(ctx, a.Cluster, u, a.Namespace, a.Name, obj.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		if a.Operation != Create {
			return nil
		}
		return p.Checker.CheckBindingNamed(ctx, a.Cluster, u, "", a.Name, obj.RoleRef)
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }
