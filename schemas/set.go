package schemas

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Resource is one served resource at one version, as the documents
// describe it.
type Resource struct {
	Group, Version, Resource, Kind string
	// ListKind is the kind of the resource's lists; Kind+"List" if empty.
	ListKind   string
	Namespaced bool
	// Status and Scale: the resource has those subresources.
	Status, Scale bool
	// CreateOnly: the resource is a review that is only ever created.
	CreateOnly bool
	// Subresources served besides status and scale ("binding", "token",
	// "finalize", ...). Those without a schema of their own (exec, log,
	// proxy) are not described.
	Subresources []string
	// Verbs served on the resource itself; if empty, every verb (or only
	// create, for CreateOnly).
	Verbs []string
}

func (r Resource) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

func (r Resource) listGVK() schema.GroupVersionKind {
	k := r.ListKind
	if k == "" {
		k = r.Kind + "List"
	}
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: k}
}

// Option adjusts a Set.
type Option func(*base)

// WithVersion sets the version the documents' info reports (the server's
// git version, as kube-apiserver reports it).
func WithVersion(v string) Option { return func(b *base) { b.version = v } }

// Set is the OpenAPI description of the served resources. Readers see an
// immutable snapshot; AddCustom and RemoveCustom replace it, so documents
// and validators can be used while custom resources come and go. Each
// document is built on first use and kept until the snapshot changes.
type Set struct {
	base *base
	mu   sync.Mutex // serialises AddCustom and RemoveCustom
	cur  atomic.Pointer[snapshot]
}

// base is what does not change after New: the built-in definitions in
// both document flavours, and validators for every built-in kind.
type base struct {
	version string
	scheme  *runtime.Scheme
	// kinds lists the kinds of each built-in definition, for
	// x-kubernetes-group-version-kind.
	kinds map[string][]schema.GroupVersionKind
	// v2 and v3 are the generated definitions with references written for
	// each document version (#/definitions/ or #/components/schemas/).
	v2, v3     map[string]common.OpenAPIDefinition
	params     optionParams
	validators map[schema.GroupVersionKind]*Validator

	// The built-in definitions as JSON Schema, converted when the first
	// validator compiles: half of New's work otherwise, and a server that
	// validates nothing never needs them.
	jsonOnce   sync.Once
	jsonSchema map[string]any
	jsonErr    error
}

// builtinJSONSchema looks a built-in definition up as JSON Schema.
func (b *base) builtinJSONSchema(name string) (any, bool, error) {
	b.jsonOnce.Do(func() { b.jsonSchema, b.jsonErr = jsonSchemaDefinitions(b.v3, true) })
	d, ok := b.jsonSchema[name]
	return d, ok, b.jsonErr
}

// served is a resource with the definitions of its kind and list kind.
type served struct {
	Resource
	model, list modelName
	custom      bool
}

type snapshot struct {
	base      *base
	resources []served
	custom    map[schema.GroupVersionKind]*customKind
	// customKinds lists the kind of each custom definition.
	customKinds map[string][]schema.GroupVersionKind
	v2JSON      *lazyDoc
	v2Proto     *lazyDoc
	v3Index     *lazyDoc
	v3          map[string]*lazyDoc // by group version path
}

// New describes the given built-in resources. Every kind, and the list kind
// of every listed resource, must have a generated definition.
func New(resources []Resource, opts ...Option) (*Set, error) {
	b := &base{version: "unversioned"}
	for _, o := range opts {
		o(b)
	}
	var err error
	if b.scheme, err = apiScheme(); err != nil {
		return nil, err
	}
	if b.kinds, err = kindsByDefinition(b.scheme); err != nil {
		return nil, err
	}
	refTo := func(prefix string) common.ReferenceCallback {
		return func(name string) spec.Ref { return spec.MustCreateRef(prefix + common.EscapeJsonPointer(name)) }
	}
	b.v2 = GetOpenAPIDefinitions(refTo("#/definitions/"))
	b.v3 = GetOpenAPIDefinitions(refTo("#/components/schemas/"))
	if b.params, err = newOptionParams(b.v3); err != nil {
		return nil, err
	}
	b.validators = map[schema.GroupVersionKind]*Validator{}
	for name, kinds := range b.kinds {
		if _, ok := b.v3[name]; !ok {
			continue
		}
		for _, gvk := range kinds {
			b.validators[gvk] = &Validator{gvk: gvk, root: name, lookup: b.builtinJSONSchema}
		}
	}

	snap := &snapshot{base: b, custom: map[schema.GroupVersionKind]*customKind{}, customKinds: map[string][]schema.GroupVersionKind{}}
	seen := map[string]bool{}
	for _, r := range resources {
		key := r.Group + "/" + r.Version + "/" + r.Resource
		if seen[key] {
			return nil, fmt.Errorf("resource %s described twice", key)
		}
		seen[key] = true
		sr := served{Resource: r}
		name, err := b.definitionOf(r.gvk())
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", key, err)
		}
		sr.model = modelName(name)
		// Reviews have no list kind; only a listed resource needs one.
		if contains(defaultVerbs(r), "list") {
			if name, err = b.definitionOf(r.listGVK()); err != nil {
				return nil, fmt.Errorf("resource %s: %w", key, err)
			}
			sr.list = modelName(name)
		}
		snap.resources = append(snap.resources, sr)
	}
	snap.sortResources()
	snap.resetDocs(nil, "")
	s := &Set{base: b}
	s.cur.Store(snap)
	return s, nil
}

