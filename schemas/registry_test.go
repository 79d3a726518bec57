package schemas_test

import (
	"encoding/json"
	"testing"

	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/schemas"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestRegistryKinds builds a Set from the registry's resources, converted
// the way the server converts them, and checks that every served kind has
// a described schema that kubectl explain can find.
func TestRegistryKinds(t *testing.T) {
	reg, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	var resources []schemas.Resource
	for _, g := range reg.For("root").Groups() {
		for _, v := range g.Versions {
			for _, r := range reg.For("root").Resources(g.Name, v) {
				if r.Computed {
					continue // metrics.k8s.io: not described, as the server leaves it out
				}
				resources = append(resources, schemas.Resource{
					Group: r.Group, Version: r.Version, Resource: r.Resource, Kind: r.Kind, ListKind: r.ListKind,
					Namespaced: r.Namespaced, Status: r.Status, Scale: r.Scale != nil, CreateOnly: r.CreateOnly,
					Subresources: r.Subresources, Verbs: r.Verbs(),
				})
			}
		}
	}
	set, err := schemas.New(resources)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]map[string]any{}
	for _, r := range resources {
		gv := "apis/" + r.Group + "/" + r.Version
		if r.Group == "" {
			gv = "api/" + r.Version
		}
		if docs[gv] == nil {
			body, _, ok := set.V3(gv)
			if !ok {
				t.Fatalf("no document for %s", gv)
			}
			var doc struct {
				Components struct {
					Schemas map[string]map[string]any `json:"schemas"`
				} `json:"components"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			docs[gv] = doc.Components.Schemas
		}
		found := false
		for _, sch := range docs[gv] {
			kinds, _ := sch["x-kubernetes-group-version-kind"].([]any)
			for _, k := range kinds {
				m := k.(map[string]any)
				if m["group"] == r.Group && m["version"] == r.Version && m["kind"] == r.Kind {
					found = true
					if d, _ := sch["description"].(string); d == "" {
						t.Errorf("%s: schema without description", r.Kind)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s/%s %s: no schema in %s", r.Group, r.Version, r.Kind, gv)
		}
		if set.Validator(schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}) == nil {
			t.Errorf("%s: no validator", r.Kind)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
}
