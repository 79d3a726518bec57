package authz

import (
	"context"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pgkube/pgkube/authn"
)

// policyObjects turns p into objects for RBAC.Replace, with aggregation
// applied until it settles, as the controller would leave them.
func policyObjects(tb testing.TB, p Policy) []runtime.Object {
	tb.Helper()
	roles := make([]*rbacv1.ClusterRole, len(p.ClusterRoles))
	for i := range p.ClusterRoles {
		roles[i] = &p.ClusterRoles[i]
	}
	settle(tb, roles)
	var objs []runtime.Object
	for _, r := range roles {
		objs = append(objs, r)
	}
	for i := range p.ClusterRoleBindings {
		objs = append(objs, &p.ClusterRoleBindings[i])
	}
	for i := range p.Roles {
		objs = append(objs, &p.Roles[i])
	}
	for i := range p.RoleBindings {
		objs = append(objs, &p.RoleBindings[i])
	}
	return objs
}

// settle applies Aggregate to roles in place until nothing changes.
func settle(tb testing.TB, roles []*rbacv1.ClusterRole) {
	tb.Helper()
	for range 10 {
		changes := Aggregate(roles)
		if len(changes) == 0 {
			return
		}
		for _, r := range roles {
			if rules, ok := changes[r.Name]; ok {
				r.Rules = rules
			}
		}
	}
	tb.Fatal("aggregation did not settle")
}

func loadDefaultPolicy(tb testing.TB) *RBAC {
	r := NewRBAC()
	r.Replace(root, policyObjects(tb, DefaultPolicy()))
	return r
}

type objMeta struct {
	kind string
	meta metav1.ObjectMeta
}

func TestDefaultPolicyMetadata(t *testing.T) {
	p := DefaultPolicy()
	var metas []objMeta
	for _, o := range p.ClusterRoles {
		metas = append(metas, objMeta{"ClusterRole", o.ObjectMeta})
	}
	for _, o := range p.ClusterRoleBindings {
		metas = append(metas, objMeta{"ClusterRoleBinding", o.ObjectMeta})
	}
	for _, o := range p.Roles {
		metas = append(metas, objMeta{"Role", o.ObjectMeta})
	}
	for _, o := range p.RoleBindings {
		metas = append(metas, objMeta{"RoleBinding", o.ObjectMeta})
	}
	seen := map[string]bool{}
	for _, m := range metas {
		if m.meta.Labels["kubernetes.io/bootstrapping"] != "rbac-defaults" || m.meta.Annotations["rbac.authorization.kubernetes.io/autoupdate"] != "true" {
			t.Errorf("%s %s: labels %v annotations %v", m.kind, m.meta.Name, m.meta.Labels, m.meta.Annotations)
		}
		if ns := m.meta.Namespace; (m.kind == "Role" || m.kind == "RoleBinding") != (ns == "kube-system") || ns != "" && ns != "kube-system" {
			t.Errorf("%s %s in namespace %q", m.kind, m.meta.Name, ns)
		}
		key := m.kind + "/" + m.meta.Name
		if seen[key] {
			t.Errorf("%s defined twice", key)
		}
		seen[key] = true
	}
	for _, want := range []string{
		"cluster-admin", "admin", "edit", "view", "system:aggregate-to-admin", "system:aggregate-to-edit",
		"system:aggregate-to-view", "system:discovery", "system:basic-user", "system:public-info-viewer",
		"system:monitoring", "system:auth-delegator", "system:node-proxier", "system:kube-controller-manager",
		"system:kube-scheduler", "system:volume-scheduler", "system:node", "system:service-account-issuer-discovery",
	} {
		if !seen["ClusterRole/"+want] {
			t.Errorf("ClusterRole %s missing", want)
		}
	}
	// Bindings must name roles that exist.
	for _, b := range p.ClusterRoleBindings {
		if !seen["ClusterRole/"+b.RoleRef.Name] || b.RoleRef.Kind != "ClusterRole" || len(b.Subjects) == 0 {
			t.Errorf("ClusterRoleBinding %s: %+v", b.Name, b.RoleRef)
		}
	}
	for _, b := range p.RoleBindings {
		if !seen["Role/"+b.RoleRef.Name] || b.RoleRef.Kind != "Role" {
			t.Errorf("RoleBinding %s: %+v", b.Name, b.RoleRef)
		}
	}
	// Each call returns fresh objects.
	p.ClusterRoles[0].Rules[0].Verbs[0] = "changed"
	p.ClusterRoles[0].Labels["x"] = "y"
	q := DefaultPolicy()
	if q.ClusterRoles[0].Rules[0].Verbs[0] == "changed" || q.ClusterRoles[0].Labels["x"] == "y" {
		t.Error("DefaultPolicy shares memory between calls")
	}
}

