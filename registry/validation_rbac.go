package registry

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func validateRole(obj, old runtime.Object) field.ErrorList {
	return policyRules(obj.(*rbacv1.Role).Rules, true)
}

func validateClusterRole(obj, old runtime.Object) field.ErrorList {
	cr := obj.(*rbacv1.ClusterRole)
	errs := policyRules(cr.Rules, false)
	if ar := cr.AggregationRule; ar != nil {
		sp := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(ar.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(sp, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range ar.ClusterRoleSelectors {
			s := &ar.ClusterRoleSelectors[i]
			errs = append(errs, labelSelector(s, sp.Index(i))...)
			if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
				errs = append(errs, field.Invalid(sp.Index(i), s, "invalid label selector."))
			}
		}
	}
	return errs
}

// policyRules: every rule names verbs, and either resources (with their
// groups) or, in cluster roles only, non-resource URLs.
func policyRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i := range rules {
		r := &rules[i]
		p := field.NewPath("rules").Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

func validateRoleBinding(obj, old runtime.Object) field.ErrorList {
	rb := obj.(*rbacv1.RoleBinding)
	return roleBinding(rb.RoleRef, rb.Subjects, true)
}

func validateClusterRoleBinding(obj, old runtime.Object) field.ErrorList {
	crb := obj.(*rbacv1.ClusterRoleBinding)
	return roleBinding(crb.RoleRef, crb.Subjects, false)
}

// roleBinding checks the reference's shape; that it never changes is the
// registry's generic immutability rule.
func roleBinding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	// An empty group is defaulted to RBAC's own.
	if ref.APIGroup != "" && ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"Role", "ClusterRole"}
	if !namespaced {
		kinds = []string{"ClusterRole"}
	}
	if ref.Kind != "ClusterRole" && (!namespaced || ref.Kind != "Role") {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(rp.Child("name"), ""))
	} else {
		errs = append(errs, nameMessages(content.IsPathSegmentName(ref.Name), ref.Name, rp.Child("name"))...)
	}
	sp := field.NewPath("subjects")
	for i, s := range subjects {
		p := sp.Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name != "" {
				errs = append(errs, nameMessages(apivalidation.ValidateServiceAccountName(s.Name, false), s.Name, p.Child("name"))...)
			}
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if !namespaced && s.Namespace == "" {
				errs = append(errs, field.Required(p.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			// An empty group is defaulted to RBAC's own.
			if s.APIGroup != "" && s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	return errs
}
