package registry

import (
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8sjson "sigs.k8s.io/json"
)

// SchemaValidator checks a custom object against its version's schema.
type SchemaValidator func(obj map[string]any) field.ErrorList

// UnknownFinder lists the paths of a custom object's fields its version's
// schema does not know.
type UnknownFinder func(obj map[string]any) []string

// CustomResources describes what a CRD serves: one resource per served
// version, all stored under one key (group/plural) in the storage version's
// form, as conversion strategy None does upstream (only apiVersion
// changes). validator, if not nil, gives each version's schema check.
func CustomResources(crd *apiextensionsv1.CustomResourceDefinition, validator func(version string) SchemaValidator,
	unknown func(version string) UnknownFinder) ([]*Resource, error) {
	spec := crd.Spec
	storage := ""
	for _, v := range spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	if storage == "" {
		return nil, fmt.Errorf("CRD %s has no storage version", crd.Name)
	}
	key := spec.Group + "/" + spec.Names.Plural
	var out []*Resource
	for _, v := range sortedVersions(spec.Versions) {
		if !v.Served {
			continue
		}
		r := &Resource{
			Group: spec.Group, Version: v.Name, Resource: spec.Names.Plural, Kind: spec.Names.Kind,
			ListKind: spec.Names.ListKind, Singular: spec.Names.Singular, Namespaced: spec.Scope == apiextensionsv1.NamespaceScoped,
			ShortNames: spec.Names.ShortNames, Categories: spec.Names.Categories, CRD: crd.Name,
			Generation: true, Columns: v.AdditionalPrinterColumns, StorageVersion: storage,
		}
		if v.Name != storage {
			r.StorageResource = key
		}
		// The stored form differs from the served one only in apiVersion,
		// which the REST layer sets on the way in and out.
		r.ToStorage = func(o runtime.Object) (runtime.Object, error) { return o, nil }
		r.FromStorage = func(o runtime.Object) (runtime.Object, error) { return o, nil }
		if sub := v.Subresources; sub != nil {
			r.Status = sub.Status != nil
			if sc := sub.Scale; sc != nil {
				r.Scale = &ScaleInfo{SpecReplicasPath: sc.SpecReplicasPath, StatusReplicasPath: sc.StatusReplicasPath}
				if sc.LabelSelectorPath != nil {
					r.Scale.LabelSelectorPath = *sc.LabelSelectorPath
				}
			}
		}
		var schema *apiextensionsv1.JSONSchemaProps
		if v.Schema != nil {
			schema = v.Schema.OpenAPIV3Schema
		}
		var check SchemaValidator
		if validator != nil {
			check = validator(v.Name)
		}
		if unknown != nil {
			find := unknown(v.Name)
			r.UnknownFields = func(obj runtime.Object) []string {
				u, ok := obj.(*unstructured.Unstructured)
				if !ok || find == nil {
					return nil
				}
				return find(u.Object)
			}
		}
		r.Default = func(obj runtime.Object) {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok || schema == nil {
				return
			}
			Prune(u.Object, schema, true)
			ApplyDefaults(u.Object, schema)
		}
		r.Validate = func(obj, old runtime.Object) field.ErrorList {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok || check == nil {
				return nil
			}
			return check(u.Object)
		}
		out = append(out, r)
	}
	return out, nil
}

// sortedVersions orders versions as discovery lists them: by Kubernetes
// version priority (GA before beta before alpha, higher numbers first).
func sortedVersions(vs []apiextensionsv1.CustomResourceDefinitionVersion) []apiextensionsv1.CustomResourceDefinitionVersion {
	out := append([]apiextensionsv1.CustomResourceDefinitionVersion(nil), vs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && versionLess(out[j-1].Name, out[j].Name); j-- {
			out[j-1], out[j] = out[j], out[j-1]
		}
	}
	return out
}