// definitionOf names the generated definition of a built-in kind.
func (b *base) definitionOf(gvk schema.GroupVersionKind) (string, error) {
	if !b.scheme.Recognizes(gvk) {
		return "", fmt.Errorf("kind %s has no generated definition (its package is not in the go:generate list)", gvk)
	}
	name, err := b.scheme.ToOpenAPIDefinitionName(gvk)
	if err != nil {
		return "", fmt.Errorf("naming the definition of %s: %w", gvk, err)
	}
	if _, ok := b.v2[name]; !ok {
		return "", fmt.Errorf("kind %s: no definition %s", gvk, name)
	}
	return name, nil
}

func (s *snapshot) sortResources() {
	sort.SliceStable(s.resources, func(i, j int) bool {
		a, b := s.resources[i], s.resources[j]
		if pa, pb := gvPath(a.Group, a.Version), gvPath(b.Group, b.Version); pa != pb {
			return pa < pb
		}
		return a.Resource.Resource < b.Resource.Resource
	})
}

// groupVersions lists the served group versions' paths, sorted.
func (s *snapshot) groupVersions() []string {
	var out []string
	for _, r := range s.resources {
		p := gvPath(r.Group, r.Version)
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out
}

// resetDocs gives the snapshot fresh lazy documents. Built documents of
// group versions other than changed are taken from prev: a custom resource
// only changes the documents of its own group version (and /openapi/v2,
// which has all).
func (s *snapshot) resetDocs(prev *snapshot, changed string) {
	s.v2JSON = &lazyDoc{build: s.buildV2JSON}
	s.v2Proto = &lazyDoc{build: s.buildV2Proto}
	s.v3Index = &lazyDoc{build: s.buildV3Index}
	s.v3 = map[string]*lazyDoc{}
	for _, p := range s.groupVersions() {
		if prev != nil && p != changed {
			if d, ok := prev.v3[p]; ok && d.built() {
				s.v3[p] = d
				continue
			}
		}
		s.v3[p] = &lazyDoc{build: func() ([]byte, error) { return s.buildV3(p) }}
	}
}

// definitions returns the definitions for one build, v3 flavour or v2.
// Each is a shallow copy with its own extensions, because kube-openapi's
// builders write the kinds into, and delete the embedded v2 schema from,
// the extensions of the definitions they are given.
func (s *snapshot) definitions(v3 bool) map[string]common.OpenAPIDefinition {
	src := s.base.v2
	if v3 {
		src = s.base.v3
	}
	out := make(map[string]common.OpenAPIDefinition, len(src)+2*len(s.custom))
	add := func(name string, d common.OpenAPIDefinition) {
		d.Schema.Extensions = maps.Clone(d.Schema.Extensions)
		out[name] = d
	}
	for name, d := range src {
		add(name, d)
	}
	for _, c := range s.custom {
		defs := c.v2
		if v3 {
			defs = c.v3
		}
		for name, d := range defs {
			add(name, d)
		}
	}
	return out
}

// definitionName is the builders' namer: names stay as generated, and
// definitions of registered kinds carry those kinds.
func (s *snapshot) definitionName(name string) (string, spec.Extensions) {
	kinds, ok := s.customKinds[name]
	if !ok {
		kinds, ok = s.base.kinds[name]
	}
	if !ok {
		return name, nil
	}
	return name, spec.Extensions{extensionGVK: gvkExtension(kinds)}
}

// scopedDefinitionName is the namer of one group version's v3 document.
// WatchEvent and DeleteOptions are registered in every group; as in
// kube-apiserver, such a document lists them only for its own group
// version and the core group.
func (s *snapshot) scopedDefinitionName(group, version string) func(string) (string, spec.Extensions) {
	return func(name string) (string, spec.Extensions) {
		if name != nameWatchEvent && name != nameDeleteOptions {
			return s.definitionName(name)
		}
		var kinds []schema.GroupVersionKind
		for _, gvk := range s.base.kinds[name] {
			if (gvk.Group == group && gvk.Version == version) || (gvk.Group == "" && gvk.Version == "v1") {
				kinds = append(kinds, gvk)
			}
		}
		return name, spec.Extensions{extensionGVK: gvkExtension(kinds)}
	}
}

// routes lists the route groups of the given group version paths, or of
// all of them if none is given.
func (s *snapshot) routes(only string) ([]common.RouteContainer, error) {
	groups := map[string]*routeGroup{}
	var out []common.RouteContainer
	for _, r := range s.resources {
		p := gvPath(r.Group, r.Version)
		if only != "" && p != only {
			continue
		}
		g, ok := groups[p]
		if !ok {
			g = &routeGroup{root: "/" + p, routes: []common.Route{resourcesRoute(r.Group, r.Version)}}
			groups[p] = g
			out = append(out, g)
		}
		rb := &routeBuilder{opts: s.base.params, res: r.Resource, gvk: r.gvk(), model: r.model, list: r.list,
			custom: r.custom, nameOf: s.base.definitionOf}
		routes, err := rb.build()
		if err != nil {
			return nil, err
		}
		g.routes = append(g.routes, routes...)
	}
	return out, nil
}

// lazyDoc is a document built on first use. Once built it no longer holds
// the snapshot that built it, so that documents carried over to later
// snapshots do not keep earlier snapshots alive.
type lazyDoc struct {
	mu    sync.Mutex
	build func() ([]byte, error)
	done  bool
	body  []byte
	etag  string
	err   error
}

func (d *lazyDoc) get() ([]byte, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.body, d.err = d.build()
		if d.err == nil {
			d.etag = `"` + hash(d.body) + `"`
		}
		d.build, d.done = nil, true
	}
	return d.body, d.etag, d.err
}

