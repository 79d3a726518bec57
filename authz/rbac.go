package authz

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/pgkube/pgkube/authn"
)

// RBAC authorizes requests from an in-memory copy of each cluster's Roles,
// ClusterRoles and bindings, kept current by Apply and Replace. It is safe
// for concurrent use; readers never wait for writers.
type RBAC struct {
	// writeMu serializes writers so none loses another's change when both
	// copy the same snapshot.
	writeMu  sync.Mutex
	clusters sync.Map // cluster name → *atomic.Pointer[snapshot]
	// empty answers for clusters not loaded yet; it is never written.
	empty  snapshot
	shared interner
}

// NewRBAC returns an RBAC that knows no objects: it allows nothing until
// Replace or Apply feeds it.
func NewRBAC() *RBAC {
	return &RBAC{}
}

var _ Authorizer = (*RBAC)(nil)

func (r *RBAC) load(cluster string) *snapshot {
	if p, ok := r.clusters.Load(cluster); ok {
		if s := p.(*atomic.Pointer[snapshot]).Load(); s != nil {
			return s
		}
	}
	return &r.empty
}

// update publishes what change makes of cluster's current snapshot.
func (r *RBAC) update(cluster string, change func(*snapshot) *snapshot) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	p, _ := r.clusters.LoadOrStore(cluster, new(atomic.Pointer[snapshot]))
	ptr := p.(*atomic.Pointer[snapshot])
	cur := ptr.Load()
	if cur == nil {
		cur = &snapshot{}
	}
	next := change(cur)
	next.decisions = &decisionCache{}
	ptr.Store(next)
}

// Apply records one added, changed or (deleted true) removed object of
// cluster: a *rbacv1.Role, *rbacv1.ClusterRole, *rbacv1.RoleBinding or
// *rbacv1.ClusterRoleBinding. Deletion goes by namespace and name only.
// Other types are ignored. obj is copied, so the caller may reuse it.
func (r *RBAC) Apply(cluster string, obj runtime.Object, deleted bool) {
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		var keep *rbacv1.ClusterRole
		if !deleted {
			keep = r.shared.clusterRole(o)
		}
		r.update(cluster, func(s *snapshot) *snapshot { return s.withClusterRole(o.Name, keep) })
	case *rbacv1.ClusterRoleBinding:
		var keep *binding
		if !deleted {
			keep = clusterBindingOf(o)
		}
		r.update(cluster, func(s *snapshot) *snapshot { return s.withClusterBinding(o.Name, keep) })
	case *rbacv1.Role:
		var keep *rbacv1.Role
		if !deleted {
			keep = r.shared.role(o)
		}
		r.update(cluster, func(s *snapshot) *snapshot { return s.withRole(o.Namespace, o.Name, keep) })
	case *rbacv1.RoleBinding:
		var keep *binding
		if !deleted {
			keep = roleBindingOf(o)
		}
		r.update(cluster, func(s *snapshot) *snapshot {
			return s.withNamespace(o.Namespace, func(n *nsSnapshot) { n.setBinding(o.Name, keep) })
		})
	}
}

// Replace sets cluster's whole policy to objs in one step, so no request
// sees a half-loaded set. Objects of other types are ignored.
func (r *RBAC) Replace(cluster string, objs []runtime.Object) {
	var (
		clusterRoles []*rbacv1.ClusterRole
		roles        []*rbacv1.Role
		bindings     []*binding
	)
	for _, obj := range objs {
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			clusterRoles = append(clusterRoles, r.shared.clusterRole(o))
		case *rbacv1.Role:
			roles = append(roles, r.shared.role(o))
		case *rbacv1.ClusterRoleBinding:
			bindings = append(bindings, clusterBindingOf(o))
		case *rbacv1.RoleBinding:
			bindings = append(bindings, roleBindingOf(o))
		}
	}
	s := build(clusterRoles, roles, bindings)
	r.update(cluster, func(old *snapshot) *snapshot {
		s.rolesGen = old.rolesGen + 1
		return s
	})
}

func clusterBindingOf(o *rbacv1.ClusterRoleBinding) *binding {
	return newBinding("", o.Name, o.RoleRef, o.Subjects)
}

func roleBindingOf(o *rbacv1.RoleBinding) *binding {
	return newBinding(o.Namespace, o.Name, o.RoleRef, o.Subjects)
}

