package authz

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pgkube/pgkube/authn"
)

const root = "root"

func testClusterRole(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}

func testRole(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func testCRB(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}

func testRB(ns, name, kind, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		Subjects:   subjects,
	}
}

func verbs(v ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: v, APIGroups: []string{""}, Resources: []string{"pods"}}
}

func u(name string, groups ...string) *authn.User { return &authn.User{Name: name, Groups: groups} }

func get(user *authn.User, ns, resource, name string) Attributes {
	return Attributes{Cluster: root, User: user, Verb: "get", ResourceRequest: true, Namespace: ns, Resource: resource, Name: name}
}

func TestRBACAuthorize(t *testing.T) {
	r := NewRBAC()
	r.Replace(root, []runtime.Object{
		testClusterRole("pod-reader", verbs("get")),
		testClusterRole("pod-deleter", verbs("delete")),
		testRole("a", "local", verbs("update")),
		testRole("b", "local", verbs("patch")),
		testCRB("alice-reads", "pod-reader", userSubject("alice")),
		testCRB("devs-read", "pod-reader", groupSubject("devs")),
		testRB("a", "bob-deletes", "ClusterRole", "pod-deleter", userSubject("bob")),
		testRB("a", "bob-local", "Role", "local", userSubject("bob")),
		testRB("a", "sa-explicit", "ClusterRole", "pod-reader", serviceAccountSubject("other", "robot")),
		testRB("a", "sa-defaulted", "ClusterRole", "pod-deleter", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "robot"}),
		testCRB("sa-no-namespace", "pod-deleter", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "robot"}),
		testRB("a", "dangling", "Role", "missing", userSubject("carol")),
		testRB("a", "dangling2", "ClusterRole", "gone", userSubject("carol")),
		testRB("a", "first-subject", "ClusterRole", "pod-deleter", groupSubject("ops"), userSubject("dave")),
		testRB("a", "strange-kind", "ClusterRole", "pod-reader", rbacv1.Subject{Kind: "Robot", Name: "erin"}),
		testRB("a", "sa-as-user", "ClusterRole", "pod-reader", userSubject("system:serviceaccount:a:named")),
	})
	del := func(user *authn.User, ns string) Attributes {
		a := get(user, ns, "pods", "p")
		a.Verb = "delete"
		return a
	}
	tests := []struct {
		name   string
		a      Attributes
		want   Decision
		reason string
	}{
		{"user binding, namespaced", get(u("alice"), "x", "pods", "p"), Allow,
			`RBAC: allowed by ClusterRoleBinding "alice-reads" of ClusterRole "pod-reader" to User "alice"`},
		{"user binding, cluster scope", get(u("alice"), "", "pods", "p"), Allow,
			`RBAC: allowed by ClusterRoleBinding "alice-reads" of ClusterRole "pod-reader" to User "alice"`},
		{"group binding", get(u("zed", "devs"), "x", "pods", "p"), Allow,
			`RBAC: allowed by ClusterRoleBinding "devs-read" of ClusterRole "pod-reader" to Group "devs"`},
		{"verb not granted", del(u("alice"), "x"), NoOpinion, ""},
		{"unknown user", get(u("mallory"), "x", "pods", "p"), NoOpinion, ""},
		{"rolebinding to clusterrole in its namespace", del(u("bob"), "a"), Allow,
			`RBAC: allowed by RoleBinding "bob-deletes/a" of ClusterRole "pod-deleter" to User "bob"`},
		{"rolebinding not in other namespace", del(u("bob"), "b"), NoOpinion, ""},
		{"rolebinding not at cluster scope", del(u("bob"), ""), NoOpinion, ""},
		{"rolebinding to role in its namespace", Attributes{Cluster: root, User: u("bob"), Verb: "update", ResourceRequest: true, Namespace: "a", Resource: "pods", Name: "p"}, Allow,
			`RBAC: allowed by RoleBinding "bob-local/a" of Role "local" to User "bob"`},
		{"same-named role elsewhere is not used", Attributes{Cluster: root, User: u("bob"), Verb: "patch", ResourceRequest: true, Namespace: "a", Resource: "pods", Name: "p"}, NoOpinion, ""},
		{"service account subject", get(u("system:serviceaccount:other:robot"), "a", "pods", "p"), Allow,
			`RBAC: allowed by RoleBinding "sa-explicit/a" of ClusterRole "pod-reader" to ServiceAccount "robot/other"`},
		{"service account subject defaults to binding namespace", del(u("system:serviceaccount:a:robot"), "a"), Allow,
			`RBAC: allowed by RoleBinding "sa-defaulted/a" of ClusterRole "pod-deleter" to ServiceAccount "robot/a"`},
		{"namespace-less service account in clusterrolebinding names nobody", del(u("system:serviceaccount:x:robot"), "x"), NoOpinion, ""},
		{"service account name is matched whole", get(u("system:serviceaccount:other:robot2"), "a", "pods", "p"), NoOpinion, ""},
		{"service account name is not a group", get(u("x", "system:serviceaccount:other:robot"), "a", "pods", "p"), NoOpinion, ""},
		{"user subject may name a service account", get(u("system:serviceaccount:a:named"), "a", "pods", "p"), Allow,
			`RBAC: allowed by RoleBinding "sa-as-user/a" of ClusterRole "pod-reader" to User "system:serviceaccount:a:named"`},
		{"missing roles are reported", get(u("carol"), "a", "pods", "p"), NoOpinion,
			`RBAC: [role.rbac.authorization.k8s.io "missing" not found, clusterrole.rbac.authorization.k8s.io "gone" not found]`},
		{"reason cites the first matching subject", del(u("dave", "ops"), "a"), Allow,
			`RBAC: allowed by RoleBinding "first-subject/a" of ClusterRole "pod-deleter" to Group "ops"`},
		{"unknown subject kinds match nobody", get(u("erin", "erin"), "a", "pods", "p"), NoOpinion, ""},
		{"other cluster", func() Attributes { a := get(u("alice"), "x", "pods", "p"); a.Cluster = "tenant"; return a }(), NoOpinion, ""},
		{"no user", get(nil, "x", "pods", "p"), NoOpinion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, err := r.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want || reason != tt.reason {
				t.Errorf("got %v %q, want %v %q", d, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestRBACDanglingSingle(t *testing.T) {
	r := NewRBAC()
	r.Apply(root, testCRB("x", "nope", userSubject("u")), false)
	_, reason, _ := r.Authorize(context.Background(), get(u("u"), "", "pods", "p"))
	if want := `RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found`; reason != want {
		t.Errorf("reason %q, want %q", reason, want)
	}
	// Creating the role later makes the binding effective.
	r.Apply(root, testClusterRole("nope", verbs("get")), false)
	if d, _, _ := r.Authorize(context.Background(), get(u("u"), "", "pods", "p")); d != Allow {
		t.Errorf("binding did not take effect once its role existed: %v", d)
	}
}

func TestRBACApply(t *testing.T) {
	ctx := context.Background()
	r := NewRBAC()
	allowed := func(user *authn.User, verb, ns string) bool {
		a := get(user, ns, "pods", "p")
		a.Verb = verb
		d, _, _ := r.Authorize(ctx, a)
		return d == Allow
	}
	check := func(step string, user *authn.User, verb, ns string, want bool) {
		t.Helper()
		if got := allowed(user, verb, ns); got != want {
			t.Errorf("%s: %s %s in %q = %v, want %v", step, user.Name, verb, ns, got, want)
		}
	}

	r.Apply(root, testClusterRole("cr", verbs("get")), false)
	r.Apply(root, testCRB("b", "cr", userSubject("alice")), false)
	check("added", u("alice"), "get", "", true)

	// Changing a binding's subjects revokes the old subjects.
	r.Apply(root, testCRB("b", "cr", userSubject("bob")), false)
	check("subject changed", u("alice"), "get", "", false)
	check("subject changed", u("bob"), "get", "", true)

	// Changing a role's rules takes effect for existing bindings.
	r.Apply(root, testClusterRole("cr", verbs("list")), false)
	check("rules changed", u("bob"), "get", "", false)
	check("rules changed", u("bob"), "list", "", true)

	// Deletion goes by name: the object passed need not match.
	r.Apply(root, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, true)
	check("binding deleted", u("bob"), "list", "", false)

	r.Apply(root, testRole("a", "r", verbs("watch")), false)
	r.Apply(root, testRB("a", "rb", "Role", "r", userSubject("carol")), false)
	r.Apply(root, testRB("a", "rb2", "Role", "r", groupSubject("g")), false)
	check("namespaced", u("carol"), "watch", "a", true)
	check("namespaced", u("carol", "g"), "watch", "a", true)
	r.Apply(root, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "rb"}}, true)
	check("rolebinding deleted", u("carol"), "watch", "a", false)
	check("other rolebinding kept", u("carol", "g"), "watch", "a", true)
	r.Apply(root, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "r"}}, true)
	check("role deleted", u("carol", "g"), "watch", "a", false)
	r.Apply(root, testRole("a", "r", verbs("watch")), false)
	check("role recreated", u("carol", "g"), "watch", "a", true)

	// Deleting what does not exist, and unknown types, change nothing.
	r.Apply(root, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "zz", Name: "none"}}, true)
	r.Apply(root, &metav1.Status{}, false)
	check("no-ops", u("carol", "g"), "watch", "a", true)

	// Objects are copied: changing the caller's object changes nothing.
	cr := testClusterRole("copied", verbs("create"))
	r.Apply(root, cr, false)
	r.Apply(root, testCRB("copied", "copied", userSubject("dan")), false)
	cr.Rules[0].Verbs[0] = "delete"
	check("copied", u("dan"), "create", "", true)
	check("copied", u("dan"), "delete", "", false)
}

