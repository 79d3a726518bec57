package schemas

import (
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const extensionGVK = "x-kubernetes-group-version-kind"

// Definition names of the apimachinery types the documents and schemas
// refer to by name.
const (
	nameObjectMeta    = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
	nameListMeta      = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
	nameStatus        = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
	nameWatchEvent    = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
	namePatch         = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
	nameDeleteOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
	nameListOptions   = "io.k8s.apimachinery.pkg.apis.meta.v1.ListOptions"
	nameCreateOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.CreateOptions"
	nameUpdateOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.UpdateOptions"
	namePatchOptions  = "io.k8s.apimachinery.pkg.apis.meta.v1.PatchOptions"
	nameResourceList  = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
)

// apiScheme registers the Go types whose definitions zz_generated.openapi.go
// holds. It mirrors the packages named by the go:generate line in doc.go; a
// served kind missing from either makes New fail. It is built here rather
// than taken from the registry so that schemas need not import registry.
func apiScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, admissionregistrationv1.AddToScheme, appsv1.AddToScheme, authenticationv1.AddToScheme,
		authorizationv1.AddToScheme, autoscalingv1.AddToScheme, autoscalingv2.AddToScheme, batchv1.AddToScheme,
		certificatesv1.AddToScheme, coordinationv1.AddToScheme, discoveryv1.AddToScheme, eventsv1.AddToScheme,
		flowcontrolv1.AddToScheme, networkingv1.AddToScheme, nodev1.AddToScheme, policyv1.AddToScheme,
		rbacv1.AddToScheme, resourcev1.AddToScheme, schedulingv1.AddToScheme, storagev1.AddToScheme,
		storagemigrationv1.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building the API scheme: %w", err)
		}
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s, nil
}

// kindsByDefinition inverts the scheme: for every definition name, the kinds
// registered with its Go type, in the order kube-apiserver lists them in
// x-kubernetes-group-version-kind (by group, then version, then kind).
// kubectl explain finds a kind's schema by that extension.
func kindsByDefinition(s *runtime.Scheme) (map[string][]schema.GroupVersionKind, error) {
	out := map[string][]schema.GroupVersionKind{}
	for gvk := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name, err := s.ToOpenAPIDefinitionName(gvk)
		if err != nil {
			return nil, fmt.Errorf("naming the definition of %s: %w", gvk, err)
		}
		out[name] = append(out[name], gvk)
	}
	for _, list := range out {
		sortGVKs(list)
	}
	return out, nil
}

func sortGVKs(list []schema.GroupVersionKind) {
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Kind < b.Kind
	})
}

// gvkExtension is the value of x-kubernetes-group-version-kind: a list on
// definitions, as kube-apiserver publishes it.
func gvkExtension(list []schema.GroupVersionKind) []any {
	out := make([]any, 0, len(list))
	for _, gvk := range list {
		out = append(out, gvkValue(gvk))
	}
	return out
}

// gvkValue is one kind in the form operations carry it. Its key order is
// fixed so that the documents' bytes, and so their ETags, are stable.
func gvkValue(gvk schema.GroupVersionKind) map[string]any {
	return map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

// customDefinitionName is the name kube-apiserver gives a custom resource's
// schema: the group reversed, then version and kind (com.example.v1.Widget).
func customDefinitionName(gvk schema.GroupVersionKind) string {
	parts := strings.Split(gvk.Group, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + gvk.Version + "." + gvk.Kind
}

// gvPath is a group version's path under /openapi/v3: "api/v1" for the core
// group, "apis/<group>/<version>" otherwise.
func gvPath(group, version string) string {
	if group == "" {
		return "api/" + version
	}
	return "apis/" + group + "/" + version
}
