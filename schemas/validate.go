package schemas

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validator checks objects of one kind against its schema. It is compiled
// on first use and safe for concurrent use.
type Validator struct {
	gvk  schema.GroupVersionKind
	root string
	// lookup finds a definition, as JSON Schema, by name.
	lookup func(name string) (any, bool, error)

	once sync.Once
	sch  *jsonschema.Schema
	tree *node
	err  error
}

// Validator returns the validator of a kind, or nil if the Set has no
// schema for it.
func (s *Set) Validator(gvk schema.GroupVersionKind) *Validator {
	snap := s.cur.Load()
	if c, ok := snap.custom[gvk]; ok {
		return c.validator
	}
	return snap.base.validators[gvk]
}

func (v *Validator) compile() error {
	v.once.Do(func() {
		defs, err := closure(v.lookup, v.root)
		if err != nil {
			v.err = fmt.Errorf("schema of %s: %w", v.gvk, err)
			return
		}
		url := "mem:///" + v.root + ".json"
		c := jsonschema.NewCompiler()
		if err := c.AddResource(url, map[string]any{"$schema": draft07, "definitions": defs}); err != nil {
			v.err = fmt.Errorf("schema of %s: %w", v.gvk, err)
			return
		}
		if v.sch, err = c.Compile(url + jsonDefsPrefix + escapePointer(v.root)); err != nil {
			v.err = fmt.Errorf("compiling the schema of %s: %w", v.gvk, err)
			return
		}
		v.tree = newTreeBuilder(defs).nodeOf(v.root)
	})
	return v.err
}

// Validate checks obj, in the form encoding/json decodes JSON into (maps,
// []any, strings, bools, float64 or int64 numbers, nil; an unstructured
// object), against the kind's schema: types, required fields, enums and,
// for custom resources, the value validations of their schema. Formats and
// CEL rules (x-kubernetes-validations) are not checked, and unknown fields
// are not its concern (see Unknown).
func (v *Validator) Validate(obj map[string]any) field.ErrorList {
	if err := v.compile(); err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	err := v.sch.Validate(obj)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("validating %s: %w", v.gvk, err))}
	}
	var out field.ErrorList
	fieldErrors(ve, v.tree, obj, message.NewPrinter(language.English), &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// fieldErrors turns the failures at the leaves of a validation error into
// field errors worded as kube-apiserver words them.
func fieldErrors(ve *jsonschema.ValidationError, tree *node, obj any, p *message.Printer, out *field.ErrorList) {
	switch ve.ErrorKind.(type) {
	case *kind.OneOf, *kind.AnyOf:
		// The branches' own failures would only confuse: the value matched
		// none (or several) of the alternatives.
	default:
		if len(ve.Causes) > 0 {
			for _, c := range ve.Causes {
				fieldErrors(c, tree, obj, p, out)
			}
			return
		}
	}
	path, value := locate(tree, obj, ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, field.Required(child(path, m), ""))
		}
	case *kind.Type:
		var want []string
		for _, t := range k.Want {
			if t != "null" {
				want = append(want, t)
			}
		}
		*out = append(*out, field.TypeInvalid(path, value, "must be of type "+strings.Join(want, " or ")))
	case *kind.Enum:
		var valid []string
		for _, w := range k.Want {
			switch w := w.(type) {
			case nil:
			case string:
				if w != "" {
					valid = append(valid, w)
				}
			default:
				valid = append(valid, fmt.Sprint(w))
			}
		}
		*out = append(*out, field.NotSupported(path, value, valid))
	case *kind.MaxLength:
		*out = append(*out, field.TooLong(path, value, k.Want))
	case *kind.MaxItems:
		*out = append(*out, field.TooMany(path, k.Got, k.Want))
	case *kind.MaxProperties:
		*out = append(*out, field.TooMany(path, k.Got, k.Want))
	case *kind.UniqueItems:
		if list, ok := value.([]any); ok && k.Duplicates[1] < len(list) {
			*out = append(*out, field.Duplicate(index(path, k.Duplicates[1]), list[k.Duplicates[1]]))
			break
		}
		*out = append(*out, field.Invalid(path, value, "should not contain duplicates"))
	case *kind.Minimum:
		*out = append(*out, field.Invalid(path, value, "should be greater than or equal to "+k.Want.RatString()))
	case *kind.ExclusiveMinimum:
		*out = append(*out, field.Invalid(path, value, "should be greater than "+k.Want.RatString()))
	case *kind.Maximum:
		*out = append(*out, field.Invalid(path, value, "should be less than or equal to "+k.Want.RatString()))
	case *kind.ExclusiveMaximum:
		*out = append(*out, field.Invalid(path, value, "should be less than "+k.Want.RatString()))
	case *kind.MultipleOf:
		*out = append(*out, field.Invalid(path, value, "should be a multiple of "+k.Want.RatString()))
	case *kind.Pattern:
		*out = append(*out, field.Invalid(path, value, "should match '"+k.Want+"'"))
	case *kind.MinLength:
		*out = append(*out, field.Invalid(path, value, fmt.Sprintf("should be at least %d chars long", k.Want)))
	case *kind.MinItems:
		*out = append(*out, field.Invalid(path, value, fmt.Sprintf("should have at least %d items", k.Want)))
	case *kind.MinProperties:
		*out = append(*out, field.Invalid(path, value, fmt.Sprintf("should have at least %d properties", k.Want)))
	default:
		*out = append(*out, field.Invalid(path, value, ve.ErrorKind.LocalizedString(p)))
	}
}

