package schemas

import (
	"fmt"
	"strings"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The validators check objects against JSON Schema (draft-07) converted from
// the v3 definitions. Draft-07 rather than 2020-12 because its $ref stands
// alone, which is how OpenAPI 3.0 reads it, and because the validator then
// skips the bookkeeping that unevaluated* keywords need.

const (
	extPreserveUnknown = "x-kubernetes-preserve-unknown-fields"
	extEmbedded        = "x-kubernetes-embedded-resource"
	extIntOrString     = "x-kubernetes-int-or-string"

	draft07        = "http://json-schema.org/draft-07/schema#"
	jsonDefsPrefix = "#/definitions/"
)

// jsonSchemaDefinitions converts every definition to JSON Schema.
//
// Null is accepted anywhere: encoding/json leaves a built-in field unset
// for it, and kube-apiserver prunes it from custom resources (where the
// field is not nullable) rather than rejecting it. builtin selects how Go
// types read JSON rather than how a CRD's structural schema does: an enum
// also accepts "" (the unset value of a string, left to defaulting and
// semantic validation); an object whose schema lists no fields holds
// anything (RawExtension, FieldsV1), where a structural schema would have
// its fields pruned; and a required number or bool may be left out.
func jsonSchemaDefinitions(defs map[string]common.OpenAPIDefinition, builtin bool) (map[string]any, error) {
	out := make(map[string]any, len(defs))
	for name, d := range defs {
		js, err := toJSONSchema(&d.Schema, builtin)
		if err != nil {
			return nil, fmt.Errorf("definition %s: %w", name, err)
		}
		out[name] = js
	}
	return out, nil
}

func refName(ref spec.Ref) (string, error) {
	r := ref.String()
	for _, prefix := range []string{"#/components/schemas/", "#/definitions/"} {
		if strings.HasPrefix(r, prefix) {
			return strings.NewReplacer("~1", "/", "~0", "~").Replace(r[len(prefix):]), nil
		}
	}
	return "", fmt.Errorf("reference %q points outside the definitions", r)
}

// typesOnly reports the types of a oneOf whose branches only name a type
// (Quantity, IntOrString): such a oneOf is a type union.
func typesOnly(branches []spec.Schema) ([]string, bool) {
	var types []string
	for _, b := range branches {
		if len(b.Type) != 1 || b.Ref.String() != "" || len(b.Properties) > 0 || b.Items != nil || len(b.Enum) > 0 {
			return nil, false
		}
		types = append(types, b.Type[0])
	}
	return types, len(types) > 0
}

func toJSONSchema(s *spec.Schema, builtin bool) (map[string]any, error) {
	out := map[string]any{}
	if s.Ref.String() != "" {
		name, err := refName(s.Ref)
		if err != nil {
			return nil, err
		}
		// Siblings of a reference only describe it (description, default).
		out["$ref"] = jsonDefsPrefix + escapePointer(name)
		return out, nil
	}
	types := append([]string(nil), s.Type...)
	oneOf := s.OneOf
	if t, ok := typesOnly(oneOf); ok {
		types, oneOf = t, nil
	}
	if b, _ := s.Extensions.GetBool(extIntOrString); b {
		types = []string{"integer", "string"}
	}
	if len(types) > 0 {
		list := make([]any, 0, len(types)+1)
		for _, t := range types {
			list = append(list, t)
		}
		out["type"] = append(list, "null")
	}
	if len(s.Enum) > 0 {
		vals := append([]any(nil), s.Enum...)
		if builtin && contains(types, "string") && !containsValue(vals, "") {
			vals = append(vals, "")
		}
		if !containsValue(vals, nil) {
			vals = append(vals, nil)
		}
		out["enum"] = vals
	}
	if len(s.Properties) > 0 {
		props := make(map[string]any, len(s.Properties))
		for name, p := range s.Properties {
			js, err := toJSONSchema(&p, builtin)
			if err != nil {
				return nil, fmt.Errorf("property %s: %w", name, err)
			}
			props[name] = js
		}
		out["properties"] = props
	}
	var req []any
	for _, r := range s.Required {
		// A Go number or bool left out reads as its zero value, which is
		// for semantic validation to judge (0 replicas in a status is
		// fine; a port of 0 is not): kube-apiserver never enforces these.
		if p, ok := s.Properties[r]; builtin && ok && len(p.Type) == 1 && contains([]string{"integer", "number", "boolean"}, p.Type[0]) {
			continue
		}
		req = append(req, r)
	}
	if len(req) > 0 {
		out["required"] = req
	}
	if s.Items != nil && s.Items.Schema != nil {
		js, err := toJSONSchema(s.Items.Schema, builtin)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		out["items"] = js
	}
	if ap := s.AdditionalProperties; ap != nil {
		if ap.Schema != nil {
			js, err := toJSONSchema(ap.Schema, builtin)
			if err != nil {
				return nil, fmt.Errorf("additionalProperties: %w", err)
			}
			out["additionalProperties"] = js
		} else if !ap.Allows {
			out["additionalProperties"] = false
		}
	}
	// Not a JSON Schema keyword: Unknown reads it, and the validator ignores
	// it.
	preserve, _ := s.Extensions.GetBool(extPreserveUnknown)
	if builtin && s.Items == nil && len(s.Properties) == 0 && s.AdditionalProperties == nil &&
		(len(types) == 0 || contains(types, "object")) {
		preserve = true
	}
	if preserve {
		out[extPreserveUnknown] = true
	}
	// Value validations only appear in CRD schemas; the generated
	// definitions carry none.
	if s.Maximum != nil {
		if s.ExclusiveMaximum {
			out["exclusiveMaximum"] = *s.Maximum
		} else {
			out["maximum"] = *s.Maximum
		}
	}
	if s.Minimum != nil {
		if s.ExclusiveMinimum {
			out["exclusiveMinimum"] = *s.Minimum
		} else {
			out["minimum"] = *s.Minimum
		}
	}
	if s.MultipleOf != nil {
		out["multipleOf"] = *s.MultipleOf
	}
	for k, v := range map[string]*int64{
		"maxLength": s.MaxLength, "minLength": s.MinLength, "maxItems": s.MaxItems, "minItems": s.MinItems,
		"maxProperties": s.MaxProperties, "minProperties": s.MinProperties,
	} {
		if v != nil {
			out[k] = *v
		}
	}
	if s.Pattern != "" {
		out["pattern"] = s.Pattern
	}
	if !builtin {
		if lt, _ := s.Extensions.GetString("x-kubernetes-list-type"); lt == "set" || s.UniqueItems {
			out["uniqueItems"] = true
		}
	}
	for kw, list := range map[string][]spec.Schema{"allOf": s.AllOf, "anyOf": s.AnyOf, "oneOf": oneOf} {
		if len(list) == 0 {
			continue
		}
		branches := make([]any, 0, len(list))
		for i := range list {
			js, err := toJSONSchema(&list[i], builtin)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kw, err)
			}
			branches = append(branches, js)
		}
		out[kw] = branches
	}
	if s.Not != nil {
		js, err := toJSONSchema(s.Not, builtin)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		out["not"] = js
	}
	return out, nil
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// closure collects the definitions reachable from root, so that each
// validator compiles a document holding only what its kind uses.
func closure(lookup func(string) (any, bool, error), root string) (map[string]any, error) {
	out := map[string]any{}
	pending := []string{root}
	for len(pending) > 0 {
		name := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if _, done := out[name]; done {
			continue
		}
		d, ok, err := lookup(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no definition %s", name)
		}
		out[name] = d
		for _, ref := range refsIn(d, nil) {
			pending = append(pending, ref)
		}
	}
	return out, nil
}

func refsIn(v any, acc []string) []string {
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"].(string); ok && strings.HasPrefix(r, jsonDefsPrefix) {
			acc = append(acc, strings.NewReplacer("~1", "/", "~0", "~").Replace(r[len(jsonDefsPrefix):]))
		}
		for _, x := range v {
			acc = refsIn(x, acc)
		}
	case []any:
		for _, x := range v {
			acc = refsIn(x, acc)
		}
	}
	return acc
}
