package authz

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// covers reports whether owner grants everything rules grant and, if not,
// what it lacks. Each rule is split into atomic pieces (one group,
// resource, verb and resource name; or one URL and verb) because only then
// is each piece granted by a single owner rule or by none, so the
// comparison needs no set algebra over wildcards.
func covers(owner, rules []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, r := range rules {
		for _, piece := range atomize(r) {
			if !slices.ContainsFunc(owner, func(o rbacv1.PolicyRule) bool { return ruleCovers(&o, &piece) }) {
				missing = append(missing, piece)
			}
		}
	}
	return len(missing) == 0, missing
}

func atomize(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: []string{v}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: []string{v}, ResourceNames: []string{n}})
				}
			}
		}
	}
	for _, u := range r.NonResourceURLs {
		for _, v := range r.Verbs {
			out = append(out, rbacv1.PolicyRule{NonResourceURLs: []string{u}, Verbs: []string{v}})
		}
	}
	return out
}

// ruleCovers reports whether owner grants piece, an atomic rule. A
// wildcard in piece is only covered by the same wildcard in owner: "*"
// asked for is more than any list of names.
func ruleCovers(owner, piece *rbacv1.PolicyRule) bool {
	if !hasAllOrStar(owner.Verbs, piece.Verbs, rbacv1.VerbAll) ||
		!hasAllOrStar(owner.APIGroups, piece.APIGroups, rbacv1.APIGroupAll) ||
		!resourcesCovered(owner.Resources, piece.Resources) ||
		!urlsCovered(owner.NonResourceURLs, piece.NonResourceURLs) {
		return false
	}
	if len(owner.ResourceNames) == 0 {
		return true
	}
	// An owner limited to names covers only pieces limited to those names.
	return len(piece.ResourceNames) > 0 && hasAll(owner.ResourceNames, piece.ResourceNames)
}

func hasAll(set, want []string) bool {
	for _, w := range want {
		if !slices.Contains(set, w) {
			return false
		}
	}
	return true
}

func hasAllOrStar(set, want []string, star string) bool {
	return slices.Contains(set, star) || hasAll(set, want)
}

func resourcesCovered(owner, want []string) bool {
	if slices.Contains(owner, rbacv1.ResourceAll) {
		return true
	}
	for _, w := range want {
		if slices.Contains(owner, w) {
			continue
		}
		_, sub, ok := strings.Cut(w, "/")
		if !ok || !slices.Contains(owner, "*/"+sub) {
			return false
		}
	}
	return true
}

func urlsCovered(owner, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(owner, func(o string) bool {
			return o == w || strings.HasSuffix(o, "*") && strings.HasPrefix(w, strings.TrimRight(o, "*"))
		}) {
			return false
		}
	}
	return true
}

// compactRules merges atomic resource rules that differ only in verb, so
// an escalation error lists {deployments: create delete} once rather than
// once per verb. Verbs keep the order they were found in.
func compactRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct {
		group, resource string
		named           bool
		name            string
	}
	var out []rbacv1.PolicyRule
	merged := map[key]int{} // index into out
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 || len(r.APIGroups) != 1 || len(r.Resources) != 1 || len(r.ResourceNames) > 1 {
			out = append(out, r)
			continue
		}
		k := key{group: r.APIGroups[0], resource: r.Resources[0]}
		if len(r.ResourceNames) == 1 {
			k.named, k.name = true, r.ResourceNames[0]
		}
		if i, ok := merged[k]; ok {
			out[i].Verbs = append(out[i].Verbs, r.Verbs...)
			continue
		}
		merged[k] = len(out)
		c := *r.DeepCopy()
		out = append(out, c)
	}
	return out
}

// compactString is kube-apiserver's one-line form of a rule in escalation
// errors, e.g. {APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}.
func compactString(r rbacv1.PolicyRule) string {
	var parts []string
	field := func(name string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s:%q", name, v))
		}
	}
	field("APIGroups", r.APIGroups)
	field("Resources", r.Resources)
	field("NonResourceURLs", r.NonResourceURLs)
	field("ResourceNames", r.ResourceNames)
	field("Verbs", r.Verbs)
	return "{" + strings.Join(parts, ", ") + "}"
}
