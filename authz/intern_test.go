package authz

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Tenants holding the same default policy share one copy of each role; a
// role a tenant changes is its own, and changing it leaves the others'.
func TestClustersShareIdenticalRoles(t *testing.T) {
	r := NewRBAC()
	p := DefaultPolicy()
	load := func(cluster string) {
		var objs []runtime.Object
		for i := range p.ClusterRoles {
			cr := p.ClusterRoles[i].DeepCopy()
			cr.ResourceVersion = cluster // metadata differs between clusters
			objs = append(objs, cr)
		}
		for i := range p.Roles {
			objs = append(objs, p.Roles[i].DeepCopy())
		}
		r.Replace(cluster, objs)
	}
	load("a")
	load("b")
	a, b := r.load("a"), r.load("b")
	if len(a.clusterRoles) == 0 {
		t.Fatal("no roles loaded")
	}
	for name, role := range a.clusterRoles {
		if b.clusterRoles[name] != role {
			t.Errorf("cluster role %s is held twice", name)
		}
	}
	edit := p.ClusterRoles[0].DeepCopy()
	edit.Rules = append(edit.Rules, rbacv1.PolicyRule{Verbs: []string{"get"}, Resources: []string{"extra"}, APIGroups: []string{""}})
	r.Apply("b", edit, false)
	if got := r.load("a").clusterRoles[edit.Name]; len(got.Rules) != len(p.ClusterRoles[0].Rules) {
		t.Errorf("a's %s changed with b's: %d rules", edit.Name, len(got.Rules))
	}
	if got := r.load("b").clusterRoles[edit.Name]; len(got.Rules) != len(edit.Rules) {
		t.Errorf("b's %s has %d rules, want %d", edit.Name, len(got.Rules), len(edit.Rules))
	}
}
