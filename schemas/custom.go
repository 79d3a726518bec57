package schemas

import (
	"encoding/json"
	"fmt"
	"maps"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// customKind is one version of a custom resource: its definitions and
// those of its list, in both document flavours.
type customKind struct {
	gvk       schema.GroupVersionKind
	v2, v3    map[string]common.OpenAPIDefinition
	validator *Validator
}

// AddCustom describes one served version of a custom resource, with the
// OpenAPI v3 schema of its CRD (nil: anything goes). Its definitions are
// named as kube-apiserver names them (com.example.v1.Widget), with metadata
// an ObjectMeta. Adding a kind again replaces it. The group version's v3
// document is built before AddCustom returns, so a schema that cannot be
// published is refused here.
func (s *Set) AddCustom(gvk schema.GroupVersionKind, res Resource, openAPIV3Schema *apiextensionsv1.JSONSchemaProps) error {
	if res.Kind == "" {
		res.Kind = gvk.Kind
	}
	if res.Group != gvk.Group || res.Version != gvk.Version || res.Kind != gvk.Kind {
		return fmt.Errorf("custom resource %s/%s/%s does not serve kind %s", res.Group, res.Version, res.Resource, gvk)
	}
	if gvk.Version == "" || gvk.Kind == "" || res.Resource == "" {
		return fmt.Errorf("custom resource %s (%q): version, kind and resource are required", gvk, res.Resource)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if old.base.scheme.Recognizes(gvk) {
		return fmt.Errorf("custom resource kind %s is a built-in kind", gvk)
	}
	for _, r := range old.resources {
		if r.Group == res.Group && r.Version == res.Version && r.Resource.Resource == res.Resource && r.gvk() != gvk {
			return fmt.Errorf("custom resource %s/%s/%s is already served as kind %s", res.Group, res.Version, res.Resource, r.Kind)
		}
	}
	c, err := newCustomKind(old.base, gvk, res, openAPIV3Schema)
	if err != nil {
		return err
	}
	name := customDefinitionName(gvk)
	next := old.without(gvk)
	next.custom[gvk] = c
	next.customKinds[name] = []schema.GroupVersionKind{gvk}
	next.customKinds[customDefinitionName(res.listGVK())] = []schema.GroupVersionKind{res.listGVK()}
	next.resources = append(next.resources, served{Resource: res, model: modelName(name),
		list: modelName(customDefinitionName(res.listGVK())), custom: true})
	next.sortResources()
	p := gvPath(gvk.Group, gvk.Version)
	next.resetDocs(old, p)
	if _, _, err := next.v3[p].get(); err != nil {
		return fmt.Errorf("custom resource %s: %w", gvk, err)
	}
	s.cur.Store(next)
	return nil
}

// RemoveCustom stops describing a custom resource kind; an unknown kind is
// ignored.
func (s *Set) RemoveCustom(gvk schema.GroupVersionKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if _, ok := old.custom[gvk]; !ok {
		return
	}
	next := old.without(gvk)
	next.resetDocs(old, gvPath(gvk.Group, gvk.Version))
	s.cur.Store(next)
}

// without copies the snapshot, less a custom kind, with no documents yet.
func (s *snapshot) without(gvk schema.GroupVersionKind) *snapshot {
	next := &snapshot{base: s.base, custom: maps.Clone(s.custom), customKinds: maps.Clone(s.customKinds)}
	if c, ok := s.custom[gvk]; ok {
		delete(next.custom, gvk)
		for name := range c.v3 {
			delete(next.customKinds, name)
		}
	}
	for _, r := range s.resources {
		if !(r.custom && r.gvk() == gvk) {
			next.resources = append(next.resources, r)
		}
	}
	return next
}

func newCustomKind(b *base, gvk schema.GroupVersionKind, res Resource, props *apiextensionsv1.JSONSchemaProps) (*customKind, error) {
	var root spec.Schema
	if props == nil {
		root = spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}},
			VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{extPreserveUnknown: true}}}
	} else {
		// JSONSchemaProps and OpenAPI's schema share their JSON form, the
		// x-kubernetes-* fields becoming extensions.
		raw, err := json.Marshal(props)
		if err != nil {
			return nil, fmt.Errorf("custom resource %s: encoding its schema: %w", gvk, err)
		}
		if err := json.Unmarshal(raw, &root); err != nil {
			return nil, fmt.Errorf("custom resource %s: reading its schema: %w", gvk, err)
		}
	}
	name, listName := customDefinitionName(gvk), customDefinitionName(res.listGVK())
	c := &customKind{gvk: gvk, v2: map[string]common.OpenAPIDefinition{}, v3: map[string]common.OpenAPIDefinition{}}
	for _, flavour := range []struct {
		prefix string
		defs   map[string]common.OpenAPIDefinition
		into   map[string]common.OpenAPIDefinition
		v2     bool
	}{{"#/definitions/", b.v2, c.v2, true}, {"#/components/schemas/", b.v3, c.v3, false}} {
		meta := metaProps{defs: flavour.defs, prefix: flavour.prefix}
		var kindSchema spec.Schema
		if flavour.v2 {
			kindSchema = toV2(root)
		} else {
			kindSchema = *cloneSchema(&root)
		}
		// kubectl reads a v2 object schema listing properties as closed, so
		// one that keeps unknown fields is published without them.
		if flavour.v2 && kindSchema.Type == nil {
			kindSchema = spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, Description: root.Description}}
		} else {
			addEmbedded(&kindSchema, meta, flavour.v2)
			if err := meta.addTypeMeta(&kindSchema); err != nil {
				return nil, fmt.Errorf("custom resource %s: %w", gvk, err)
			}
		}
		flavour.into[name] = common.OpenAPIDefinition{Schema: kindSchema, Dependencies: []string{nameObjectMeta}}
		list, err := meta.listSchema(name, res)
		if err != nil {
			return nil, fmt.Errorf("custom resource %s: %w", gvk, err)
		}
		flavour.into[listName] = common.OpenAPIDefinition{Schema: list, Dependencies: []string{name, nameListMeta}}
	}
	custom, err := jsonSchemaDefinitions(c.v3, false)
	if err != nil {
		return nil, fmt.Errorf("custom resource %s: %w", gvk, err)
	}
	c.validator = &Validator{gvk: gvk, root: name, lookup: func(n string) (any, bool, error) {
		if d, ok := custom[n]; ok {
			return d, true, nil
		}
		return b.builtinJSONSchema(n)
	}}
	return c, nil
}

