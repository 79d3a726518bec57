package authz

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Aggregate computes, as kube-controller-manager's clusterrole-aggregation
// controller does, the rules each ClusterRole with an aggregationRule
// should hold: for each selector in turn, the rules of every other role
// whose labels it matches, roles taken by name, each distinct rule once.
// Only roles whose rules would change appear in the result.
//
// One pass reads the roles' current rules, so when an aggregated role is
// itself aggregating (edit into admin) the caller applies the result and
// calls again until it is empty, as the controller's resyncs would.
// A role whose selector does not parse is left alone, as the controller
// leaves it.
func Aggregate(roles []*rbacv1.ClusterRole) map[string][]rbacv1.PolicyRule {
	sorted := slices.Clone(roles)
	slices.SortFunc(sorted, func(x, y *rbacv1.ClusterRole) int { return strings.Compare(x.Name, y.Name) })

	out := map[string][]rbacv1.PolicyRule{}
	for _, target := range sorted {
		if target.AggregationRule == nil {
			continue
		}
		want, ok := aggregatedRules(target, sorted)
		if !ok || equality.Semantic.DeepEqual(want, target.Rules) {
			continue
		}
		out[target.Name] = want
	}
	return out
}

func aggregatedRules(target *rbacv1.ClusterRole, sorted []*rbacv1.ClusterRole) ([]rbacv1.PolicyRule, bool) {
	want := []rbacv1.PolicyRule{}
	for i := range target.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&target.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, false
		}
		for _, src := range sorted {
			if src.Name == target.Name || !sel.Matches(labels.Set(src.Labels)) {
				continue
			}
			for _, r := range src.Rules {
				if !slices.ContainsFunc(want, func(w rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(w, r) }) {
					want = append(want, *r.DeepCopy())
				}
			}
		}
	}
	return want, true
}