// versionLess reports whether a has lower priority than b.
func versionLess(a, b string) bool {
	ka, kb := versionKey(a), versionKey(b)
	if ka.kind != kb.kind {
		return ka.kind < kb.kind
	}
	if ka.major != kb.major {
		return ka.major < kb.major
	}
	if ka.minor != kb.minor {
		return ka.minor < kb.minor
	}
	return a > b // non-Kubernetes names alphabetically
}

type vkey struct{ kind, major, minor int }

// versionKey parses vN, vNbetaM, vNalphaM; other names rank lowest.
func versionKey(v string) vkey {
	var major, minor int
	var rest string
	if n, _ := fmt.Sscanf(v, "v%d%s", &major, &rest); n >= 1 {
		switch {
		case rest == "" && fmt.Sprintf("v%d", major) == v:
			return vkey{3, major, 0}
		case strings.HasPrefix(rest, "beta"):
			if _, err := fmt.Sscanf(rest, "beta%d", &minor); err == nil && fmt.Sprintf("v%dbeta%d", major, minor) == v {
				return vkey{2, major, minor}
			}
		case strings.HasPrefix(rest, "alpha"):
			if _, err := fmt.Sscanf(rest, "alpha%d", &minor); err == nil && fmt.Sprintf("v%dalpha%d", major, minor) == v {
				return vkey{1, major, minor}
			}
		}
	}
	return vkey{0, 0, 0}
}

// Prune removes fields the schema does not know, unless it preserves
// unknown fields there; metadata is left to the REST layer and apiVersion
// and kind are kept at the root.
func Prune(obj map[string]any, s *apiextensionsv1.JSONSchemaProps, root bool) {
	if s == nil || s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields {
		pruneKnown(obj, s)
		return
	}
	for k, v := range obj {
		if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
			continue
		}
		if prop, ok := s.Properties[k]; ok {
			pruneValue(v, &prop)
			continue
		}
		if s.AdditionalProperties != nil {
			if s.AdditionalProperties.Schema != nil {
				pruneValue(v, s.AdditionalProperties.Schema)
			}
			if s.AdditionalProperties.Allows || s.AdditionalProperties.Schema != nil {
				continue
			}
		}
		delete(obj, k)
	}
}

// pruneKnown prunes inside the fields a preserving schema does describe.
func pruneKnown(obj map[string]any, s *apiextensionsv1.JSONSchemaProps) {
	if s == nil {
		return
	}
	for k, v := range obj {
		if prop, ok := s.Properties[k]; ok {
			pruneValue(v, &prop)
		}
	}
}

func pruneValue(v any, s *apiextensionsv1.JSONSchemaProps) {
	switch x := v.(type) {
	case map[string]any:
		if s.XEmbeddedResource {
			Prune(x, s, true)
			return
		}
		Prune(x, s, false)
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for _, e := range x {
				pruneValue(e, s.Items.Schema)
			}
		}
	}
}

// ApplyDefaults fills unset fields that have a schema default, depth first
// as upstream: a defaulted object then gets its own fields' defaults.
func ApplyDefaults(obj map[string]any, s *apiextensionsv1.JSONSchemaProps) {
	if s == nil {
		return
	}
	for name, prop := range s.Properties {
		v, set := obj[name]
		if !set && prop.Default != nil {
			var d any
			if err := jsonUnmarshal(prop.Default.Raw, &d); err == nil {
				obj[name] = d
				v, set = d, true
			}
		}
		if set {
			defaultValue(v, &prop)
		}
	}
	if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
		for name, v := range obj {
			if _, known := s.Properties[name]; !known {
				defaultValue(v, ap.Schema)
			}
		}
	}
}

func defaultValue(v any, s *apiextensionsv1.JSONSchemaProps) {
	switch x := v.(type) {
	case map[string]any:
		ApplyDefaults(x, s)
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for _, e := range x {
				defaultValue(e, s.Items.Schema)
			}
		}
	}
}

func jsonUnmarshal(raw []byte, v any) error {
	return k8sjson.UnmarshalCaseSensitivePreserveInts(raw, v)
}