// metaProps makes the type and object meta properties kube-apiserver adds
// to custom resource schemas, with the built-in types' descriptions.
type metaProps struct {
	defs   map[string]common.OpenAPIDefinition
	prefix string
}

func (m metaProps) prop(def, field string) (spec.Schema, error) {
	d, ok := m.defs[def]
	if !ok {
		return spec.Schema{}, fmt.Errorf("no definition %s", def)
	}
	p, ok := d.Schema.Properties[field]
	if !ok {
		return spec.Schema{}, fmt.Errorf("definition %s has no %s", def, field)
	}
	return p, nil
}

func (m metaProps) ref(name, description string) spec.Schema {
	s := spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(m.prefix + name), Description: description}}
	return s
}

// addTypeMeta sets apiVersion, kind and metadata on a custom kind's root.
func (m metaProps) addTypeMeta(s *spec.Schema) error {
	for _, f := range []string{"apiVersion", "kind"} {
		p, err := m.prop("io.k8s.apimachinery.pkg.apis.meta.v1.TypeMeta", f)
		if err != nil {
			return err
		}
		s.SetProperty(f, p)
	}
	meta, err := m.prop("io.k8s.apimachinery.pkg.apis.meta.v1.PartialObjectMetadata", "metadata")
	if err != nil {
		return err
	}
	s.SetProperty("metadata", m.ref(nameObjectMeta, meta.Description))
	return nil
}

func (m metaProps) listSchema(itemName string, res Resource) (spec.Schema, error) {
	s := spec.Schema{SchemaProps: spec.SchemaProps{
		Type:        []string{"object"},
		Description: fmt.Sprintf("%s is a list of %s", res.listGVK().Kind, res.Kind),
		Required:    []string{"items"},
	}}
	s.SetProperty("items", spec.Schema{SchemaProps: spec.SchemaProps{
		Type:        []string{"array"},
		Description: fmt.Sprintf("List of %s. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", res.Resource),
		Items:       &spec.SchemaOrArray{Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(m.prefix + itemName)}}},
	}})
	meta, err := m.prop("io.k8s.apimachinery.pkg.apis.meta.v1.PartialObjectMetadataList", "metadata")
	if err != nil {
		return s, err
	}
	s.SetProperty("metadata", m.ref(nameListMeta, meta.Description))
	for _, f := range []string{"apiVersion", "kind"} {
		p, err := m.prop("io.k8s.apimachinery.pkg.apis.meta.v1.TypeMeta", f)
		if err != nil {
			return s, err
		}
		s.SetProperty(f, p)
	}
	return s, nil
}

