package schemas

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

var widgetGVK = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}

const widgetSchema = `
type: object
description: A Widget is a made-up custom resource.
properties:
  spec:
    type: object
    description: What the widget should be.
    required: [size]
    properties:
      replicas: {type: integer, minimum: 0, description: How many.}
      size: {x-kubernetes-int-or-string: true, description: Its size.}
      color: {type: string, enum: [red, blue]}
      name: {type: string, maxLength: 5, pattern: '^[a-z]+$'}
      tags: {type: array, items: {type: string}, x-kubernetes-list-type: set}
      note: {type: string, nullable: true}
      labels: {type: object, additionalProperties: {type: string}}
      extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
      template: {type: object, x-kubernetes-embedded-resource: true, x-kubernetes-preserve-unknown-fields: true}
      parts:
        type: array
        items:
          type: object
          properties:
            id: {type: string}
  status:
    type: object
    properties:
      ready: {type: boolean}
`

func widgetProps(t testing.TB) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	var p apiextensionsv1.JSONSchemaProps
	if err := yaml.Unmarshal([]byte(widgetSchema), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func widgetResource() Resource {
	return Resource{Group: "example.com", Version: "v1", Resource: "widgets", Kind: "Widget", Namespaced: true, Status: true, Scale: true}
}

func TestAddCustom(t *testing.T) {
	s := newTestSet(t)
	_, v2Before := s.V2JSON()
	indexBefore := string(s.V3Index())
	_, appsBefore, _ := s.V3("apis/apps/v1")

	if err := s.AddCustom(widgetGVK, widgetResource(), widgetProps(t)); err != nil {
		t.Fatal(err)
	}
	body, v2After := s.V2JSON()
	if v2After == v2Before {
		t.Error("v2 ETag unchanged by AddCustom")
	}
	if string(s.V3Index()) == indexBefore {
		t.Error("v3 index unchanged by AddCustom")
	}
	if _, appsAfter, _ := s.V3("apis/apps/v1"); appsAfter != appsBefore {
		t.Error("apps/v1 document changed by an unrelated custom resource")
	}

	var v2 struct {
		Definitions map[string]map[string]any `json:"definitions"`
		Paths       map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &v2); err != nil {
		t.Fatal(err)
	}
	def := v2.Definitions["com.example.v1.Widget"]
	if def == nil || v2.Definitions["com.example.v1.WidgetList"] == nil {
		t.Fatalf("custom definitions missing from v2: %v", def)
	}
	meta := def["properties"].(map[string]any)["metadata"].(map[string]any)
	if meta["$ref"] != "#/definitions/"+nameObjectMeta {
		t.Errorf("v2 metadata %v", meta)
	}
	patch := v2.Paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"].(map[string]any)
	if patch["operationId"] != "patchExampleComV1NamespacedWidget" {
		t.Errorf("patch operation %v", patch["operationId"])
	}

	doc, _, ok := s.V3("apis/example.com/v1")
	if !ok {
		t.Fatal("no v3 document for the custom group version")
	}
	var v3 v3Doc
	var generic map[string]any
	if err := json.Unmarshal(doc, &v3); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc, &generic); err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{}
	refs(generic, all)
	for r := range all {
		if v3.Components.Schemas[strings.TrimPrefix(r, "#/components/schemas/")] == nil {
			t.Errorf("unresolved reference %s", r)
		}
	}
	w := v3.Components.Schemas["com.example.v1.Widget"]
	if !reflect.DeepEqual(w[extensionGVK], []any{map[string]any{"group": "example.com", "version": "v1", "kind": "Widget"}}) {
		t.Errorf("widget kinds %v", w[extensionGVK])
	}
	props := w["properties"].(map[string]any)
	for _, f := range []string{"apiVersion", "kind", "metadata", "spec", "status"} {
		if props[f] == nil {
			t.Errorf("widget schema lacks %s", f)
		}
	}
	if d, _ := props["spec"].(map[string]any)["description"].(string); d != "What the widget should be." {
		t.Errorf("spec description %q", d)
	}
	tmpl := props["spec"].(map[string]any)["properties"].(map[string]any)["template"].(map[string]any)
	if tmpl["properties"].(map[string]any)["metadata"] == nil {
		t.Error("embedded resource lacks metadata")
	}
	for _, p := range []string{"/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status", "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale", "/apis/example.com/v1/widgets"} {
		if v3.Paths[p] == nil {
			t.Errorf("no path %s", p)
		}
	}

	if err := s.Err(); err != nil {
		t.Fatal(err)
	}

	// Replacing keeps one copy; removing takes everything back out.
	if err := s.AddCustom(widgetGVK, widgetResource(), widgetProps(t)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(s.GroupVersions(), " "), "example.com"); n != 1 {
		t.Errorf("group version listed %d times", n)
	}
	s.RemoveCustom(widgetGVK)
	if _, _, ok := s.V3("apis/example.com/v1"); ok {
		t.Error("removed custom resource still served")
	}
	if s.Validator(widgetGVK) != nil {
		t.Error("removed custom resource still validated")
	}
	if _, etag := s.V2JSON(); etag != v2Before {
		t.Error("v2 ETag differs after removing the only custom resource")
	}
}