// The roles users are bound to must be aggregated, not written out.
func TestDefaultPolicyAggregationRules(t *testing.T) {
	for _, r := range DefaultPolicy().ClusterRoles {
		switch r.Name {
		case "admin", "edit", "view":
			if r.AggregationRule == nil || len(r.Rules) != 0 {
				t.Errorf("%s: aggregationRule %v, %d rules", r.Name, r.AggregationRule, len(r.Rules))
			}
		default:
			if r.AggregationRule != nil {
				t.Errorf("%s has an aggregationRule", r.Name)
			}
		}
	}
}

type check struct {
	name string
	a    Attributes
	want bool
}

func res(user *authn.User, verb, ns, group, resource, sub, name string) Attributes {
	return Attributes{Cluster: root, User: user, Verb: verb, ResourceRequest: true, Namespace: ns, APIGroup: group, Resource: resource, Subresource: sub, Name: name}
}

func path(user *authn.User, verb, p string) Attributes {
	return Attributes{Cluster: root, User: user, Verb: verb, Path: p}
}

func runChecks(t *testing.T, az Authorizer, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			d, reason, err := az.Authorize(context.Background(), c.a)
			if err != nil {
				t.Fatal(err)
			}
			if (d == Allow) != c.want {
				t.Errorf("%s: decision %v (%s), want allowed=%v", ForbiddenMessage(c.a, ""), d, reason, c.want)
			}
		})
	}
}