// built reports whether the document was built without error.
func (d *lazyDoc) built() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done && d.err == nil
}

// hash is kube-apiserver's ETag of a document, unquoted: SHA-512 in
// upper-case hex. /openapi/v3 lists it in each group version's URL.
func hash(b []byte) string {
	sum := sha512.Sum512(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// V2JSON is /openapi/v2 as JSON, with its ETag. The body is nil if the
// document could not be built (see Err).
func (s *Set) V2JSON() (body []byte, etag string) {
	body, etag, _ = s.cur.Load().v2JSON.get()
	return body, etag
}

// V2Proto is /openapi/v2 as gnostic's protobuf, which client-go asks for.
func (s *Set) V2Proto() (body []byte, etag string) {
	body, etag, _ = s.cur.Load().v2Proto.get()
	return body, etag
}

// V3Index is the /openapi/v3 discovery document: every group version's
// document path with its hash.
func (s *Set) V3Index() []byte {
	body, _, _ := s.cur.Load().v3Index.get()
	return body
}

// V3 is the OpenAPI v3 document of one group version, addressed as under
// /openapi/v3 ("api/v1", "apis/apps/v1"). ok is false for an unknown group
// version or a document that could not be built (see Err).
func (s *Set) V3(groupVersionPath string) (body []byte, etag string, ok bool) {
	d, found := s.cur.Load().v3[strings.Trim(groupVersionPath, "/")]
	if !found {
		return nil, "", false
	}
	body, etag, err := d.get()
	return body, etag, err == nil
}

// Err builds every document and reports the first failure, for callers
// that want to know at start-up rather than on the first request.
func (s *Set) Err() error {
	snap := s.cur.Load()
	for _, d := range []*lazyDoc{snap.v2JSON, snap.v2Proto, snap.v3Index} {
		if _, _, err := d.get(); err != nil {
			return err
		}
	}
	return nil
}

// GroupVersions lists the group version paths /openapi/v3 serves.
func (s *Set) GroupVersions() []string { return s.cur.Load().groupVersions() }