func newBinding(namespace, name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) *binding {
	b := &binding{namespace: namespace, name: name, roleRef: ref, subjects: slices.Clone(subjects)}
	b.reasons = make([]string, len(b.subjects))
	for i := range b.subjects {
		b.reasons[i] = "RBAC: allowed by " + b.describe(i)
	}
	return b
}

// danglingRef is a binding whose role cannot be found or whose roleRef
// names an unknown kind; it grants nothing but is reported.
type danglingRef struct {
	kind string
	name string
}

// Authorize allows a if a rule bound to a.User allows it: any rule of a
// ClusterRoleBinding, or of a RoleBinding in a.Namespace. Otherwise it
// has no opinion; its reason then lists the bindings whose roles are
// missing, since those may explain a surprise denial.
func (r *RBAC) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User == nil {
		return NoOpinion, "", nil
	}
	s := r.load(a.Cluster)
	key := decisionKey(&a)
	if d, ok := s.decisions.get(key); ok {
		return d.decision, d.reason, nil
	}
	decision, reason := s.authorize(&a)
	s.decisions.put(key, decided{decision, reason})
	return decision, reason, nil
}

// authorize evaluates a against the snapshot's bindings.
func (s *snapshot) authorize(a *Attributes) (Decision, string) {
	req := newRequest(a)
	var (
		by       *binding
		dangling []danglingRef
	)
	s.visit(a.User, a.Namespace, func(b *binding, rules []rbacv1.PolicyRule, missing *danglingRef) bool {
		if missing != nil {
			dangling = append(dangling, *missing)
			return true
		}
		for i := range rules {
			if req.allows(&rules[i]) {
				by = b
				return false
			}
		}
		return true
	})
	if by != nil {
		return Allow, allowedBy(by, a.User)
	}
	if len(dangling) > 0 {
		return NoOpinion, "RBAC: " + notFoundErrors(dangling, false).Error()
	}
	return NoOpinion, ""
}

// visit calls fn for each binding naming u that applies in namespace
// (every ClusterRoleBinding, then the RoleBindings of namespace), once
// each, with its role's rules or, when the role cannot be resolved, with
// missing set. It stops when fn returns false.
func (s *snapshot) visit(u *authn.User, namespace string, fn func(b *binding, rules []rbacv1.PolicyRule, missing *danglingRef) bool) {
	if !s.visitIndex(s.cluster, u, nil, fn) {
		return
	}
	if namespace == "" {
		return
	}
	if n := s.ns(namespace); n != nil {
		s.visitIndex(n.index, u, n, fn)
	}
}

func (s *snapshot) visitIndex(ix subjectIndex, u *authn.User, n *nsSnapshot, fn func(*binding, []rbacv1.PolicyRule, *danglingRef) bool) bool {
	// Gather the identities' lists on the stack; usually only one is
	// non-empty, and then no binding can repeat.
	var buf [8][]*binding
	lists := buf[:0]
	if l := ix.users[u.Name]; len(l) > 0 {
		lists = append(lists, l)
	}
	for _, g := range u.Groups {
		if l := ix.groups[g]; len(l) > 0 {
			lists = append(lists, l)
		}
	}
	for i, l := range lists {
		for _, b := range l {
			if i > 0 && seenIn(lists[:i], b) {
				continue
			}
			rules, missing := s.rulesOf(b, n)
			if !fn(b, rules, missing) {
				return false
			}
		}
	}
	return true
}

// seenIn reports whether b is in one of lists, each sorted by name.
func seenIn(lists [][]*binding, b *binding) bool {
	for _, l := range lists {
		if i, ok := slices.BinarySearchFunc(l, b, compareBindings); ok && l[i] == b {
			return true
		}
	}
	return false
}

// rulesOf resolves b's role, through b's cache when no role has changed
// since it was filled: a map lookup per binding is most of the cost of
// evaluating a user with many bindings.
func (s *snapshot) rulesOf(b *binding, n *nsSnapshot) ([]rbacv1.PolicyRule, *danglingRef) {
	if r := b.resolved.Load(); r != nil && r.gen == s.rolesGen {
		return r.rules, r.missing
	}
	rules, missing := s.lookupRules(b, n)
	b.resolved.Store(&resolution{gen: s.rolesGen, rules: rules, missing: missing})
	return rules, missing
}

func (s *snapshot) lookupRules(b *binding, n *nsSnapshot) ([]rbacv1.PolicyRule, *danglingRef) {
	switch b.roleRef.Kind {
	case "ClusterRole":
		if cr := s.clusterRoles[b.roleRef.Name]; cr != nil {
			return cr.Rules, nil
		}
	case "Role":
		if n != nil {
			if role := n.roles[b.roleRef.Name]; role != nil {
				return role.Rules, nil
			}
		}
	}
	return nil, &danglingRef{kind: b.roleRef.Kind, name: b.roleRef.Name}
}