func TestRBACReplace(t *testing.T) {
	r := NewRBAC()
	r.Replace(root, []runtime.Object{testClusterRole("cr", verbs("get")), testCRB("old", "cr", userSubject("alice"))})
	r.Replace("tenant", []runtime.Object{testClusterRole("cr", verbs("get")), testCRB("t", "cr", userSubject("alice"))})
	r.Replace(root, []runtime.Object{testClusterRole("cr", verbs("get")), testCRB("new", "cr", userSubject("bob"))})
	for _, tt := range []struct {
		cluster, user string
		want          Decision
	}{
		{root, "alice", NoOpinion},
		{root, "bob", Allow},
		{"tenant", "alice", Allow},
		{"tenant", "bob", NoOpinion},
	} {
		a := get(u(tt.user), "", "pods", "p")
		a.Cluster = tt.cluster
		if d, _, _ := r.Authorize(context.Background(), a); d != tt.want {
			t.Errorf("%s/%s: %v, want %v", tt.cluster, tt.user, d, tt.want)
		}
	}
	// Replace then Apply: the index built in one go must be editable.
	r.Apply(root, testCRB("new", "cr", userSubject("carol")), false)
	if d, _, _ := r.Authorize(context.Background(), get(u("bob"), "", "pods", "p")); d != NoOpinion {
		t.Error("replaced binding still grants its old subject")
	}
	if d, _, _ := r.Authorize(context.Background(), get(u("carol"), "", "pods", "p")); d != Allow {
		t.Error("binding changed after Replace does not grant its new subject")
	}
}