// addEmbedded gives x-kubernetes-embedded-resource objects their type and
// object meta, as kube-apiserver publishes them.
func addEmbedded(s *spec.Schema, m metaProps, v2 bool) {
	if s == nil {
		return
	}
	for k, p := range s.Properties {
		addEmbedded(&p, m, v2)
		s.Properties[k] = p
	}
	if s.Items != nil {
		addEmbedded(s.Items.Schema, m, v2)
	}
	if s.AdditionalProperties != nil {
		addEmbedded(s.AdditionalProperties.Schema, m, v2)
	}
	if preserve, _ := s.Extensions.GetBool(extPreserveUnknown); preserve && v2 {
		return
	}
	if embedded, _ := s.Extensions.GetBool(extEmbedded); !embedded {
		return
	}
	s.SetProperty("apiVersion", spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"},
		Description: "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}})
	s.SetProperty("kind", spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"},
		Description: "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}})
	if meta, err := m.prop("io.k8s.apimachinery.pkg.apis.meta.v1.PartialObjectMetadata", "metadata"); err == nil {
		s.SetProperty("metadata", m.ref(nameObjectMeta, meta.Description))
	}
	for _, f := range []string{"kind", "apiVersion"} {
		if !contains(s.Required, f) {
			s.Required = append(s.Required, f)
		}
	}
}

// cloneSchema copies a schema deeply enough that properties, items and
// additional properties can be changed without touching the original.
func cloneSchema(s *spec.Schema) *spec.Schema {
	if s == nil {
		return nil
	}
	c := *s
	c.Extensions = maps.Clone(s.Extensions)
	c.Required = append([]string(nil), s.Required...)
	if s.Properties != nil {
		c.Properties = make(map[string]spec.Schema, len(s.Properties))
		for k, p := range s.Properties {
			c.Properties[k] = *cloneSchema(&p)
		}
	}
	if s.Items != nil {
		c.Items = &spec.SchemaOrArray{Schema: cloneSchema(s.Items.Schema)}
		for _, x := range s.Items.Schemas {
			c.Items.Schemas = append(c.Items.Schemas, *cloneSchema(&x))
		}
	}
	if s.AdditionalProperties != nil {
		c.AdditionalProperties = &spec.SchemaOrBool{Allows: s.AdditionalProperties.Allows, Schema: cloneSchema(s.AdditionalProperties.Schema)}
	}
	return &c
}

// toV2 reduces a structural schema to what OpenAPI v2 and kubectl's v2
// readers cope with, as kube-apiserver does: no junctors, nullable fields
// untyped, and schemas that keep unknown fields without structure.
func toV2(in spec.Schema) spec.Schema {
	s := *cloneSchema(&in)
	s.AllOf, s.AnyOf, s.OneOf, s.Not = nil, nil, nil, nil
	for k, p := range s.Properties {
		p = toV2(p)
		s.Properties[k] = p
		if in.Properties[k].Nullable {
			s.Required = remove(s.Required, k)
		}
	}
	if s.Items != nil && s.Items.Schema != nil {
		v := toV2(*s.Items.Schema)
		s.Items = &spec.SchemaOrArray{Schema: &v}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		if s.AdditionalProperties.Schema.Nullable {
			s.Required = nil
		}
		v := toV2(*s.AdditionalProperties.Schema)
		s.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: &v}
	}
	preserve, _ := s.Extensions.GetBool(extPreserveUnknown)
	if s.Nullable {
		s.Type, s.Nullable, s.Items, s.Properties = nil, false, nil, nil
	}
	if preserve {
		s.Items, s.Properties = nil, nil
	}
	if s.Items == nil && s.Type.Contains("array") {
		s.Type = nil
	}
	if preserve && s.Type.Contains("object") {
		s.Type = nil
	}
	return s
}

func remove(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