// allowedBy is the reason an Allow through b gives u: kube-apiserver's
// words naming the binding, role and first subject that matched, for
// audit logs and SubjectAccessReviews.
func allowedBy(b *binding, u *authn.User) string {
	if i := b.firstSubject(u); i >= 0 {
		return b.reasons[i]
	}
	return "RBAC: allowed by " + b.describe(-1)
}

// describe words b and its subject i (none if i < 0). It runs once per
// binding and subject when the binding is stored, so an Allow costs no
// formatting.
func (b *binding) describe(i int) string {
	var sb strings.Builder
	if b.namespace == "" {
		sb.WriteString("ClusterRoleBinding " + strconv.Quote(b.name))
	} else {
		sb.WriteString("RoleBinding " + strconv.Quote(b.name+"/"+b.namespace))
	}
	sb.WriteString(" of " + b.roleRef.Kind + " " + strconv.Quote(b.roleRef.Name) + " to ")
	if i >= 0 {
		s := b.subjects[i]
		if s.Kind == rbacv1.ServiceAccountKind {
			ns := s.Namespace
			if ns == "" {
				ns = b.namespace
			}
			sb.WriteString(s.Kind + " " + strconv.Quote(s.Name+"/"+ns))
		} else {
			sb.WriteString(s.Kind + " " + strconv.Quote(s.Name))
		}
	}
	return sb.String()
}

// notFoundErrors words dangling role references as kube-apiserver does.
// Its authorizer reads informer caches, whose errors name the resource in
// the singular; its REST layer reads storage, which uses the plural.
func notFoundErrors(refs []danglingRef, plural bool) error {
	errs := make([]error, 0, len(refs))
	for _, d := range refs {
		errs = append(errs, roleNotFound(d, plural))
	}
	return utilerrors.NewAggregate(errs)
}

func roleNotFound(d danglingRef, plural bool) error {
	var resource string
	switch d.kind {
	case "ClusterRole":
		resource = "clusterrole"
	case "Role":
		resource = "role"
	default:
		return fmt.Errorf("unsupported role reference kind: %q", d.kind)
	}
	if plural {
		resource += "s"
	}
	return apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}, d.name)
}

// RulesFor returns every rule granted to u in namespace, cluster-wide
// grants included (namespace "" gives only those), as a
// SelfSubjectRulesReview reports them. incomplete is true when some
// binding's role could not be found. The rules share memory with the
// cache and must not be modified.
func (r *RBAC) RulesFor(cluster string, u *authn.User, namespace string) (rules []rbacv1.PolicyRule, incomplete bool) {
	rules, dangling := r.rulesFor(cluster, u, namespace)
	return rules, len(dangling) > 0
}

func (r *RBAC) rulesFor(cluster string, u *authn.User, namespace string) (rules []rbacv1.PolicyRule, dangling []danglingRef) {
	if u == nil {
		return nil, nil
	}
	r.load(cluster).visit(u, namespace, func(_ *binding, rs []rbacv1.PolicyRule, missing *danglingRef) bool {
		if missing != nil {
			dangling = append(dangling, *missing)
		}
		rules = append(rules, rs...)
		return true
	})
	return rules, dangling
}

// ClusterRoles returns cluster's ClusterRoles sorted by name. They are the
// cache's own and must not be modified.
func (r *RBAC) ClusterRoles(cluster string) []*rbacv1.ClusterRole {
	s := r.load(cluster)
	out := make([]*rbacv1.ClusterRole, 0, len(s.clusterRoles))
	for _, cr := range s.clusterRoles {
		out = append(out, cr)
	}
	slices.SortFunc(out, func(x, y *rbacv1.ClusterRole) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// RoleRules returns the rules of the role ref names, as a binding in
// namespace ("" for a ClusterRoleBinding) would resolve it. A missing role
// is a NotFound error worded as kube-apiserver's REST layer words it.
func (r *RBAC) RoleRules(cluster string, namespace string, ref rbacv1.RoleRef) ([]rbacv1.PolicyRule, error) {
	s := r.load(cluster)
	rules, missing := s.lookupRules(&binding{namespace: namespace, roleRef: ref}, s.ns(namespace))
	if missing != nil {
		return nil, roleNotFound(*missing, true)
	}
	return rules, nil
}
