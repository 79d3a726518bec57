package authz

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func pr(verbs, groups, resources, names []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
}

func urlRule(verbs []string, urls ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: urls}
}

func l(s ...string) []string { return s }

func TestCovers(t *testing.T) {
	tests := []struct {
		name    string
		owner   []rbacv1.PolicyRule
		servant []rbacv1.PolicyRule
		missing []string // compactString of each missing atomic rule
	}{
		{"exact", []rbacv1.PolicyRule{pr(l("get", "list"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("list"), l(""), l("pods"), nil)}, nil},
		{"split across owner rules", []rbacv1.PolicyRule{pr(l("get"), l(""), l("pods"), nil), pr(l("list"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("get", "list"), l(""), l("pods"), nil)}, nil},
		{"missing verb", []rbacv1.PolicyRule{pr(l("get"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("get", "delete"), l(""), l("pods"), nil)},
			l(`{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`)},
		{"owner star verb", []rbacv1.PolicyRule{pr(l("*"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("escalate", "*"), l(""), l("pods"), nil)}, nil},
		{"star verb needs star", []rbacv1.PolicyRule{pr(l("get", "list", "watch", "create", "update", "patch", "delete"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("*"), l(""), l("pods"), nil)},
			l(`{APIGroups:[""], Resources:["pods"], Verbs:["*"]}`)},
		{"owner star group", []rbacv1.PolicyRule{pr(l("get"), l("*"), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l("", "apps", "*"), l("pods"), nil)}, nil},
		{"star group needs star", []rbacv1.PolicyRule{pr(l("get"), l("", "apps"), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l("*"), l("pods"), nil)},
			l(`{APIGroups:["*"], Resources:["pods"], Verbs:["get"]}`)},
		{"owner star resource covers subresources", []rbacv1.PolicyRule{pr(l("get"), l(""), l("*"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("pods", "pods/log", "*"), nil)}, nil},
		{"star slash sub", []rbacv1.PolicyRule{pr(l("update"), l("apps"), l("*/scale"), nil)},
			[]rbacv1.PolicyRule{pr(l("update"), l("apps"), l("deployments/scale", "deployments"), nil)},
			l(`{APIGroups:["apps"], Resources:["deployments"], Verbs:["update"]}`)},
		{"resource does not cover its subresource", []rbacv1.PolicyRule{pr(l("get"), l(""), l("pods"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("pods/log"), nil)},
			l(`{APIGroups:[""], Resources:["pods/log"], Verbs:["get"]}`)},
		{"resource slash star is literal", []rbacv1.PolicyRule{pr(l("get"), l(""), l("pods/*"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("pods/log", "pods/*"), nil)},
			l(`{APIGroups:[""], Resources:["pods/log"], Verbs:["get"]}`)},
		{"unnamed owner covers names", []rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), nil)},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), l("a", "b"))}, nil},
		{"named owner covers its names", []rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), l("a", "b"))},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), l("b", "c"))},
			l(`{APIGroups:[""], Resources:["secrets"], ResourceNames:["c"], Verbs:["get"]}`)},
		{"named owner does not cover all names", []rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), l("a"))},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("secrets"), nil)},
			l(`{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`)},
		{"url exact", []rbacv1.PolicyRule{urlRule(l("get"), "/healthz")},
			[]rbacv1.PolicyRule{urlRule(l("get"), "/healthz", "/healthz/etcd")},
			l(`{NonResourceURLs:["/healthz/etcd"], Verbs:["get"]}`)},
		{"url prefix", []rbacv1.PolicyRule{urlRule(l("get"), "/api/*")},
			[]rbacv1.PolicyRule{urlRule(l("get", "post"), "/api/v1", "/apis")},
			l(`{NonResourceURLs:["/api/v1"], Verbs:["post"]}`, `{NonResourceURLs:["/apis"], Verbs:["get"]}`, `{NonResourceURLs:["/apis"], Verbs:["post"]}`)},
		{"url star", []rbacv1.PolicyRule{urlRule(l("*"), "*")},
			[]rbacv1.PolicyRule{urlRule(l("get"), "/anything", "*")}, nil},
		{"urls do not cover resources", []rbacv1.PolicyRule{urlRule(l("*"), "*")},
			[]rbacv1.PolicyRule{pr(l("get"), l(""), l("pods"), nil)},
			l(`{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`)},
		{"resources do not cover urls", []rbacv1.PolicyRule{pr(l("*"), l("*"), l("*"), nil)},
			[]rbacv1.PolicyRule{urlRule(l("get"), "/metrics")},
			l(`{NonResourceURLs:["/metrics"], Verbs:["get"]}`)},
		{"cluster-admin covers all", DefaultPolicy().ClusterRoles[0].Rules,
			[]rbacv1.PolicyRule{pr(l("*"), l("*"), l("*"), nil), urlRule(l("*"), "*"), pr(l("get"), l(""), l("pods"), l("x"))}, nil},
		{"nothing owned", nil,
			[]rbacv1.PolicyRule{pr(l("get", "list"), l("", "apps"), l("a"), nil)},
			l(`{APIGroups:[""], Resources:["a"], Verbs:["get"]}`, `{APIGroups:[""], Resources:["a"], Verbs:["list"]}`,
				`{APIGroups:["apps"], Resources:["a"], Verbs:["get"]}`, `{APIGroups:["apps"], Resources:["a"], Verbs:["list"]}`)},
		{"rule without groups grants and asks nothing", nil,
			[]rbacv1.PolicyRule{pr(l("get"), nil, l("pods"), nil)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, missing := covers(tt.owner, tt.servant)
			var got []string
			for _, m := range missing {
				got = append(got, compactString(m))
			}
			if ok != (len(tt.missing) == 0) || !slices.Equal(got, tt.missing) {
				t.Errorf("covers = %v, missing\n%s\nwant\n%s", ok, strings.Join(got, "\n"), strings.Join(tt.missing, "\n"))
			}
		})
	}
}

func TestCompactRules(t *testing.T) {
	in := []rbacv1.PolicyRule{
		pr(l("get"), l(""), l("pods"), nil),
		urlRule(l("get"), "/x"),
		pr(l("list"), l(""), l("pods"), nil),
		pr(l("get"), l(""), l("pods"), l("a")),
		pr(l("list"), l(""), l("pods"), l("a")),
		pr(l("get"), l("apps"), l("pods"), nil),
		pr(l("get", "list"), l(""), l("secrets"), nil), // not atomic: kept apart
		pr(l("watch"), l(""), l("pods"), nil),
	}
	var got []string
	for _, r := range compactRules(in) {
		got = append(got, compactString(r))
	}
	want := []string{
		`{APIGroups:[""], Resources:["pods"], Verbs:["get" "list" "watch"]}`,
		`{NonResourceURLs:["/x"], Verbs:["get"]}`,
		`{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get" "list"]}`,
		`{APIGroups:["apps"], Resources:["pods"], Verbs:["get"]}`,
		`{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(in[0].Verbs) != 1 {
		t.Error("compactRules changed its input")
	}
}
