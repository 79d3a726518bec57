package apiserver

import (
	"sync"

	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/schemas"
	"github.com/pgkube/pgkube/server"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// admissionConfigKinds are the objects that configure dynamic admission.
var admissionConfigKinds = []feedKind{
	{"admissionregistration.k8s.io/mutatingwebhookconfigurations", func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} }},
	{"admissionregistration.k8s.io/validatingwebhookconfigurations", func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} }},
	{"admissionregistration.k8s.io/validatingadmissionpolicies", func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicy{} }},
	{"admissionregistration.k8s.io/validatingadmissionpolicybindings", func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{} }},
}

// applier is what webhooks and admission policies offer: one change at a
// time.
type applier interface {
	Apply(cluster string, obj runtime.Object, deleted bool)
}

// applyCache turns appliers into a feed's cache: a full reload removes what
// is no longer there.
type applyCache struct {
	route func(obj runtime.Object) applier
	known map[string]map[string]runtime.Object // cluster → kind/namespace/name → object
}

func newApplyCache(route func(obj runtime.Object) applier) *applyCache {
	return &applyCache{route: route, known: map[string]map[string]runtime.Object{}}
}

func objectKey(obj runtime.Object) string {
	m, _ := meta.Accessor(obj)
	return fmtType(obj) + "/" + m.GetNamespace() + "/" + m.GetName()
}

func fmtType(obj runtime.Object) string {
	switch obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return "mwc"
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return "vwc"
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return "vap"
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return "vapb"
	}
	return "other"
}

func (c *applyCache) Replace(cluster string, objs []runtime.Object) {
	next := map[string]runtime.Object{}
	for _, o := range objs {
		next[objectKey(o)] = o
		c.route(o).Apply(cluster, o, false)
	}
	for k, o := range c.known[cluster] {
		if _, still := next[k]; !still {
			c.route(o).Apply(cluster, o, true)
		}
	}
	c.known[cluster] = next
}

func (c *applyCache) Apply(cluster string, obj runtime.Object, deleted bool) {
	if c.known[cluster] == nil {
		c.known[cluster] = map[string]runtime.Object{}
	}
	if deleted {
		delete(c.known[cluster], objectKey(obj))
	} else {
		c.known[cluster][objectKey(obj)] = obj
	}
	c.route(obj).Apply(cluster, obj, deleted)
}

// paramResource finds where objects of a kind are stored, for admission
// policies' params.
func paramResource(reg *registry.Registry) func(gvk schema.GroupVersionKind) (string, bool, bool) {
	return func(gvk schema.GroupVersionKind) (string, bool, bool) {
		for _, r := range reg.For(clusters.Root).Resources(gvk.Group, gvk.Version) {
			if r.Kind == gvk.Kind && !r.CreateOnly {
				return r.StorageKey(), r.Namespaced, true
			}
		}
		return "", false, false
	}
}

// clusterSchemas holds each logical cluster's OpenAPI description: the
// root's; one per tenant with CRDs, made when its first CRD arrives; and
// one of the built-in kinds alone that every other tenant shares (the
// root's would show the root's CRDs).
type clusterSchemas struct {
	reg     *registry.Registry
	root    *schemas.Set
	mu      sync.Mutex
	sets    map[string]*schemas.Set
	builtin *schemas.Set
}

// get returns cluster's description, or nil if none can be made.
func (c *clusterSchemas) get(cluster string) *schemas.Set {
	if cluster == clusters.Root {
		return c.root
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sets[cluster]; ok {
		return s
	}
	if c.builtin == nil {
		c.builtin, _ = server.BuiltinSchemas(c.reg)
	}
	return c.builtin
}

// forget drops a deleted cluster's description.
func (c *clusterSchemas) forget(cluster string) {
	c.mu.Lock()
	delete(c.sets, cluster)
	c.mu.Unlock()
}

// forCRDs returns the set a cluster's CRDs are added to, making a tenant's
// own on first need.
func (c *clusterSchemas) forCRDs(cluster string) (*schemas.Set, error) {
	if cluster == clusters.Root {
		return c.root, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sets[cluster]; ok {
		return s, nil
	}
	s, err := server.BuiltinSchemas(c.reg)
	if err != nil {
		return nil, err
	}
	c.sets[cluster] = s
	return s, nil
}

// crdSchemas keeps one cluster's OpenAPI documents and validators in step
// with the CRDs it serves.
type crdSchemas struct {
	cluster string
	sets    *clusterSchemas
	kinds   map[string][]schema.GroupVersionKind // by CRD name
}

func (c *crdSchemas) changed(name string, crd *apiextensionsv1.CustomResourceDefinition) {
	set, err := c.sets.forCRDs(c.cluster)
	if err != nil {
		return
	}
	for _, gvk := range c.kinds[name] {
		set.RemoveCustom(gvk)
	}
	delete(c.kinds, name)
	if crd == nil {
		return
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		res := schemas.Resource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural, Kind: crd.Spec.Names.Kind,
			ListKind: crd.Spec.Names.ListKind, Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped}
		if sub := v.Subresources; sub != nil {
			res.Status, res.Scale = sub.Status != nil, sub.Scale != nil
		}
		var props *apiextensionsv1.JSONSchemaProps
		if v.Schema != nil {
			props = v.Schema.OpenAPIV3Schema
		}
		if err := set.AddCustom(gvk, res, props); err == nil {
			c.kinds[name] = append(c.kinds[name], gvk)
		}
	}
}

// schemaValidator finds, when an object is written, the validator of a
// custom kind in the cluster's description.
func (c *crdSchemas) schemaValidator(crd *apiextensionsv1.CustomResourceDefinition, version string) func() *schemas.Validator {
	gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version, Kind: crd.Spec.Names.Kind}
	return func() *schemas.Validator {
		if set := c.sets.get(c.cluster); set != nil {
			return set.Validator(gvk)
		}
		return nil
	}
}

// validator checks custom objects against the schema of their version.
func (c *crdSchemas) validator(crd *apiextensionsv1.CustomResourceDefinition, version string) registry.SchemaValidator {
	find := c.schemaValidator(crd, version)
	return func(obj map[string]any) field.ErrorList {
		if v := find(); v != nil {
			return v.Validate(obj)
		}
		return nil
	}
}

// unknown finds the fields of a custom object its version's schema does
// not know, for fieldValidation's warnings and errors.
func (c *crdSchemas) unknown(crd *apiextensionsv1.CustomResourceDefinition, version string) registry.UnknownFinder {
	find := c.schemaValidator(crd, version)
	return func(obj map[string]any) []string {
		if v := find(); v != nil {
			return v.Unknown(obj)
		}
		return nil
	}
}