func TestRulesFor(t *testing.T) {
	r := NewRBAC()
	clusterRule := verbs("get")
	nsRule := verbs("list")
	roleRule := verbs("watch")
	r.Replace(root, []runtime.Object{
		testClusterRole("c", clusterRule),
		testClusterRole("n", nsRule),
		testRole("a", "r", roleRule),
		// Names alice twice over: its rules must still be listed once.
		testCRB("both", "c", userSubject("alice"), groupSubject("g")),
		testRB("a", "ns", "ClusterRole", "n", groupSubject("g")),
		testRB("a", "role", "Role", "r", userSubject("alice")),
		testRB("b", "other", "ClusterRole", "n", userSubject("alice")),
	})
	tests := []struct {
		name       string
		user       *authn.User
		ns         string
		want       []rbacv1.PolicyRule
		incomplete bool
	}{
		{"cluster scope", u("alice", "g"), "", []rbacv1.PolicyRule{clusterRule}, false},
		// Bindings naming the user come before those naming its groups.
		{"namespace a", u("alice", "g"), "a", []rbacv1.PolicyRule{clusterRule, roleRule, nsRule}, false},
		{"namespace b", u("alice"), "b", []rbacv1.PolicyRule{clusterRule, nsRule}, false},
		{"nobody", u("zed"), "a", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, incomplete := r.RulesFor(root, tt.user, tt.ns)
			if !slices.EqualFunc(got, tt.want, rulesEqual) || incomplete != tt.incomplete {
				t.Errorf("got %v %v, want %v %v", got, incomplete, tt.want, tt.incomplete)
			}
		})
	}
	r.Apply(root, testRB("a", "dangling", "Role", "nope", userSubject("alice")), false)
	got, incomplete := r.RulesFor(root, u("alice"), "a")
	if !incomplete || len(got) != 2 {
		t.Errorf("with a dangling binding: %v %v, want 2 rules, incomplete", got, incomplete)
	}
}

func rulesEqual(x, y rbacv1.PolicyRule) bool { return fmt.Sprint(x) == fmt.Sprint(y) }

