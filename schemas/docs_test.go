package schemas

import (
	"encoding/json"
	"strings"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

func TestDefinitionsForEveryKind(t *testing.T) {
	s := newTestSet(t)
	var doc struct {
		Definitions map[string]struct {
			Description string           `json:"description"`
			Properties  map[string]any   `json:"properties"`
			GVK         []map[string]any `json:"x-kubernetes-group-version-kind"`
		} `json:"definitions"`
	}
	body, _ := s.V2JSON()
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range servedResources() {
		name, err := s.base.definitionOf(r.gvk())
		if err != nil {
			t.Fatal(err)
		}
		d, ok := doc.Definitions[name]
		if !ok {
			t.Errorf("%s: no definition %s in /openapi/v2", r.Kind, name)
			continue
		}
		if d.Description == "" || len(d.Properties) == 0 {
			t.Errorf("%s: definition without description or properties", name)
		}
		found := false
		for _, g := range d.GVK {
			found = found || (g["group"] == r.Group && g["version"] == r.Version && g["kind"] == r.Kind)
		}
		if !found {
			t.Errorf("%s: x-kubernetes-group-version-kind %v lacks %s", name, d.GVK, r.gvk())
		}
	}
	for _, name := range []string{"io.k8s.api.core.v1.Pod", nameObjectMeta, nameListMeta, nameStatus,
		"io.k8s.apimachinery.pkg.apis.meta.v1.Time", "io.k8s.apimachinery.pkg.api.resource.Quantity",
		"io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.api.autoscaling.v1.Scale"} {
		if doc.Definitions[name].Description == "" {
			t.Errorf("no described definition %s", name)
		}
	}
	for _, name := range []string{"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime", "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
		"io.k8s.apimachinery.pkg.runtime.RawExtension", "io.k8s.api.policy.v1.Eviction", "io.k8s.api.authentication.v1.TokenRequest"} {
		if s.base.v3[name].Schema.Description == "" {
			t.Errorf("no described definition %s", name)
		}
	}
}

// patchOperations checks that every patch operation of a gnostic document
// names a kind and takes fieldValidation, which makes kubectl 1.27-1.33
// leave validation to the server.
func checkPatchOperations(t *testing.T, doc *openapiv2.Document) {
	t.Helper()
	global := map[string]*openapiv2.NamedParameter{}
	for _, p := range doc.GetParameters().GetAdditionalProperties() {
		global["#/parameters/"+p.GetName()] = p
	}
	patches := 0
	for _, p := range doc.GetPaths().GetPath() {
		op := p.GetValue().GetPatch()
		if op == nil {
			continue
		}
		patches++
		hasGVK := false
		for _, ext := range op.GetVendorExtension() {
			hasGVK = hasGVK || ext.GetName() == "x-kubernetes-group-version-kind"
		}
		names := map[string]bool{}
		for _, param := range op.GetParameters() {
			if q := param.GetParameter().GetNonBodyParameter().GetQueryParameterSubSchema(); q != nil {
				names[q.GetName()] = true
			}
			if g := global[param.GetJsonReference().GetXRef()]; g != nil {
				names[g.GetValue().GetNonBodyParameter().GetQueryParameterSubSchema().GetName()] = true
			}
		}
		for _, want := range []string{"fieldValidation", "dryRun", "fieldManager", "force"} {
			if !names[want] {
				t.Errorf("patch %s lacks the %s parameter", p.GetName(), want)
			}
		}
		if !hasGVK || op.GetOperationId() == "" {
			t.Errorf("patch %s lacks its kind or operation ID", p.GetName())
		}
	}
	if patches < 40 {
		t.Errorf("only %d patch operations", patches)
	}
}

func TestV2ParsesBack(t *testing.T) {
	s := newTestSet(t)
	body, etag := s.V2JSON()
	doc, err := openapiv2.ParseDocument(body)
	if err != nil {
		t.Fatal(err)
	}
	checkPatchOperations(t, doc)
	if doc.GetPaths() == nil || len(doc.GetDefinitions().GetAdditionalProperties()) < 100 {
		t.Fatalf("thin document: %d definitions", len(doc.GetDefinitions().GetAdditionalProperties()))
	}

	pb, pbEtag := s.V2Proto()
	var fromProto openapiv2.Document
	if err := proto.Unmarshal(pb, &fromProto); err != nil {
		t.Fatal(err)
	}
	checkPatchOperations(t, &fromProto)
	if !proto.Equal(doc, &fromProto) {
		t.Error("protobuf and JSON documents differ")
	}
	if etag == pbEtag || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Errorf("ETags %s and %s", etag, pbEtag)
	}
	// Operations are laid out as kube-apiserver lays them out.
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	paths := raw["paths"].(map[string]any)
	for path, want := range map[string]map[string]string{
		"/api/v1/namespaces/{namespace}/pods":                {"get": "listCoreV1NamespacedPod", "post": "createCoreV1NamespacedPod", "delete": "deleteCoreV1CollectionNamespacedPod"},
		"/api/v1/namespaces/{namespace}/pods/{name}":         {"get": "readCoreV1NamespacedPod", "put": "replaceCoreV1NamespacedPod", "patch": "patchCoreV1NamespacedPod", "delete": "deleteCoreV1NamespacedPod"},
		"/api/v1/namespaces/{namespace}/pods/{name}/status":  {"get": "readCoreV1NamespacedPodStatus", "patch": "patchCoreV1NamespacedPodStatus"},
		"/api/v1/namespaces/{namespace}/pods/{name}/binding": {"post": "createCoreV1NamespacedPodBinding"},
		"/api/v1/pods": {"get": "listCoreV1PodForAllNamespaces"},
		"/api/v1/watch/namespaces/{namespace}/pods/{name}": {"get": "watchCoreV1NamespacedPod"},
		"/api/v1/watch/pods": {"get": "watchCoreV1PodListForAllNamespaces"},
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale": {"patch": "patchAppsV1NamespacedDeploymentScale"},
		"/apis/rbac.authorization.k8s.io/v1/clusterroles":               {"get": "listRbacAuthorizationV1ClusterRole"},
		"/apis/authentication.k8s.io/v1/tokenreviews":                   {"post": "createAuthenticationV1TokenReview"},
		"/api/v1/namespaces/{name}/finalize":                            {"put": "replaceCoreV1NamespaceFinalize"},
		"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token":   {"post": "createCoreV1NamespacedServiceAccountToken"},
	} {
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("no path %s", path)
			continue
		}
		for method, id := range want {
			op, _ := item[method].(map[string]any)
			if op["operationId"] != id {
				t.Errorf("%s %s: operation %v, want %s", method, path, op["operationId"], id)
			}
		}
	}
	scale := paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"].(map[string]any)["patch"].(map[string]any)
	if gvk := scale["x-kubernetes-group-version-kind"].(map[string]any); gvk["kind"] != "Scale" || gvk["group"] != "autoscaling" {
		t.Errorf("scale patch names kind %v", gvk)
	}
}

