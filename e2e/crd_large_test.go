package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// schemaExpander turns the server's OpenAPI v2 definitions into an
// apiextensions v1 schema, as controller-gen does for operator CRDs that
// embed built-in types: $refs resolved inline, int-or-string and
// Quantity as x-kubernetes-int-or-string, descriptions kept. /openapi/v2
// carries no defaults (kube-apiserver prunes them), so the non-zero ones
// (controller-gen's +default markers, e.g. a port's protocol TCP) are
// taken from the same definitions in /openapi/v3.
type schemaExpander struct {
	defs     map[string]map[string]any // v2
	v3       map[string]map[string]any // v3 components.schemas
	maxDepth int
	defaults int
}

const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

func intOrString(description, pattern string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Description: description, XIntOrString: true, Pattern: pattern,
		AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}
}

// expand converts the v2 schema s; s3 is the same node in v3, if known.
func (e *schemaExpander) expand(t *testing.T, s, s3 map[string]any, depth int) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	description, _ := s["description"].(string)
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		def, ok := e.defs[name]
		if !ok {
			t.Fatalf("/openapi/v2 has no definition %s", name)
		}
		if description == "" {
			description, _ = def["description"].(string)
		}
		switch name {
		case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
			return intOrString(description, "")
		case "io.k8s.apimachinery.pkg.api.resource.Quantity":
			return intOrString(description, quantityPattern)
		case "io.k8s.apimachinery.pkg.apis.meta.v1.Time", "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":
			return apiextensionsv1.JSONSchemaProps{Description: description, Type: "string", Format: "date-time"}
		case "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta":
			return apiextensionsv1.JSONSchemaProps{Description: description, Type: "object"} // as controller-gen
		}
		if depth >= e.maxDepth {
			return apiextensionsv1.JSONSchemaProps{Description: description, Type: "object", XPreserveUnknownFields: ptrTo(true)}
		}
		out := e.expand(t, def, e.v3[name], depth+1)
		out.Description = description
		return out
	}

	out := apiextensionsv1.JSONSchemaProps{Description: description}
	out.Type, _ = s["type"].(string)
	switch f, _ := s["format"].(string); f {
	case "int32", "int64", "double", "float", "byte", "date-time":
		out.Format = f
	}
	if props, ok := s["properties"].(map[string]any); ok {
		out.Properties = map[string]apiextensionsv1.JSONSchemaProps{}
		props3, _ := s3["properties"].(map[string]any)
		for name, p := range props {
			p3, _ := props3[name].(map[string]any)
			out.Properties[name] = e.expand(t, p.(map[string]any), p3, depth+1)
		}
		if out.Type == "" {
			out.Type = "object"
		}
	}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if _, known := out.Properties[r.(string)]; known {
				out.Required = append(out.Required, r.(string))
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		items3, _ := s3["items"].(map[string]any)
		p := e.expand(t, items, items3, depth+1)
		out.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &p}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		ap3, _ := s3["additionalProperties"].(map[string]any)
		p := e.expand(t, ap, ap3, depth+1)
		out.AdditionalProperties = &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &p}
	}
	if enum, ok := s["enum"].([]any); ok {
		for _, v := range enum {
			raw, _ := json.Marshal(v)
			out.Enum = append(out.Enum, apiextensionsv1.JSON{Raw: raw})
		}
	}
	// Non-zero scalar defaults only (openapi-gen's zero values for
	// required fields are not markers), and only those the enum allows.
	switch d := s3["default"].(type) {
	case string, float64, bool:
		raw, _ := json.Marshal(d)
		nonZero := d != "" && d != 0.0 && d != false
		if nonZero && (len(out.Enum) == 0 || slices.ContainsFunc(out.Enum, func(j apiextensionsv1.JSON) bool { return string(j.Raw) == string(raw) })) {
			out.Default = &apiextensionsv1.JSON{Raw: raw}
			e.defaults++
		}
	}
	if lt, ok := s["x-kubernetes-list-type"].(string); ok {
		out.XListType = &lt
	}
	if keys, ok := s["x-kubernetes-list-map-keys"].([]any); ok {
		for _, k := range keys {
			out.XListMapKeys = append(out.XListMapKeys, k.(string))
		}
	}
	if mt, ok := s["x-kubernetes-map-type"].(string); ok {
		out.XMapType = &mt
	}
	// A CRD's list-map keys must be required or defaulted; where the
	// built-in type's are not, the list is left untyped.
	if out.XListType != nil && *out.XListType == "map" && out.Items != nil && out.Items.Schema != nil {
		item := out.Items.Schema
		for _, k := range out.XListMapKeys {
			if p, ok := item.Properties[k]; !ok || !slices.Contains(item.Required, k) && p.Default == nil {
				out.XListType, out.XListMapKeys = nil, nil
				break
			}
		}
	}
	if out.Type == "" && !out.XIntOrString {
		out.Type = "object"
		out.XPreserveUnknownFields = ptrTo(true)
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// largeCRD is a BigApp CRD with a whole PodSpec under
// spec.template.spec and 300 settings beside it.
func largeCRD(t *testing.T, podSpec apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	settings := map[string]apiextensionsv1.JSONSchemaProps{}
	for i := range 300 {
		p := apiextensionsv1.JSONSchemaProps{Description: fmt.Sprintf("Setting %03d tunes one aspect of the application. "+
			"Operators embed many knobs like this one, each with a sentence or two of documentation that kubectl explain shows "+
			"and that makes their CRDs large.", i)}
		switch i % 3 {
		case 0:
			p.Type, p.MaxLength = "string", ptrTo(int64(253))
		case 1:
			p.Type, p.Format, p.Minimum = "integer", "int32", ptrTo(0.0)
		case 2:
			p.Type = "boolean"
		}
		settings[fmt.Sprintf("setting%03d", i)] = p
	}
	stringMap := &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}
	root := apiextensionsv1.JSONSchemaProps{Type: "object", Description: "BigApp runs an application from a pod template.",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Type: "object", Required: []string{"template"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"replicas": {Type: "integer", Format: "int32", Default: &apiextensionsv1.JSON{Raw: []byte("1")}},
				"template": {Type: "object", Description: "The pod template.", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"metadata": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"labels": {Type: "object", AdditionalProperties: stringMap}, "annotations": {Type: "object", AdditionalProperties: stringMap}}},
					"spec": podSpec,
				}},
				"settings": {Type: "object", Description: "Application settings.", Properties: settings},
			}},
			"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"phase": {Type: "string"}}},
		}}
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: "bigapps.large.e2e.pgkube.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "large.e2e.pgkube.io", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "bigapps", Singular: "bigapp", Kind: "BigApp", ListKind: "BigAppList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Image", Type: "string", JSONPath: ".spec.template.spec.containers[0].image"}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &root}}},
		},
	}
}

