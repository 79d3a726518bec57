// Package registry describes the resources pgkube serves: for each one its
// names, scope, subresources and per-kind behaviour (name rules, selectable
// fields, status handling) as data that the one generic REST path reads.
package registry

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one served resource at one version.
type Resource struct {
	Group, Version, Resource string
	Kind, ListKind, Singular string
	Namespaced               bool
	ShortNames               []string
	Categories               []string

	// StorageResource is the storage key ("group/resource") when the
	// resource shares its objects with another one (events.k8s.io events are
	// core events); ToStorage/FromStorage convert between the two faces.
	StorageResource string
	ToStorage       func(runtime.Object) (runtime.Object, error)
	FromStorage     func(runtime.Object) (runtime.Object, error)

	// Status: the resource has a status subresource, so the main resource
	// ignores status changes and /status ignores everything else.
	Status bool
	// KeepStatusOnCreate: creates keep the given status (nodes are created by
	// their agent with status filled in).
	KeepStatusOnCreate bool
	// Scale describes the scale subresource, if any.
	Scale *ScaleInfo
	// Generation: metadata.generation is set and bumped on spec changes.
	Generation bool

	// NameRule validates metadata.name (and generateName as a prefix).
	NameRule func(name string, prefix bool) []string
	// Fields returns the values of the field selectors the kind supports
	// besides metadata.name and metadata.namespace.
	Fields func(obj runtime.Object) map[string]string
	// Default fills unset fields with kube-apiserver's defaults, on every
	// write (create, update, patch), before Prepare and validation.
	Default func(obj runtime.Object)
	// Prepare adjusts a new object (create) or an update (old non-nil)
	// before validation: kind-specific server-set fields.
	Prepare func(obj, old runtime.Object, subresource string)
	// Validate checks kind-specific rules; old is nil on create.
	Validate func(obj, old runtime.Object) field.ErrorList
	// Immutable lists dotted JSON paths that may not change after create.
	Immutable []string
	// GracefulDelete decides whether a delete only marks the object with a
	// deletionTimestamp for its owner (the node agent) to finish.
	GracefulDelete func(obj runtime.Object, requested *int64) (graceful bool, seconds int64)
	// GC is what a delete that names no propagation policy does with the
	// object's dependents.
	GC GCPolicy
	// OrphanWarning warns a delete that orphans by default without asking.
	OrphanWarning string
	// Deleting adjusts an object marked for deletion (a namespace turns
	// Terminating).
	Deleting func(obj runtime.Object)
	// PendingFinalizers reports kind-specific finalizers that still hold a
	// deleted object (a namespace's spec.finalizers).
	PendingFinalizers func(obj runtime.Object) bool
	// Subresources served besides status and scale, e.g. "binding" for pods.
	Subresources []string
	// CreateOnly: the resource is a question asked by creating it
	// (TokenReview, SubjectAccessReview); nothing is stored and create is
	// its only verb.
	CreateOnly bool
	// Computed: the resource is measured when asked for, not stored
	// (metrics.k8s.io's usage figures, from the node agents); get and
	// list are its verbs.
	Computed bool

	// CRD names the CustomResourceDefinition serving this resource; its
	// objects are unstructured.
	CRD string
	// UnknownFields lists the paths of fields a custom object has that its
	// schema does not know (pruning removes them; fieldValidation decides
	// whether that is a warning or an error).
	UnknownFields func(obj runtime.Object) []string
	// StorageVersion is the version a custom resource is stored at.
	StorageVersion string
	// Columns are a custom resource's additionalPrinterColumns.
	Columns []apiextensionsv1.CustomResourceColumnDefinition
}

// ScaleInfo locates the replica counts for the scale subresource.
type ScaleInfo struct {
	// SelectorIsMap: spec.selector is a plain map (ReplicationController)
	// rather than a LabelSelector.
	SelectorIsMap bool
	// Custom resources name where their counts live (JSON paths such as
	// .spec.replicas); empty means spec.replicas, status.replicas and
	// spec.selector.
	SpecReplicasPath, StatusReplicasPath, LabelSelectorPath string
}

