package authz

import (
	"encoding/json"
	"runtime"
	"sync"
	"weak"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// interner shares identical roles between clusters. Every tenant starts
// with the same default policy, about a hundred roles; held once per
// tenant they would be most of what an idle tenant costs in memory. Only
// what evaluation and aggregation read is kept (name, labels, rules,
// aggregation rule), so two tenants' copies of a role are identical
// whatever their metadata. Entries go when no cluster holds them any more.
type interner struct {
	mu    sync.Mutex
	roles map[string]weak.Pointer[rbacv1.ClusterRole]
	nsd   map[string]weak.Pointer[rbacv1.Role]
}

func (in *interner) clusterRole(o *rbacv1.ClusterRole) *rbacv1.ClusterRole {
	slim := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: o.Labels}, Rules: o.Rules,
		AggregationRule: o.AggregationRule}
	key, err := json.Marshal(slim)
	if err != nil {
		return slim.DeepCopy()
	}
	return intern(&in.mu, &in.roles, string(key), slim)
}

func (in *interner) role(o *rbacv1.Role) *rbacv1.Role {
	slim := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace}, Rules: o.Rules}
	key, err := json.Marshal(slim)
	if err != nil {
		return slim.DeepCopy()
	}
	return intern(&in.mu, &in.nsd, string(key), slim)
}

// intern returns the shared copy of v under key, making one (a deep copy,
// so the caller's object stays the caller's) if there is none alive.
func intern[T any, PT interface {
	*T
	DeepCopy() PT
}](mu *sync.Mutex, m *map[string]weak.Pointer[T], key string, v PT) PT {
	mu.Lock()
	defer mu.Unlock()
	if *m == nil {
		*m = map[string]weak.Pointer[T]{}
	}
	if p := (*m)[key].Value(); p != nil {
		return p
	}
	c := v.DeepCopy()
	wp := weak.Make((*T)(c))
	(*m)[key] = wp
	runtime.AddCleanup((*T)(c), func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if (*m)[key] == wp {
			delete(*m, key)
		}
	}, key)
	return c
}