func TestAddCustomConflicts(t *testing.T) {
	s := newTestSet(t)
	pods := Resource{Version: "v1", Resource: "pods", Kind: "Pod", Namespaced: true}
	if err := s.AddCustom(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, pods, nil); err == nil {
		t.Error("a built-in kind was accepted as custom")
	}
	other := Resource{Version: "v1", Resource: "pods", Kind: "Gadget"}
	if err := s.AddCustom(schema.GroupVersionKind{Version: "v1", Kind: "Gadget"}, other, nil); err == nil {
		t.Error("a built-in resource was taken over")
	}
	if err := s.AddCustom(widgetGVK, Resource{Group: "example.com", Version: "v2", Resource: "widgets"}, nil); err == nil {
		t.Error("a resource of another version was accepted")
	}
}

func TestCustomValidation(t *testing.T) {
	s := newTestSet(t)
	if err := s.AddCustom(widgetGVK, widgetResource(), widgetProps(t)); err != nil {
		t.Fatal(err)
	}
	v := s.Validator(widgetGVK)
	good := decode(t, `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
		"spec": {"replicas": 2, "size": "10Gi", "color": "red", "name": "abc", "tags": ["a", "b"], "note": null,
			"labels": {"x": "y"}, "extra": {"anything": [1, {"deep": true}]},
			"template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
			"parts": [{"id": "p1"}]},
		"status": {"ready": true}}`)
	if errs := v.Validate(good); len(errs) != 0 {
		t.Errorf("valid widget rejected: %v", errs)
	}
	if u := v.Unknown(good); len(u) != 0 {
		t.Errorf("unknown fields in a valid widget: %v", u)
	}

	bad := decode(t, `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
		"spec": {"replicas": -1, "size": 1.5, "color": "green", "name": "toolong", "tags": ["a", "a"], "labels": {"x": 1}}}`)
	got := v.Validate(bad)
	byField := map[string]field.ErrorType{}
	for _, e := range got {
		byField[e.Field] = e.Type
	}
	for f, typ := range map[string]field.ErrorType{
		"spec.replicas":  field.ErrorTypeInvalid,
		"spec.size":      field.ErrorTypeTypeInvalid,
		"spec.color":     field.ErrorTypeNotSupported,
		"spec.name":      field.ErrorTypeTooLong,
		"spec.tags[1]":   field.ErrorTypeDuplicate,
		"spec.labels[x]": field.ErrorTypeTypeInvalid,
	} {
		if byField[f] != typ {
			t.Errorf("%s: got %q, want %q (all: %v)", f, byField[f], typ, got)
		}
	}
	if e := got.Filter(func(e error) bool { return e.(*field.Error).Field != "spec.replicas" }); len(e) != 1 ||
		e[0].Detail != "should be greater than or equal to 0" {
		t.Errorf("minimum: %v", e)
	}
	missing := v.Validate(decode(t, `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}`))
	if len(missing) != 1 || missing[0].Type != field.ErrorTypeRequired || missing[0].Field != "spec.size" {
		t.Errorf("missing size: %v", missing)
	}
}

func TestUnknown(t *testing.T) {
	s := newTestSet(t)
	if err := s.AddCustom(widgetGVK, widgetResource(), widgetProps(t)); err != nil {
		t.Fatal(err)
	}
	obj := decode(t, `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "bogus": 1},
		"spec": {"size": 1, "shape": "round", "extra": {"free": 1}, "parts": [{"id": "a"}, {"id": "b", "weight": 3}],
			"template": {"kind": "X", "whatever": {"deep": 1}}},
		"status": {"ready": false, "phase": "x"}, "top": true}`)
	got := s.Validator(widgetGVK).Unknown(obj)
	want := []string{"metadata.bogus", "spec.parts[1].weight", "spec.shape", "status.phase", "top"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}

	pod := decode(t, `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
		"spec": {"containers": [{"name": "c", "image": "x", "colour": "red", "resources": {"limits": {"cpu": "1"}}}]}}`)
	if got := s.Validator(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}).Unknown(pod); !reflect.DeepEqual(got, []string{"spec.containers[0].colour"}) {
		t.Errorf("pod unknown fields %v", got)
	}
	rev := decode(t, `{"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"}, "revision": 1, "data": {"any": {"thing": 1}}}`)
	if got := s.Validator(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ControllerRevision"}).Unknown(rev); len(got) != 0 {
		t.Errorf("raw extension contents reported unknown: %v", got)
	}
}

// TestConcurrentReaders exercises readers while custom resources come and
// go (run with -race).
func TestConcurrentReaders(t *testing.T) {
	s := newTestSet(t)
	props := widgetProps(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.V3Index()
				if v := s.Validator(widgetGVK); v != nil {
					v.Validate(map[string]any{"spec": map[string]any{"size": 1}})
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		if err := s.AddCustom(widgetGVK, widgetResource(), props); err != nil {
			t.Error(err)
		}
		s.RemoveCustom(widgetGVK)
	}
	close(stop)
	wg.Wait()
}