// GroupVersion of the resource.
func (r *Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GVK of the resource's kind.
func (r *Resource) GVK() schema.GroupVersionKind { return r.GroupVersion().WithKind(r.Kind) }

// StorageKey is where the resource's objects live in storage.
func (r *Resource) StorageKey() string {
	if r.StorageResource != "" {
		return r.StorageResource
	}
	return r.Group + "/" + r.Resource
}

// HoldsDeletion reports whether kind-specific finalizers keep a deleted
// object.
func (r *Resource) HoldsDeletion(obj runtime.Object) bool {
	return r.PendingFinalizers != nil && r.PendingFinalizers(obj)
}

// Verbs served on the main resource.
func (r *Resource) Verbs() []string {
	if r.CreateOnly {
		return []string{"create"}
	}
	if r.Computed {
		return []string{"get", "list"}
	}
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// Registry is the set of served resources: the built-in ones, fixed at
// start and the same in every logical cluster, and custom ones that come
// and go with each cluster's CRDs. Readers see an immutable snapshot per
// cluster (a View), so a request never observes half a change, and a CRD
// of one cluster is invisible to the others.
type Registry struct {
	Scheme  *runtime.Scheme
	builtin *state
	views   sync.Map   // cluster → *atomic.Pointer[state], for clusters with CRDs
	mu      sync.Mutex // serializes changes
	// custom holds each cluster's CRDs' resources, by CRD name.
	custom map[string]map[string][]*Resource
}

// state is one snapshot of the served resources.
type state struct {
	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
	// groups in discovery order, each with its versions (preferred first)
	groups []GroupInfo
}

// View is what one logical cluster serves.
type View = state

// For returns what cluster serves now.
func (reg *Registry) For(cluster string) *View {
	if p, ok := reg.views.Load(cluster); ok {
		return p.(*atomic.Pointer[state]).Load()
	}
	return reg.builtin
}

// GroupInfo is a served API group and its versions, preferred first.
type GroupInfo struct {
	Name     string
	Versions []string
}

// New returns a registry with every built-in resource.
func New() (*Registry, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	reg := &Registry{Scheme: scheme, custom: map[string]map[string][]*Resource{}}
	st := &state{byGVR: map[schema.GroupVersionResource]*Resource{}}
	defaults, validators := defaulters(), semanticValidators()
	for _, r := range builtins() {
		if d, ok := defaults[r.Kind]; ok && r.Default == nil {
			r.Default = d
		}
		if v, ok := validators[r.Kind]; ok {
			r.Validate = both(r.Validate, v)
		}
		if !reg.Scheme.Recognizes(r.GVK()) {
			return nil, fmt.Errorf("resource %s: kind %s is not in the scheme", r.Resource, r.GVK())
		}
		if err := st.add(r); err != nil {
			return nil, err
		}
	}
	reg.builtin = st
	return reg, nil
}

func (st *state) add(r *Resource) error {
	if r.ListKind == "" {
		r.ListKind = r.Kind + "List"
	}
	if r.Singular == "" {
		r.Singular = strings.ToLower(r.Kind)
	}
	if r.NameRule == nil {
		r.NameRule = dnsSubdomain
	}
	gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
	if _, dup := st.byGVR[gvr]; dup {
		return fmt.Errorf("resource %s registered twice", gvr)
	}
	st.byGVR[gvr] = r
	st.resources = append(st.resources, r)
	found := false
	for i := range st.groups {
		if st.groups[i].Name == r.Group {
			found = true
			if !contains(st.groups[i].Versions, r.Version) {
				st.groups[i].Versions = append(st.groups[i].Versions, r.Version)
			}
		}
	}
	if !found {
		st.groups = append(st.groups, GroupInfo{Name: r.Group, Versions: []string{r.Version}})
	}
	return nil
}

// SetCustom replaces the resources a CRD of cluster serves (none: it is
// gone). rs must list versions in the CRD's priority order.
func (reg *Registry) SetCustom(cluster, crd string, rs []*Resource) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	next := &state{byGVR: map[schema.GroupVersionResource]*Resource{}}
	for _, r := range reg.builtin.resources {
		if err := next.add(r); err != nil {
			return err
		}
	}
	custom := make(map[string][]*Resource, len(reg.custom[cluster])+1)
	for name, list := range reg.custom[cluster] {
		custom[name] = list
	}
	if len(rs) == 0 {
		delete(custom, crd)
	} else {
		custom[crd] = rs
	}
	names := make([]string, 0, len(custom))
	for name := range custom {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, r := range custom[name] {
			if err := next.add(r); err != nil {
				return fmt.Errorf("CRD %s: %w", name, err)
			}
		}
	}
	reg.custom[cluster] = custom
	p, _ := reg.views.LoadOrStore(cluster, new(atomic.Pointer[state]))
	p.(*atomic.Pointer[state]).Store(next)
	return nil
}

// Forget drops a deleted cluster's custom resources.
func (reg *Registry) Forget(cluster string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.custom, cluster)
	reg.views.Delete(cluster)
}

// Lookup finds a resource by group, version and plural name.
func (v *View) Lookup(group, version, resource string) (*Resource, bool) {
	r, ok := v.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
	return r, ok
}

// Groups lists the served groups; the core group has the empty name.
func (v *View) Groups() []GroupInfo { return v.groups }

// GroupVersionKnown reports whether any resource is served at group/version.
func (v *View) GroupVersionKnown(group, version string) bool {
	for _, g := range v.groups {
		if g.Name == group && contains(g.Versions, version) {
			return true
		}
	}
	return false
}

// Resources served at group/version, sorted by name.
func (v *View) Resources(group, version string) []*Resource {
	var out []*Resource
	for _, r := range v.resources {
		if r.Group == group && r.Version == version {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// ByStorageKey lists the resources sharing one storage key.
func (v *View) ByStorageKey(key string) []*Resource {
	var out []*Resource
	for _, r := range v.resources {
		if r.StorageKey() == key {
			out = append(out, r)
		}
	}
	return out
}

// NewObject returns an empty object of the resource's kind: typed for
// built-in kinds, unstructured for custom ones.
func (reg *Registry) NewObject(r *Resource) (runtime.Object, error) {
	if r.CRD != "" {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(r.GVK())
		return u, nil
	}
	return reg.Scheme.New(r.GVK())
}

// NewList returns an empty list of the resource's kind.
func (reg *Registry) NewList(r *Resource) (runtime.Object, error) {
	if r.CRD != "" {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(r.GroupVersion().WithKind(r.ListKind))
		return l, nil
	}
	return reg.Scheme.New(r.GroupVersion().WithKind(r.ListKind))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// both runs two validations, either of which may be nil.
func both(a, b func(obj, old runtime.Object) field.ErrorList) func(obj, old runtime.Object) field.ErrorList {
	if a == nil {
		return b
	}
	return func(obj, old runtime.Object) field.ErrorList { return append(a(obj, old), b(obj, old)...) }
}

// GCPolicy is a kind's default for the garbage collector.
type GCPolicy int

const (
	// DeleteDependents (the default): dependents go, in the background
	// unless the delete asks for the foreground.
	DeleteDependents GCPolicy = iota
	// OrphanDependents: kept for backward compatibility by core/v1
	// ReplicationControllers and batch/v1 Jobs.
	OrphanDependents
	// NoGarbageCollection: events never get the collector's finalizers.
	NoGarbageCollection
)