// bigApp is a custom resource with a valid pod spec, as an operator's user
// would write it.
func bigApp(ns, name string, i int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "large.e2e.pgkube.io/v1", "kind": "BigApp",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"settings": map[string]any{"setting000": "fast", "setting001": int64(i), "setting002": true},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{
					"containers": []any{map[string]any{
						"name": "app", "image": fmt.Sprintf("registry.example/app:%d", i),
						"args":  []any{"--port=8080", "--verbose"},
						"ports": []any{map[string]any{"name": "http", "containerPort": int64(8080)}},
						"env": []any{
							map[string]any{"name": "INDEX", "value": fmt.Sprint(i)},
							map[string]any{"name": "POD", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
						},
						"resources": map[string]any{
							"requests": map[string]any{"cpu": "100m", "memory": "64Mi"},
							"limits":   map[string]any{"cpu": int64(1), "memory": "128Mi"},
						},
						"livenessProbe":  map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": "http"}, "periodSeconds": int64(10)},
						"readinessProbe": map[string]any{"tcpSocket": map[string]any{"port": int64(8080)}},
						"volumeMounts":   []any{map[string]any{"name": "data", "mountPath": "/data"}},
						"securityContext": map[string]any{"allowPrivilegeEscalation": false,
							"capabilities": map[string]any{"drop": []any{"ALL"}}},
					}},
					"volumes": []any{map[string]any{"name": "data", "emptyDir": map[string]any{"sizeLimit": "1Gi"}}},
					"affinity": map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
						map[string]any{"weight": int64(100), "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname",
							"labelSelector": map[string]any{"matchLabels": map[string]any{"app": name}}}}}}},
					"tolerations":     []any{map[string]any{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}},
					"securityContext": map[string]any{"runAsNonRoot": true, "runAsUser": int64(1000)},
				},
			},
		},
	}}
}