func TestDefaultPolicyAuthorize(t *testing.T) {
	r := loadDefaultPolicy(t)
	bind := func(ns, name, role string, subject rbacv1.Subject) {
		r.Apply(root, testRB(ns, name, "ClusterRole", role, subject), false)
	}
	bind("a", "viewer", "view", userSubject("viewer"))
	bind("a", "editor", "edit", userSubject("editor"))
	bind("a", "administrator", "admin", userSubject("administrator"))

	authd := authn.AllAuthenticated
	viewer := u("viewer", authd)
	editor := u("editor", authd)
	administrator := u("administrator", authd)
	anon := u(authn.Anonymous, authn.AllUnauthenticated)
	nobody := u("nobody", authd)
	master := u("root", "system:masters", authd)
	node := u("system:node:n1", "system:nodes", authd)
	kcm := u("system:kube-controller-manager", authd)
	sched := u("system:kube-scheduler", authd)
	sa := u("system:serviceaccount:a:default", "system:serviceaccounts", "system:serviceaccounts:a", authd)
	monitor := u("prometheus", "system:monitoring", authd)

	runChecks(t, r, []check{
		// view in namespace a
		{"view get pods", res(viewer, "get", "a", "", "pods", "", "p"), true},
		{"view list pods", res(viewer, "list", "a", "", "pods", "", ""), true},
		{"view watch pods", res(viewer, "watch", "a", "", "pods", "", ""), true},
		{"view get configmaps", res(viewer, "get", "a", "", "configmaps", "", "c"), true},
		{"view list configmaps", res(viewer, "list", "a", "", "configmaps", "", ""), true},
		{"view pods/log", res(viewer, "get", "a", "", "pods", "log", "p"), true},
		{"view deployments/scale", res(viewer, "get", "a", "apps", "deployments", "scale", "d"), true},
		{"view own namespace", res(viewer, "get", "a", "", "namespaces", "", "a"), true},
		{"view no secrets", res(viewer, "get", "a", "", "secrets", "", "s"), false},
		{"view no list secrets", res(viewer, "list", "a", "", "secrets", "", ""), false},
		{"view no exec", res(viewer, "create", "a", "", "pods", "exec", "p"), false},
		{"view no create", res(viewer, "create", "a", "", "pods", "", ""), false},
		{"view no delete", res(viewer, "delete", "a", "", "configmaps", "", "c"), false},
		{"view no update scale", res(viewer, "update", "a", "apps", "deployments", "scale", "d"), false},
		{"view no roles", res(viewer, "list", "a", rbacv1.GroupName, "roles", "", ""), false},
		{"view nothing in b", res(viewer, "get", "b", "", "pods", "", "p"), false},
		{"view no cross-namespace list", res(viewer, "list", "", "", "pods", "", ""), false},
		{"view no nodes", res(viewer, "list", "", "", "nodes", "", ""), false},

		// edit in namespace a
		{"edit create deployments", res(editor, "create", "a", "apps", "deployments", "", ""), true},
		{"edit update deployments/scale", res(editor, "update", "a", "apps", "deployments", "scale", "d"), true},
		{"edit get secrets", res(editor, "get", "a", "", "secrets", "", "s"), true},
		{"edit exec", res(editor, "create", "a", "", "pods", "exec", "p"), true},
		{"edit view's rules too", res(editor, "get", "a", "", "pods", "log", "p"), true},
		{"edit impersonate serviceaccounts", res(editor, "impersonate", "a", "", "serviceaccounts", "", "default"), true},
		{"edit create leases", res(editor, "create", "a", "coordination.k8s.io", "leases", "", ""), true},
		{"edit no roles", res(editor, "create", "a", rbacv1.GroupName, "roles", "", ""), false},
		{"edit no rolebindings", res(editor, "create", "a", rbacv1.GroupName, "rolebindings", "", ""), false},
		{"edit no status writes", res(editor, "update", "a", "apps", "deployments", "status", "d"), false},
		{"edit no resourcequotas", res(editor, "create", "a", "", "resourcequotas", "", ""), false},
		{"edit nothing in b", res(editor, "create", "b", "apps", "deployments", "", ""), false},

		// admin in namespace a
		{"admin create roles", res(administrator, "create", "a", rbacv1.GroupName, "roles", "", ""), true},
		{"admin create rolebindings", res(administrator, "create", "a", rbacv1.GroupName, "rolebindings", "", ""), true},
		{"admin localsubjectaccessreviews", res(administrator, "create", "a", "authorization.k8s.io", "localsubjectaccessreviews", "", ""), true},
		{"admin edit's rules too", res(administrator, "create", "a", "apps", "deployments", "", ""), true},
		{"admin view's rules too", res(administrator, "get", "a", "", "pods", "log", "p"), true},
		{"admin no roles in b", res(administrator, "create", "b", rbacv1.GroupName, "roles", "", ""), false},
		{"admin no clusterroles", res(administrator, "create", "", rbacv1.GroupName, "clusterroles", "", ""), false},
		{"admin no escalate", res(administrator, "escalate", "a", rbacv1.GroupName, "roles", "", "r"), false},

		// every authenticated user
		{"basic-user selfsubjectaccessreviews", res(nobody, "create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""), true},
		{"basic-user selfsubjectrulesreviews", res(nobody, "create", "", "authorization.k8s.io", "selfsubjectrulesreviews", "", ""), true},
		{"basic-user selfsubjectreviews", res(nobody, "create", "", "authentication.k8s.io", "selfsubjectreviews", "", ""), true},
		{"basic-user no subjectaccessreviews", res(nobody, "create", "", "authorization.k8s.io", "subjectaccessreviews", "", ""), false},
		{"discovery /api", path(nobody, "get", "/api"), true},
		{"discovery /apis/apps/v1", path(nobody, "get", "/apis/apps/v1"), true},
		{"discovery /openapi/v3", path(nobody, "get", "/openapi/v3"), true},
		{"discovery /version", path(nobody, "get", "/version"), true},
		{"discovery not /metrics", path(nobody, "get", "/metrics"), false},
		{"discovery only get", path(nobody, "post", "/api"), false},
		{"authenticated no pods", res(nobody, "list", "a", "", "pods", "", ""), false},

		// anonymous
		{"anonymous /healthz", path(anon, "get", "/healthz"), true},
		{"anonymous /livez", path(anon, "get", "/livez"), true},
		{"anonymous /readyz", path(anon, "get", "/readyz"), true},
		{"anonymous /version", path(anon, "get", "/version"), true},
		{"anonymous /version/", path(anon, "get", "/version/"), true},
		{"anonymous not /api", path(anon, "get", "/api"), false},
		{"anonymous not /apis", path(anon, "get", "/apis"), false},
		{"anonymous not /healthz/etcd", path(anon, "get", "/healthz/etcd"), false},
		{"anonymous no selfsubjectaccessreviews", res(anon, "create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""), false},

		// system identities
		{"masters anything", res(master, "deletecollection", "", "example.com", "widgets", "", ""), true},
		{"masters any path", path(master, "put", "/anything"), true},
		{"monitoring /metrics", path(monitor, "get", "/metrics"), true},
		{"monitoring /readyz/etcd", path(monitor, "get", "/readyz/etcd"), true},
		{"node create nodes", res(node, "create", "", "", "nodes", "", ""), true},
		{"node pod status", res(node, "patch", "x", "", "pods", "status", "p"), true},
		{"node no delete nodes", res(node, "delete", "", "", "nodes", "", "n2"), false},
		{"kcm lists everything", res(kcm, "list", "", "example.com", "widgets", "", ""), true},
		{"kcm own lease", res(kcm, "update", "kube-system", "coordination.k8s.io", "leases", "", "kube-controller-manager"), true},
		{"kcm no other lease update", res(kcm, "update", "default", "coordination.k8s.io", "leases", "", "kube-scheduler"), false},
		{"kcm auth config map", res(kcm, "get", "kube-system", "", "configmaps", "", "extension-apiserver-authentication"), true},
		{"scheduler binds pods", res(sched, "create", "x", "", "pods", "binding", "p"), true},
		{"scheduler volume-scheduler", res(sched, "update", "", "", "persistentvolumes", "", "pv"), true},
		{"scheduler leader lock", res(sched, "update", "kube-system", "", "configmaps", "", "kube-scheduler"), true},
		{"scheduler leader lock not elsewhere", res(sched, "update", "default", "", "configmaps", "", "kube-scheduler"), false},
		{"service account issuer discovery", path(sa, "get", "/openid/v1/jwks"), true},
		{"service account no pods", res(sa, "list", "a", "", "pods", "", ""), false},
	})
}

func TestAggregateDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	roles := map[string]*rbacv1.ClusterRole{}
	var list []*rbacv1.ClusterRole
	for i := range p.ClusterRoles {
		roles[p.ClusterRoles[i].Name] = &p.ClusterRoles[i]
		list = append(list, &p.ClusterRoles[i])
	}
	first := Aggregate(list)
	keys := make([]string, 0, len(first))
	for k := range first {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"admin", "edit", "view"}) {
		t.Fatalf("first pass changes %v", keys)
	}
	// view is a copy of system:aggregate-to-view; edit's first pass sees
	// only system:aggregate-to-edit because view is still empty.
	if !slices.EqualFunc(first["view"], roles["system:aggregate-to-view"].Rules, rulesEqual) {
		t.Errorf("view = %v", first["view"])
	}
	if !slices.EqualFunc(first["edit"], roles["system:aggregate-to-edit"].Rules, rulesEqual) {
		t.Errorf("edit = %v", first["edit"])
	}

	settle(t, list)
	want := func(names ...string) []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for _, n := range names {
			out = append(out, roles[n].Rules...)
		}
		return out
	}
	// Sources are taken by name: edit < system:aggregate-to-admin, and
	// system:aggregate-to-edit < view.
	if got, w := roles["edit"].Rules, want("system:aggregate-to-edit", "system:aggregate-to-view"); !slices.EqualFunc(got, w, rulesEqual) {
		t.Errorf("settled edit has %d rules, want %d", len(got), len(w))
	}
	if got, w := roles["admin"].Rules, want("edit", "system:aggregate-to-admin"); !slices.EqualFunc(got, w, rulesEqual) {
		t.Errorf("settled admin has %d rules, want %d", len(got), len(w))
	}
	if len(Aggregate(list)) != 0 {
		t.Error("settled roles still change")
	}
}

func TestAggregate(t *testing.T) {
	labelled := func(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		r := testClusterRole(name, rules...)
		r.Labels = labels
		return r
	}
	aggregating := func(name string, rules []rbacv1.PolicyRule, selectors ...map[string]string) *rbacv1.ClusterRole {
		r := testClusterRole(name, rules...)
		r.AggregationRule = &rbacv1.AggregationRule{}
		for _, s := range selectors {
			r.AggregationRule.ClusterRoleSelectors = append(r.AggregationRule.ClusterRoleSelectors, labelSelector(s))
		}
		return r
	}
	get, list, watch := verbs("get"), verbs("list"), verbs("watch")
	tests := []struct {
		name  string
		roles []*rbacv1.ClusterRole
		want  map[string][]rbacv1.PolicyRule
	}{
		{"sources by name, duplicates once",
			[]*rbacv1.ClusterRole{
				aggregating("agg", nil, map[string]string{"x": "true"}),
				labelled("zz", map[string]string{"x": "true"}, watch, get),
				labelled("aa", map[string]string{"x": "true"}, get, list),
				labelled("unlabelled", nil, verbs("delete")),
			},
			map[string][]rbacv1.PolicyRule{"agg": {get, list, watch}}},
		{"selectors in order",
			[]*rbacv1.ClusterRole{
				aggregating("agg", nil, map[string]string{"y": "true"}, map[string]string{"x": "true"}),
				labelled("a", map[string]string{"x": "true"}, get),
				labelled("b", map[string]string{"y": "true"}, list),
			},
			map[string][]rbacv1.PolicyRule{"agg": {list, get}}},
		{"unchanged roles omitted",
			[]*rbacv1.ClusterRole{
				aggregating("agg", []rbacv1.PolicyRule{get}, map[string]string{"x": "true"}),
				labelled("a", map[string]string{"x": "true"}, get),
			},
			map[string][]rbacv1.PolicyRule{}},
		{"nothing matched and no rules is unchanged",
			[]*rbacv1.ClusterRole{aggregating("agg", nil, map[string]string{"x": "true"})},
			map[string][]rbacv1.PolicyRule{}},
		{"rules removed when sources go",
			[]*rbacv1.ClusterRole{aggregating("agg", []rbacv1.PolicyRule{get}, map[string]string{"x": "true"})},
			map[string][]rbacv1.PolicyRule{"agg": {}}},
		{"a role does not aggregate itself",
			[]*rbacv1.ClusterRole{func() *rbacv1.ClusterRole {
				r := aggregating("self", []rbacv1.PolicyRule{get}, map[string]string{"x": "true"})
				r.Labels = map[string]string{"x": "true"}
				return r
			}()},
			map[string][]rbacv1.PolicyRule{"self": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Aggregate(tt.roles)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for name, w := range tt.want {
				g, ok := got[name]
				if !ok || !slices.EqualFunc(g, w, rulesEqual) {
					t.Errorf("%s = %v, want %v", name, g, w)
				}
			}
		})
	}
}

func TestDefaultPolicyCanIList(t *testing.T) {
	// What "kubectl auth can-i --list" shows a user with view in a:
	// cluster-wide grants first, then the namespace's.
	r := loadDefaultPolicy(t)
	r.Apply(root, testRB("a", "viewer", "ClusterRole", "view", userSubject("viewer")), false)
	rules, incomplete := r.RulesFor(root, u("viewer", authn.AllAuthenticated), "a")
	if incomplete {
		t.Error("incomplete")
	}
	var sb strings.Builder
	for _, rule := range rules {
		sb.WriteString(compactString(rule))
		sb.WriteString("\n")
	}
	got := sb.String()
	if !strings.Contains(got, `{APIGroups:["authorization.k8s.io"], Resources:["selfsubjectaccessreviews" "selfsubjectrulesreviews"], Verbs:["create"]}`) ||
		!strings.Contains(got, `{APIGroups:[""], Resources:["namespaces"], Verbs:["get" "list" "watch"]}`) ||
		!strings.Contains(got, `{NonResourceURLs:["/healthz" "/livez" "/readyz" "/version" "/version/"], Verbs:["get"]}`) {
		t.Errorf("rules:\n%s", got)
	}
	if strings.Contains(got, "secrets") {
		t.Errorf("view grants secrets:\n%s", got)
	}
}

func labelSelector(m map[string]string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchLabels: m}
}