func child(p *field.Path, name string) *field.Path {
	if p == nil {
		return field.NewPath(name)
	}
	return p.Child(name)
}

// locate follows an instance location through obj and the schema's
// shape, telling list indexes and map keys from field names, and returns
// the field path and the value there.
func locate(n *node, obj any, loc []string) (*field.Path, any) {
	path := (*field.Path)(nil)
	cur := obj
	for _, tok := range loc {
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return child(path, tok), nil
			}
			path, cur = index(path, i), c[i]
			if n != nil {
				n = n.items
			}
		case map[string]any:
			if n != nil && n.props[tok] == nil && n.additional != nil {
				path, n = key(path, tok), n.additional
			} else {
				path = child(path, tok)
				if n != nil {
					n = n.props[tok]
				}
			}
			cur = c[tok]
		default:
			return child(path, tok), nil
		}
	}
	return path, cur
}

func index(p *field.Path, i int) *field.Path {
	if p == nil {
		return field.NewPath("").Index(i)
	}
	return p.Index(i)
}

func key(p *field.Path, k string) *field.Path {
	if p == nil {
		return field.NewPath("").Key(k)
	}
	return p.Key(k)
}

// node is the shape of a schema for finding unknown fields.
type node struct {
	props      map[string]*node
	items      *node
	additional *node
	// open: fields not among props are kept (preserve-unknown-fields,
	// additionalProperties true, or a built-in type that holds anything).
	open bool
}

type treeBuilder struct {
	schemas map[string]any
	defs    map[string]*node
}

func newTreeBuilder(schemas map[string]any) *treeBuilder {
	return &treeBuilder{schemas: schemas, defs: map[string]*node{}}
}

// nodeOf builds the node of a definition once; recursive definitions
// (JSONSchemaProps) point back to it.
func (t *treeBuilder) nodeOf(name string) *node {
	if n, ok := t.defs[name]; ok {
		return n
	}
	n := &node{}
	t.defs[name] = n
	d, ok := t.schemas[name]
	if !ok {
		n.open = true
		return n
	}
	*n = *t.build(d)
	return n
}

func (t *treeBuilder) build(v any) *node {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		return t.nodeOf(strings.NewReplacer("~1", "/", "~0", "~").Replace(strings.TrimPrefix(ref, jsonDefsPrefix)))
	}
	n := &node{}
	if b, _ := m[extPreserveUnknown].(bool); b {
		n.open = true
	}
	if props, ok := m["properties"].(map[string]any); ok {
		n.props = make(map[string]*node, len(props))
		for name, p := range props {
			n.props[name] = t.build(p)
		}
	}
	if items, ok := m["items"]; ok {
		n.items = t.build(items)
	}
	switch ap := m["additionalProperties"].(type) {
	case map[string]any:
		n.additional = t.build(ap)
	case bool:
		n.open = n.open || ap
	}
	return n
}

// Unknown lists the paths of fields in obj that the kind's schema does not
// know, in field path form (spec.template.spec.containers[0].foo), sorted:
// what kube-apiserver prunes from a custom resource. Fields under
// x-kubernetes-preserve-unknown-fields or additionalProperties are known.
func (v *Validator) Unknown(obj map[string]any) []string {
	if v.compile() != nil {
		return nil
	}
	var out []string
	unknown(v.tree, obj, nil, &out)
	sort.Strings(out)
	return out
}

func unknown(n *node, v any, path *field.Path, out *[]string) {
	if n == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if p, ok := n.props[k]; ok {
				unknown(p, x, child(path, k), out)
				continue
			}
			if n.additional != nil {
				unknown(n.additional, x, key(path, k), out)
				continue
			}
			if !n.open {
				*out = append(*out, child(path, k).String())
			}
		}
	case []any:
		for i, x := range v {
			unknown(n.items, x, index(path, i), out)
		}
	}
}