type v3Doc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]map[string]any `json:"schemas"`
	} `json:"components"`
}

// refs collects every "$ref" in a decoded document.
func refs(v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"].(string); ok {
			out[r] = true
		}
		for _, x := range v {
			refs(x, out)
		}
	case []any:
		for _, x := range v {
			refs(x, out)
		}
	}
}

func TestV3(t *testing.T) {
	s := newTestSet(t)
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.V3Index(), &index); err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]Resource{}
	for _, r := range servedResources() {
		kinds[gvPath(r.Group, r.Version)] = append(kinds[gvPath(r.Group, r.Version)], r)
	}
	if len(index.Paths) != len(kinds) {
		t.Errorf("index lists %d group versions, want %d", len(index.Paths), len(kinds))
	}
	for gv, resources := range kinds {
		entry, ok := index.Paths[gv]
		if !ok {
			t.Errorf("index lacks %s", gv)
			continue
		}
		body, etag, ok := s.V3(gv)
		if !ok {
			t.Fatalf("no document %s", gv)
		}
		if want := "/openapi/v3/" + gv + "?hash=" + strings.Trim(etag, `"`); entry.ServerRelativeURL != want {
			t.Errorf("index URL %s, want %s", entry.ServerRelativeURL, want)
		}
		var generic map[string]any
		if err := json.Unmarshal(body, &generic); err != nil {
			t.Fatal(err)
		}
		var doc v3Doc
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		all := map[string]bool{}
		refs(generic, all)
		for r := range all {
			name, found := strings.CutPrefix(r, "#/components/schemas/")
			if !found || doc.Components.Schemas[name] == nil {
				t.Errorf("%s: unresolved reference %s", gv, r)
			}
		}
		// kubectl explain finds a kind's schema by its
		// x-kubernetes-group-version-kind.
		for _, r := range resources {
			found := false
			for _, sch := range doc.Components.Schemas {
				list, _ := sch[extensionGVK].([]any)
				for _, g := range list {
					m := g.(map[string]any)
					found = found || (m["group"] == r.Group && m["version"] == r.Version && m["kind"] == r.Kind)
				}
			}
			if !found {
				t.Errorf("%s: no schema of kind %s", gv, r.Kind)
			}
		}
	}
	if _, _, ok := s.V3("apis/nope/v1"); ok {
		t.Error("unknown group version served")
	}
	// The v3 patch operations take fieldValidation too.
	body, _, _ := s.V3("apis/apps/v1")
	var doc v3Doc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var patch struct {
		Parameters []struct{ Name, In string } `json:"parameters"`
	}
	if err := json.Unmarshal(doc.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"], &patch); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range patch.Parameters {
		found = found || (p.Name == "fieldValidation" && p.In == "query")
	}
	if !found {
		t.Errorf("deployment patch parameters %v lack fieldValidation", patch.Parameters)
	}
}

func TestETagsStable(t *testing.T) {
	a, b := newTestSet(t), newTestSet(t)
	_, e1 := a.V2JSON()
	_, e2 := a.V2JSON()
	_, e3 := b.V2JSON()
	if e1 == "" || e1 != e2 || e1 != e3 {
		t.Errorf("v2 ETags %s %s %s", e1, e2, e3)
	}
	_, p1 := a.V2Proto()
	_, p2 := b.V2Proto()
	if p1 != p2 {
		t.Errorf("v2 protobuf ETags %s %s", p1, p2)
	}
	if string(a.V3Index()) != string(b.V3Index()) {
		t.Error("v3 index differs between two sets")
	}
}

func TestV2DefaultsPruned(t *testing.T) {
	s := newTestSet(t)
	body, _ := s.V2JSON()
	var doc map[string]any
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	pod := doc["definitions"].(map[string]any)["io.k8s.api.core.v1.Pod"].(map[string]any)
	meta := pod["properties"].(map[string]any)["metadata"].(map[string]any)
	if _, ok := meta["default"]; ok {
		t.Errorf("v2 keeps defaults: %v", meta)
	}
	body, _, _ = s.V3("api/v1")
	if !strings.Contains(string(body), `"default":{}`) {
		t.Error("v3 lost its defaults")
	}
}

// BenchmarkNew is the cost New adds to a server's start.
func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := New(servedResources()); err != nil {
			b.Fatal(err)
		}
	}
}
