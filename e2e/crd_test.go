package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

func widgetCRD(group string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [replicas]
            properties:
              size: {type: string, default: medium, enum: [small, medium, large]}
              replicas: {type: integer, minimum: 0}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              replicas: {type: integer}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`, group)
}

// TestCustomResourceLifecycle: a CRD is served with its printer columns,
// short names and categories; custom resources are pruned, defaulted,
// scaled through /scale and served at every version; deleting the CRD
// deletes them.
func TestCustomResourceLifecycle(t *testing.T) {
	srv := sharedServer(t)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	k.ok("create", "ns", "crd-life")
	contains(t, k.okIn(widgetCRD("life.example.com"), "apply", "-f", "-"), "customresourcedefinition.apiextensions.k8s.io/widgets.life.example.com created")
	eventually(t, "CRD established", func() error {
		out, _ := k.run("", "get", "crd", "widgets.life.example.com", "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}")
		if strings.TrimSpace(out) != "True" {
			return errString("not established: " + out)
		}
		return nil
	})
	contains(t, k.ok("api-resources", "--api-group=life.example.com"), "widgets", "wdg", "life.example.com/v1", "true", "Widget")

	w := "apiVersion: life.example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: crd-life}\nspec: {replicas: 2, junk: 1, port: http, extra: {anything: [1, 2]}}\n"
	// kubectl validates strictly by default: the unknown field is refused
	// as upstream refuses it; without validation it is pruned.
	contains(t, k.failsIn(w, "apply", "-f", "-"), `Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.junk"`)
	contains(t, k.okIn(w, "apply", "--validate=warn", "-f", "-"), `Warning: unknown field "spec.junk"`, "widget.life.example.com/w1 created")
	out := k.ok("get", "widgets", "-n", "crd-life")
	if h := header(out); h != "NAME SIZE REPLICAS AGE" {
		t.Fatalf("printer columns: %q\n%s", h, out)
	}
	contains(t, out, "w1", "medium", "2")
	y := k.ok("get", "wdg", "w1", "-n", "crd-life", "-o", "yaml")
	contains(t, y, "size: medium", "port: http", "anything:")
	if out := k.ok("get", "wdg", "w1", "-n", "crd-life", "-o", "jsonpath={.spec.junk}"); strings.TrimSpace(out) != "" {
		t.Errorf("unknown field not pruned: spec.junk = %q", out)
	}
	contains(t, k.ok("get", "all", "-n", "crd-life"), "widget.life.example.com/w1")

	// Schema validation: wrong type, enum, minimum, required.
	for _, bad := range []string{
		"spec: {replicas: two}",
		"spec: {replicas: 1, size: huge}",
		"spec: {replicas: -1}",
		"spec: {size: small}",
	} {
		obj := "apiVersion: life.example.com/v1\nkind: Widget\nmetadata: {name: bad, namespace: crd-life}\n" + bad + "\n"
		out, err := k.run(obj, "apply", "-f", "-")
		if err == nil || !strings.Contains(out, "is invalid") {
			t.Errorf("%s: accepted or wrong error: %v\n%s", bad, err, out)
		}
	}

	// Scale through the scale subresource; status is its own subresource.
	contains(t, k.ok("scale", "widget", "w1", "-n", "crd-life", "--replicas=4"), "widget.life.example.com/w1 scaled")
	contains(t, k.ok("get", "widget", "w1", "-n", "crd-life", "-o", "jsonpath={.spec.replicas}"), "4")
	k.ok("patch", "widget", "w1", "-n", "crd-life", "--type=merge", "-p", `{"status":{"replicas":9}}`)
	if out := k.ok("get", "widget", "w1", "-n", "crd-life", "-o", "jsonpath={.status.replicas}"); strings.TrimSpace(out) != "" {
		t.Errorf("status changed through the main resource: %q", out)
	}
	k.ok("patch", "widget", "w1", "-n", "crd-life", "--subresource=status", "--type=merge", "-p", `{"status":{"replicas":3}}`)
	contains(t, k.ok("get", "widget", "w1", "-n", "crd-life", "-o", "jsonpath={.status.replicas}"), "3")

	// Served at every version, stored once.
	contains(t, k.ok("get", "widgets.v1beta1.life.example.com", "w1", "-n", "crd-life", "-o", "jsonpath={.apiVersion}"), "life.example.com/v1beta1")

	// Server-side apply works on custom resources too.
	k.okIn("apiVersion: life.example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: crd-life}\nspec: {replicas: 1}\n", "apply", "--server-side", "-f", "-")

	// Deleting the CRD deletes its custom resources, then the CRD.
	k.ok("delete", "crd", "widgets.life.example.com")
	eventually(t, "CRD gone", func() error {
		out, err := k.run("", "get", "crd", "widgets.life.example.com")
		if err == nil || !strings.Contains(out, "NotFound") {
			return errString("still there: " + out)
		}
		return nil
	})
	contains(t, k.okIn(widgetCRD("life.example.com"), "apply", "-f", "-"), "created")
	eventually(t, "recreated CRD served, empty", func() error {
		out, err := k.run("", "get", "widgets", "-n", "crd-life", "-o", "name")
		if err != nil || strings.TrimSpace(out) != "" {
			return errString(fmt.Sprintf("%v: %s", err, out))
		}
		return nil
	})
	k.ok("delete", "crd", "widgets.life.example.com")
}

// TestCRDServedByEveryProcess: a CRD created through one API server is
// served by another sharing the database within a second or so.
func TestCRDServedByEveryProcess(t *testing.T) {
	urls := startAPIServers(t, pgtest.NewDatabase(t), 2)
	ctx := context.Background()
	dyn := []dynamic.Interface{dynamic.NewForConfigOrDie(adminConfig(t, urls[0])), dynamic.NewForConfigOrDie(adminConfig(t, urls[1]))}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{}
	if err := yamlToUnstructured(widgetCRD("multi.example.com"), crd); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := dyn[0].Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	disc := discovery.NewDiscoveryClientForConfigOrDie(adminConfig(t, urls[1]))
	widgets := schema.GroupVersionResource{Group: "multi.example.com", Version: "v1", Resource: "widgets"}
	eventually(t, "served by the other process", func() error {
		if _, err := disc.ServerResourcesForGroupVersion("multi.example.com/v1"); err != nil {
			return err
		}
		w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "multi.example.com/v1", "kind": "Widget",
			"metadata": map[string]any{"name": "w"}, "spec": map[string]any{"replicas": int64(1)}}}
		_, err := dyn[1].Resource(widgets).Namespace("default").Create(ctx, w, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the CRD took %v to be served by the second process", took)
	}
	got, err := dyn[0].Resource(widgets).Namespace("default").Get(ctx, "w", metav1.GetOptions{})
	if err != nil || got.Object["spec"].(map[string]any)["size"] != "medium" {
		t.Errorf("read through the first process: %v %v", err, got)
	}
}
