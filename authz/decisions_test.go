package authz

import (
	"context"
	"testing"

	"github.com/pgkube/pgkube/authn"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDecisionCacheFollowsPolicy: a remembered answer never survives a
// change of the policy it came from, in either direction.
func TestDecisionCacheFollowsPolicy(t *testing.T) {
	r := NewRBAC()
	u := &authn.User{Name: "ann", Groups: []string{authn.AllAuthenticated}}
	a := Attributes{Cluster: "c", User: u, ResourceRequest: true, Verb: "get", Namespace: "ns", Resource: "pods", Name: "p"}
	ask := func() Decision {
		t.Helper()
		d, _, err := r.Authorize(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := 0; i < 2; i++ {
		if ask() != NoOpinion {
			t.Fatal("allowed with no policy")
		}
	}
	r.Apply("c", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "r"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, false)
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "ann"}}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}}
	r.Apply("c", binding, false)
	for i := 0; i < 2; i++ {
		if ask() != Allow {
			t.Fatal("a cached denial outlived the binding that allows")
		}
	}
	r.Apply("c", binding, true)
	if ask() != NoOpinion {
		t.Fatal("a cached allow outlived its binding")
	}
	// Same name, different groups: a different question.
	r.Apply("c", &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "team"}}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}}, false)
	if ask() != NoOpinion {
		t.Fatal("ann is not in team")
	}
	a.User = &authn.User{Name: "ann", Groups: []string{"team"}}
	if ask() != Allow {
		t.Fatal("the answer for ann without team was reused for ann in team")
	}
}
