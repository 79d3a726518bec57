package authz

import (
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/pgkube/pgkube/authn"
)

// snapshot is one cluster's RBAC objects at one moment. It is never changed
// once published: a writer copies what it changes (the top-level maps and
// the one namespace it touches) and shares the rest, so readers need no
// lock and a write costs the size of what it touches, not of the cluster.
type snapshot struct {
	// decisions remembers answers given from this snapshot; a new snapshot
	// starts with an empty cache, so no answer outlives the policy it was
	// computed from.
	decisions *decisionCache

	// rolesGen changes whenever a Role or ClusterRole does, which is what
	// invalidates the role each binding has cached.
	rolesGen uint64

	clusterRoles    map[string]*rbacv1.ClusterRole
	clusterBindings map[string]*binding
	// cluster holds the ClusterRoleBindings indexed by subject.
	cluster    subjectIndex
	namespaces map[string]*nsSnapshot
}

type nsSnapshot struct {
	roles    map[string]*rbacv1.Role
	bindings map[string]*binding
	index    subjectIndex
}

// binding is what evaluation needs of a RoleBinding or ClusterRoleBinding.
type binding struct {
	namespace string // "" for a ClusterRoleBinding
	name      string
	roleRef   rbacv1.RoleRef
	subjects  []rbacv1.Subject
	reasons   []string // the Allow reason citing each subject

	// resolved caches the rules of the role referred to. Bindings are
	// shared by successive snapshots, so the entry records which roles
	// generation it was read from.
	resolved atomic.Pointer[resolution]
}

type resolution struct {
	gen     uint64
	rules   []rbacv1.PolicyRule
	missing *danglingRef
}

// subjectIndex finds the bindings naming an identity. Service account
// subjects are filed under the user name they authenticate as, so a
// request's identities are just its user name and its groups. Each list is
// sorted by binding name, which makes the binding an Allow names stable.
type subjectIndex struct {
	users  map[string][]*binding
	groups map[string][]*binding
}

func (s *snapshot) ns(namespace string) *nsSnapshot {
	return s.namespaces[namespace]
}

// subjectKeys lists the user and group names b grants to, each once.
func (b *binding) subjectKeys() (users, groups []string) {
	for _, s := range b.subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = appendOnce(users, s.Name)
		case rbacv1.GroupKind:
			groups = appendOnce(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			if u, ok := serviceAccountUser(s, b.namespace); ok {
				users = appendOnce(users, u)
			}
		}
	}
	return users, groups
}

// serviceAccountUser is the user name a ServiceAccount subject stands for.
// A RoleBinding's subject may leave its namespace to the binding's; a
// ClusterRoleBinding's may not, and then names nobody.
func serviceAccountUser(s rbacv1.Subject, bindingNamespace string) (string, bool) {
	ns := s.Namespace
	if ns == "" {
		ns = bindingNamespace
	}
	if ns == "" {
		return "", false
	}
	return authn.ServiceAccountPrefix + ns + ":" + s.Name, true
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// firstSubject is the index of the first of b's subjects that names u,
// which is the one an Allow reason cites.
func (b *binding) firstSubject(u *authn.User) int {
	for i, s := range b.subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == u.Name {
				return i
			}
		case rbacv1.GroupKind:
			if u.InGroup(s.Name) {
				return i
			}
		case rbacv1.ServiceAccountKind:
			if name, ok := serviceAccountUser(s, b.namespace); ok && name == u.Name {
				return i
			}
		}
	}
	return -1
}

func (ix subjectIndex) clone() subjectIndex {
	return subjectIndex{users: maps.Clone(ix.users), groups: maps.Clone(ix.groups)}
}

// add and remove must be called on a clone: they replace the lists they
// change rather than editing them, since older snapshots share them.
func (ix *subjectIndex) add(b *binding) {
	users, groups := b.subjectKeys()
	if ix.users == nil {
		ix.users = map[string][]*binding{}
	}
	if ix.groups == nil {
		ix.groups = map[string][]*binding{}
	}
	for _, u := range users {
		ix.users[u] = insertSorted(ix.users[u], b)
	}
	for _, g := range groups {
		ix.groups[g] = insertSorted(ix.groups[g], b)
	}
}

func (ix *subjectIndex) remove(b *binding) {
	users, groups := b.subjectKeys()
	for _, u := range users {
		setOrDelete(ix.users, u, without(ix.users[u], b))
	}
	for _, g := range groups {
		setOrDelete(ix.groups, g, without(ix.groups[g], b))
	}
}

func compareBindings(x, y *binding) int { return strings.Compare(x.name, y.name) }

func insertSorted(list []*binding, b *binding) []*binding {
	i, _ := slices.BinarySearchFunc(list, b, compareBindings)
	out := make([]*binding, 0, len(list)+1)
	out = append(out, list[:i]...)
	out = append(out, b)
	return append(out, list[i:]...)
}

