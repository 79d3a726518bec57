package cel

import (
	"context"
	"strings"

	"github.com/pgkube/pgkube/admission"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Exempt tells whether the request is for admission configuration itself,
// which neither webhooks nor policies see: a broken webhook or policy must
// never keep an administrator from fixing or deleting it.
func Exempt(a *admission.Attributes) bool {
	if a.Group != admissionregistrationv1.GroupName {
		return false
	}
	switch a.Resource {
	case "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
		"validatingadmissionpolicies", "validatingadmissionpolicybindings",
		"mutatingadmissionpolicies", "mutatingadmissionpolicybindings":
		return true
	}
	return false
}

// RuleMatches tells whether rule selects the request: its operation, group,
// version, resource/subresource and scope.
func RuleMatches(rule admissionregistrationv1.RuleWithOperations, r *Request) bool {
	a := r.Attrs
	return scopeMatches(rule.Scope, r) &&
		operationMatches(rule.Operations, a.Operation) &&
		exactOrWildcard(rule.APIGroups, a.Group) &&
		exactOrWildcard(rule.APIVersions, a.Version) &&
		resourceMatches(rule.Resources, a.Resource, a.Subresource)
}

func scopeMatches(scope *admissionregistrationv1.ScopeType, r *Request) bool {
	if scope == nil {
		return true
	}
	// A namespace is cluster-scoped even though it is reported as in the
	// namespace of its own name.
	clusterScoped := r.IsNamespace() || r.Namespace() == ""
	switch *scope {
	case admissionregistrationv1.AllScopes:
		return true
	case admissionregistrationv1.NamespacedScope:
		return !clusterScoped
	case admissionregistrationv1.ClusterScope:
		return clusterScoped
	}
	return false
}

func operationMatches(ops []admissionregistrationv1.OperationType, op admission.Operation) bool {
	for _, o := range ops {
		if o == admissionregistrationv1.OperationAll || string(o) == string(op) {
			return true
		}
	}
	return false
}

func exactOrWildcard(items []string, s string) bool {
	for _, x := range items {
		if x == "*" || x == s {
			return true
		}
	}
	return false
}

// resourceMatches reads "pods" (the resource alone), "pods/status",
// "pods/*" (every subresource, and as kube-apiserver reads it pods itself
// too), "*" (every resource, no subresource) and "*/*".
func resourceMatches(rules []string, resource, subresource string) bool {
	for _, rule := range rules {
		res, sub, _ := strings.Cut(rule, "/")
		if (res == "*" || res == resource) && (sub == "*" || sub == subresource) {
			return true
		}
	}
	return false
}

// Selector parses a label selector. Unlike kube-apiserver, pgkube does not
// default an absent selector to {} when storing configuration, so nil
// selects everything here.
func Selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// ObjectSelectorMatches tells whether sel selects the object or, for
// updates and deletes, the old object.
func ObjectSelectorMatches(sel labels.Selector, r *Request) bool {
	if sel.Empty() {
		return true
	}
	return labelsMatch(sel, r.Attrs.Object) || labelsMatch(sel, r.Attrs.OldObject)
}

func labelsMatch(sel labels.Selector, obj runtime.Object) bool {
	if obj == nil {
		return false
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(m.GetLabels()))
}

// NamespaceSelectorMatches tells whether sel selects the request's
// namespace. Cluster-scoped requests other than for namespaces always match.
func NamespaceSelectorMatches(ctx context.Context, sel labels.Selector, r *Request, store admission.Getter) (bool, error) {
	if sel.Empty() {
		return true, nil
	}
	ls, scoped, err := r.NamespaceLabels(ctx, store)
	if err != nil {
		return false, err
	}
	if !scoped {
		return true, nil
	}
	return sel.Matches(labels.Set(ls)), nil
}