func TestClusterRolesAndRoleRules(t *testing.T) {
	r := NewRBAC()
	r.Replace(root, []runtime.Object{
		testClusterRole("b", verbs("get")),
		testClusterRole("a", verbs("list")),
		testRole("ns", "r", verbs("watch")),
	})
	var names []string
	for _, cr := range r.ClusterRoles(root) {
		names = append(names, cr.Name)
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("ClusterRoles = %v", names)
	}
	if got := r.ClusterRoles("tenant"); len(got) != 0 {
		t.Errorf("unknown cluster has roles %v", got)
	}

	tests := []struct {
		name    string
		ns      string
		ref     rbacv1.RoleRef
		want    string // rule verb, or error text
		notFind bool
	}{
		{"clusterrole", "", rbacv1.RoleRef{Kind: "ClusterRole", Name: "a"}, "list", false},
		{"clusterrole from a namespace", "ns", rbacv1.RoleRef{Kind: "ClusterRole", Name: "b"}, "get", false},
		{"role", "ns", rbacv1.RoleRef{Kind: "Role", Name: "r"}, "watch", false},
		{"role elsewhere", "other", rbacv1.RoleRef{Kind: "Role", Name: "r"}, `roles.rbac.authorization.k8s.io "r" not found`, true},
		{"missing clusterrole", "", rbacv1.RoleRef{Kind: "ClusterRole", Name: "x"}, `clusterroles.rbac.authorization.k8s.io "x" not found`, true},
		{"bad kind", "ns", rbacv1.RoleRef{Kind: "Thing", Name: "r"}, `unsupported role reference kind: "Thing"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := r.RoleRules(root, tt.ns, tt.ref)
			if err != nil {
				if err.Error() != tt.want || apierrors.IsNotFound(err) != tt.notFind {
					t.Errorf("error %q (NotFound %v), want %q (NotFound %v)", err, apierrors.IsNotFound(err), tt.want, tt.notFind)
				}
				return
			}
			if len(rules) != 1 || rules[0].Verbs[0] != tt.want {
				t.Errorf("rules %v, want verb %s", rules, tt.want)
			}
		})
	}
}

// Readers run while writers publish new snapshots; a change made in place
// to a published map would make the runtime abort with a concurrent map
// access, and a torn snapshot would show as a wrong decision.
func TestRBACConcurrent(t *testing.T) {
	r := NewRBAC()
	r.Replace(root, []runtime.Object{testClusterRole("cr", verbs("get")), testCRB("keep", "cr", userSubject("alice"))})
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d, _, _ := r.Authorize(ctx, get(u("alice"), "ns", "pods", "p")); d != Allow {
					t.Error("stable binding lost during writes")
					return
				}
				r.RulesFor(root, u("bob"), "ns")
				r.Authorize(ctx, get(u("bob"), "ns", "pods", "p"))
			}
		}()
	}
	for i := range 2000 {
		name := fmt.Sprintf("b%d", i%50)
		r.Apply(root, testRB("ns", name, "ClusterRole", "changing", userSubject("bob")), i%3 == 0)
		r.Apply(root, testCRB(name, "changing", userSubject("bob")), i%2 == 0)
		r.Apply(root, testClusterRole("changing", verbs(name)), i%5 == 0)
		r.Apply(root, testRole("ns", "changing", verbs(name)), i%7 == 0)
	}
	close(stop)
	wg.Wait()
}

// benchRBAC loads the default policy plus 50 RoleBindings for one user in
// one namespace, each to its own Role, so a request only the last one
// allows walks them all.
func benchRBAC(b *testing.B) *RBAC {
	r := loadDefaultPolicy(b)
	for i := range 50 {
		res := fmt.Sprintf("things%02d", i)
		r.Apply(root, testRole("bench", "role"+res,
			rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{"example.com"}, Resources: []string{res}},
			rbacv1.PolicyRule{Verbs: []string{"update"}, APIGroups: []string{"example.com"}, Resources: []string{res + "/status"}},
			rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{res}},
		), false)
		r.Apply(root, testRB("bench", "binding"+res, "Role", "role"+res, userSubject("alice")), false)
	}
	return r
}

func BenchmarkAuthorize50Bindings(b *testing.B) {
	r := benchRBAC(b)
	alice := u("alice", authn.AllAuthenticated, "developers")
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		a    Attributes
		want Decision
	}{
		{"allowed-by-last", Attributes{Cluster: root, User: alice, Verb: "get", ResourceRequest: true, Namespace: "bench", APIGroup: "example.com", Resource: "things49", Name: "x"}, Allow},
		{"allowed-subresource", Attributes{Cluster: root, User: alice, Verb: "update", ResourceRequest: true, Namespace: "bench", APIGroup: "example.com", Resource: "things49", Subresource: "status", Name: "x"}, Allow},
		{"denied", Attributes{Cluster: root, User: alice, Verb: "delete", ResourceRequest: true, Namespace: "bench", APIGroup: "example.com", Resource: "things49", Name: "x"}, NoOpinion},
		{"allowed-by-clusterrolebinding", Attributes{Cluster: root, User: alice, Verb: "create", ResourceRequest: true, APIGroup: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}, Allow},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, _, _ := r.Authorize(ctx, bc.a); d != bc.want {
					b.Fatalf("decision %v, want %v", d, bc.want)
				}
			}
		})
	}
}

func BenchmarkAuthorizeParallel(b *testing.B) {
	r := benchRBAC(b)
	a := Attributes{Cluster: root, User: u("alice", authn.AllAuthenticated), Verb: "get", ResourceRequest: true, Namespace: "bench", APIGroup: "example.com", Resource: "things49", Name: "x"}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Authorize(ctx, a)
		}
	})
}