// warnings collects the server's warnings to a client.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// TestLargeCRD: a CRD the size of real operators' (a whole PodSpec with
// its documentation inside) is created with server-side apply (client-side
// apply's annotation would exceed 256 KiB), is served promptly, validates,
// defaults and prunes deep inside, keeps up with many creates, is
// explained by every kubectl, and takes its custom resources with it when
// deleted.
func TestLargeCRD(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	const ns, crdName = "crd-large", "bigapps.large.e2e.pgkube.io"

	// The PodSpec as the server publishes it, expanded.
	var v2 struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	getJSON(t, srv.url+"/openapi/v2", &v2)
	var v3 struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	getJSON(t, srv.url+"/openapi/v3/api/v1", &v3)
	e := &schemaExpander{defs: v2.Definitions, v3: v3.Components.Schemas, maxDepth: 12}
	podSpec := e.expand(t, map[string]any{"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}, nil, 0)
	t.Logf("expanded PodSpec: %d defaults from /openapi/v3", e.defaults)
	if e.defaults == 0 {
		t.Fatal("no defaults found in /openapi/v3's PodSpec (a port's protocol defaults to TCP)")
	}
	for _, f := range []string{"containers", "initContainers", "volumes", "affinity", "securityContext", "tolerations"} {
		if _, ok := podSpec.Properties[f]; !ok {
			t.Fatalf("expanded PodSpec lacks %s", f)
		}
	}
	crd := largeCRD(t, podSpec)
	crdJSON, err := json.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	crdYAML, err := yaml.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CRD: %d KiB of JSON, %d KiB of YAML", len(crdJSON)>>10, len(crdYAML)>>10)
	if len(crdJSON) <= 300<<10 {
		t.Fatalf("the CRD is only %d bytes of JSON; want more than 300 KiB", len(crdJSON))
	}

	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	k.ok("create", "ns", ns)
	crdGaps(t, adminConfig(t, srv.url), podSpec)
	cfg := adminConfig(t, srv.url)
	warn := &warnings{}
	cfg.WarningHandler = warn
	dyn := dynamic.NewForConfigOrDie(cfg)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	bigapps := dyn.Resource(schema.GroupVersionResource{Group: "large.e2e.pgkube.io", Version: "v1", Resource: "bigapps"}).Namespace(ns)
	t.Cleanup(func() { crds.Delete(ctx, crdName, metav1.DeleteOptions{}) }) //nolint:errcheck

	// Client-side apply keeps the whole object in the
	// last-applied-configuration annotation: over the 256 KiB that
	// metadata.annotations may hold, so the API server refuses it.
	out, err := k.run(string(crdYAML), "apply", "-f", "-")
	if err == nil {
		t.Fatalf("client-side apply of a %d KiB CRD succeeded:\n%s", len(crdJSON)>>10, out)
	}
	contains(t, out, `The CustomResourceDefinition "`+crdName+`" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes`)
	if _, err := crds.Get(ctx, crdName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused CRD exists: %v", err)
	}

	// Server-side apply has no such annotation.
	start := time.Now()
	contains(t, k.okIn(string(crdYAML), "apply", "--server-side", "-f", "-"),
		"customresourcedefinition.apiextensions.k8s.io/"+crdName+" serverside-applied")
	applied := time.Since(start)
	eventually(t, "large CRD established and served", func() error {
		c, err := crds.Get(ctx, crdName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		established := false
		for _, cond := range conds {
			m := cond.(map[string]any)
			established = established || m["type"] == "Established" && m["status"] == "True"
		}
		if !established {
			return fmt.Errorf("not established: %v", conds)
		}
		_, err = bigapps.List(ctx, metav1.ListOptions{})
		return err
	})
	served := time.Since(start)
	t.Logf("server-side apply took %v; established and served %v after it began", applied.Round(time.Millisecond), served.Round(time.Millisecond))
	if served > 5*time.Second {
		t.Errorf("the large CRD took %v to be served; want at most 5 s", served)
	}
	got, err := crds.Get(ctx, crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The schema is stored as given, every description and default.
	var stored apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.Spec.Versions) != 1 || !equality.Semantic.DeepEqual(stored.Spec.Versions[0].Schema, crd.Spec.Versions[0].Schema) {
		t.Errorf("the stored schema differs from the applied one")
	}
	if desc, _, _ := unstructured.NestedString(got.Object, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"); desc != "" {
		t.Errorf("server-side apply left a last-applied-configuration annotation of %d bytes", len(desc))
	}

	// 200 creates, one after the other, each validated against the whole
	// schema, defaulted and pruned.
	var took []time.Duration
	for i := range 200 {
		start := time.Now()
		if _, err := bigapps.Create(ctx, bigApp(ns, fmt.Sprintf("app-%03d", i), i), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		took = append(took, time.Since(start))
	}
	var total time.Duration
	for _, d := range took {
		total += d
	}
	avg := total / time.Duration(len(took))
	sorted := slices.Clone(took)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	t.Logf("200 creates: %v in all, average %v, median %v, p95 %v, max %v", total.Round(time.Millisecond), avg.Round(time.Microsecond),
		sorted[100].Round(time.Microsecond), sorted[189].Round(time.Microsecond), sorted[199].Round(time.Microsecond))
	if avg > 50*time.Millisecond {
		t.Errorf("creating a custom resource of the large CRD takes %v on average; want under 50 ms", avg)
	}
	if w := warn.take(); len(w) != 0 {
		t.Errorf("valid custom resources drew warnings: %q", w)
	}
	list, err := bigapps.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 200 {
		t.Fatalf("list: %v, %d items", err, len(list.Items))
	}
	if name := list.Items[7].GetName(); name != "app-007" {
		t.Errorf("list order: item 7 is %q", name)
	}

	// A wrong type deep inside: 422 naming the path.
	bad := bigApp(ns, "bad", 0)
	ports := bad.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["ports"].([]any)
	ports[0].(map[string]any)["containerPort"] = "x"
	_, err = bigapps.Create(ctx, bad, metav1.CreateOptions{})
	const badPath = "spec.template.spec.containers[0].ports[0].containerPort"
	if !apierrors.IsInvalid(err) || statusCode(err) != http.StatusUnprocessableEntity ||
		!strings.HasPrefix(err.Error(), `BigApp.large.e2e.pgkube.io "bad" is invalid: `+badPath+`: Invalid value: `) ||
		!strings.Contains(err.Error(), "must be of type integer") {
		t.Errorf("containerPort \"x\": %v (code %d); want a 422 naming %s", err, statusCode(err), badPath)
	}
	t.Logf("containerPort \"x\": %v", err)
	if se, ok := err.(apierrors.APIStatus); ok {
		causes := se.Status().Details
		if causes == nil || len(causes.Causes) != 1 || causes.Causes[0].Field != badPath {
			t.Errorf("details of the 422: %+v", causes)
		}
	}

	// Defaulting and pruning deep inside: the port's protocol (default TCP
	// from the built-in type) is filled in, unknown fields are dropped.
	odd := bigApp(ns, "odd", 0)
	container := odd.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	container["livenessProbe"].(map[string]any)["httpGet"].(map[string]any)["bogus"] = "x"
	container["sidecarMode"] = "on"
	created, err := bigapps.Create(ctx, odd, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []*unstructured.Unstructured{created, mustGet(t, bigapps, "odd")} {
		c, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		ctr := c[0].(map[string]any)
		if p := ctr["ports"].([]any)[0].(map[string]any); p["protocol"] != "TCP" {
			t.Errorf("port protocol not defaulted: %v", p)
		}
		if _, ok := ctr["sidecarMode"]; ok {
			t.Errorf("unknown field spec.template.spec.containers[0].sidecarMode kept")
		}
		if hg := ctr["livenessProbe"].(map[string]any)["httpGet"].(map[string]any); hg["bogus"] != nil || hg["path"] != "/healthz" {
			t.Errorf("livenessProbe.httpGet after pruning: %v", hg)
		}
		if r, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); r != 1 {
			t.Errorf("spec.replicas not defaulted: %v", r)
		}
	}
	// kube-apiserver reports the pruned fields: as warnings under the
	// default fieldValidation (Warn), as a 400 under Strict.
	bogus := []string{`unknown field "spec.template.spec.containers[0].livenessProbe.httpGet.bogus"`,
		`unknown field "spec.template.spec.containers[0].sidecarMode"`}
	if w := warn.take(); !slices.Contains(w, bogus[0]) || !slices.Contains(w, bogus[1]) {
		t.Errorf("fieldValidation unset (Warn): warnings %q, kube-apiserver's: %q", w, bogus)
	}
	odd.SetName("odd-strict")
	// (in the order pruning met them, which follows Go's map order)
	wantStrict := `BigApp in version "v1" cannot be handled as a BigApp: strict decoding error: `
	if _, err := bigapps.Create(ctx, odd, metav1.CreateOptions{FieldValidation: "Strict"}); !apierrors.IsBadRequest(err) ||
		!strings.HasPrefix(err.Error(), wantStrict) || !strings.Contains(err.Error(), bogus[0]) || !strings.Contains(err.Error(), bogus[1]) {
		t.Errorf("fieldValidation Strict: got %v, kube-apiserver's: 400 %s%s", err, wantStrict, strings.Join(bogus, ", "))
	}
	// kubectl explain, every shipped version: the CRD's schema as the
	// OpenAPI documents publish it.
	versions := kubectls(t)
	names := make([]string, 0, len(versions))
	for v := range versions {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		kv := &kubectl{t: t, bin: versions[v], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
		start := time.Now()
		out, err := kv.run("", "explain", "bigapps.spec.template.spec.containers", "--recursive")
		t.Logf("kubectl %s explain --recursive: %v, %d lines", v, time.Since(start).Round(time.Millisecond), strings.Count(out, "\n"))
		if err != nil {
			t.Errorf("kubectl %s explain: %v\n%s", v, err, out)
			continue
		}
		for _, want := range []string{"KIND:", "BigApp", "livenessProbe", "httpGet", "containerPort", "volumeMounts", "mountPath"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl %s explain lacks %q:\n%s", v, want, out)
			}
		}
	}
	contains(t, k.ok("explain", "bigapps.spec.template.spec.containers.ports.protocol"), "Protocol for port")
	contains(t, k.ok("explain", "bigapps.spec.settings.setting042"), "Setting 042 tunes")
	// Columns as declared: kube-apiserver adds AGE only to a CRD that
	// declares none.
	if h := header(k.ok("get", "bigapps", "-n", ns)); h != "NAME IMAGE" {
		t.Errorf("printer columns: %q", h)
	}

	// Deleting the CRD deletes its custom resources: a CRD of the same
	// name created afterwards starts empty.
	start = time.Now()
	contains(t, k.ok("delete", "crd", crdName), `customresourcedefinition.apiextensions.k8s.io "`+crdName+`" deleted`)
	t.Logf("deleting the CRD and its custom resources took %v", time.Since(start).Round(time.Millisecond))
	if _, err := crds.Get(ctx, crdName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("CRD after kubectl delete: %v", err)
	}
	eventually(t, "custom resources no longer served", func() error {
		_, err := bigapps.List(ctx, metav1.ListOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("list after the CRD's deletion: %v", err)
		}
		return nil
	})
	k.okIn(string(crdYAML), "apply", "--server-side", "-f", "-")
	eventually(t, "recreated CRD served, empty", func() error {
		l, err := bigapps.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(l.Items) != 0 {
			t.Fatalf("%d custom resources outlived their CRD", len(l.Items))
		}
		return nil
	})
	k.ok("delete", "crd", crdName)
}

// crdGaps checks that a schema kube-apiserver refuses is refused: a
// list-map key (a port's protocol) neither required nor defaulted.
func crdGaps(t *testing.T, cfg *rest.Config, podSpec apiextensionsv1.JSONSchemaProps) {
	ctx := context.Background()
	bad := podSpec.DeepCopy()
	ports := bad.Properties["containers"].Items.Schema.Properties["ports"].Items.Schema
	protocol := ports.Properties["protocol"]
	protocol.Default = nil
	ports.Properties["protocol"] = protocol
	crd := largeCRD(t, *bad)
	crd.Name = "badapps.large.e2e.pgkube.io"
	crd.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "badapps", Singular: "badapp", Kind: "BadApp", ListKind: "BadAppList"}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		t.Fatal(err)
	}
	crds := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	_, err = crds.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	const want = `CustomResourceDefinition.apiextensions.k8s.io "badapps.large.e2e.pgkube.io" is invalid: ` +
		`spec.validation.openAPIV3Schema.properties[spec].properties[template].properties[spec].properties[containers].items.properties[ports].items.properties[protocol].default: ` +
		`Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property`
	if !apierrors.IsInvalid(err) || err.Error() != want {
		crds.Delete(ctx, crd.Name, metav1.DeleteOptions{}) //nolint:errcheck
		t.Errorf("a CRD whose list-map key is neither required nor defaulted: got %v, kube-apiserver's: 422 %s", err, want)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := adminHTTP(t).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %d", url, err, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func mustGet(t *testing.T, r dynamic.ResourceInterface, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := r.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}