func without(list []*binding, b *binding) []*binding {
	i := slices.Index(list, b)
	if i < 0 {
		return list
	}
	out := make([]*binding, 0, len(list)-1)
	out = append(out, list[:i]...)
	return append(out, list[i+1:]...)
}

func setOrDelete(m map[string][]*binding, k string, v []*binding) {
	if len(v) == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

// build indexes a full set of objects at once, for Replace.
func build(clusterRoles []*rbacv1.ClusterRole, roles []*rbacv1.Role, bindings []*binding) *snapshot {
	s := &snapshot{
		clusterRoles:    map[string]*rbacv1.ClusterRole{},
		clusterBindings: map[string]*binding{},
		namespaces:      map[string]*nsSnapshot{},
	}
	nsOf := func(name string) *nsSnapshot {
		n := s.namespaces[name]
		if n == nil {
			n = &nsSnapshot{roles: map[string]*rbacv1.Role{}, bindings: map[string]*binding{}}
			s.namespaces[name] = n
		}
		return n
	}
	for _, r := range clusterRoles {
		s.clusterRoles[r.Name] = r
	}
	for _, r := range roles {
		nsOf(r.Namespace).roles[r.Name] = r
	}
	// Later duplicates win, as they would had they been applied in turn.
	for _, b := range bindings {
		if b.namespace == "" {
			s.clusterBindings[b.name] = b
		} else {
			nsOf(b.namespace).bindings[b.name] = b
		}
	}
	s.cluster = indexAll(s.clusterBindings)
	for _, n := range s.namespaces {
		n.index = indexAll(n.bindings)
	}
	return s
}

func indexAll(bindings map[string]*binding) subjectIndex {
	ix := subjectIndex{users: map[string][]*binding{}, groups: map[string][]*binding{}}
	for _, b := range bindings {
		users, groups := b.subjectKeys()
		for _, u := range users {
			ix.users[u] = append(ix.users[u], b)
		}
		for _, g := range groups {
			ix.groups[g] = append(ix.groups[g], b)
		}
	}
	for _, l := range ix.users {
		slices.SortFunc(l, compareBindings)
	}
	for _, l := range ix.groups {
		slices.SortFunc(l, compareBindings)
	}
	return ix
}

// withClusterRole returns a copy of s with r set, or removed when r is nil.
func (s *snapshot) withClusterRole(name string, r *rbacv1.ClusterRole) *snapshot {
	c := *s
	c.rolesGen++
	c.clusterRoles = maps.Clone(s.clusterRoles)
	if c.clusterRoles == nil {
		c.clusterRoles = map[string]*rbacv1.ClusterRole{}
	}
	if r == nil {
		delete(c.clusterRoles, name)
	} else {
		c.clusterRoles[name] = r
	}
	return &c
}

func (s *snapshot) withClusterBinding(name string, b *binding) *snapshot {
	c := *s
	c.clusterBindings = maps.Clone(s.clusterBindings)
	if c.clusterBindings == nil {
		c.clusterBindings = map[string]*binding{}
	}
	c.cluster = s.cluster.clone()
	if old := s.clusterBindings[name]; old != nil {
		c.cluster.remove(old)
		delete(c.clusterBindings, name)
	}
	if b != nil {
		c.clusterBindings[name] = b
		c.cluster.add(b)
	}
	return &c
}

// withNamespace returns a copy of s whose namespace ns is replaced by what
// edit makes of a copy of it; a namespace left empty is dropped.
func (s *snapshot) withNamespace(ns string, edit func(n *nsSnapshot)) *snapshot {
	c := *s
	c.namespaces = maps.Clone(s.namespaces)
	if c.namespaces == nil {
		c.namespaces = map[string]*nsSnapshot{}
	}
	n := &nsSnapshot{}
	if old := s.namespaces[ns]; old != nil {
		*n = *old
	}
	edit(n)
	if len(n.roles) == 0 && len(n.bindings) == 0 {
		delete(c.namespaces, ns)
	} else {
		c.namespaces[ns] = n
	}
	return &c
}

// withRole returns a copy of s with namespace's role name set to r, or
// removed when r is nil.
func (s *snapshot) withRole(namespace, name string, r *rbacv1.Role) *snapshot {
	c := s.withNamespace(namespace, func(n *nsSnapshot) { n.setRole(name, r) })
	c.rolesGen++
	return c
}

func (n *nsSnapshot) setRole(name string, r *rbacv1.Role) {
	n.roles = maps.Clone(n.roles)
	if n.roles == nil {
		n.roles = map[string]*rbacv1.Role{}
	}
	if r == nil {
		delete(n.roles, name)
	} else {
		n.roles[name] = r
	}
}

func (n *nsSnapshot) setBinding(name string, b *binding) {
	old := n.bindings[name]
	n.bindings = maps.Clone(n.bindings)
	if n.bindings == nil {
		n.bindings = map[string]*binding{}
	}
	n.index = n.index.clone()
	if old != nil {
		n.index.remove(old)
		delete(n.bindings, name)
	}
	if b != nil {
		n.bindings[name] = b
		n.index.add(b)
	}
}
