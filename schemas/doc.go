// Package schemas holds the OpenAPI description of every served kind and
// what is derived from it: the /openapi/v2 and /openapi/v3 documents, with
// their ETags, and JSON Schema validators for writes.
//
// The definitions of built-in kinds are generated from the k8s.io/api Go
// types (zz_generated.openapi.go, by `go generate ./schemas`), so their
// descriptions are the ones kube-apiserver publishes and `kubectl explain`
// shows. CRD schemas are added at run time with AddCustom.
//
// schemas does not import registry: registry may come to want validators
// from here, and the two would then form a cycle. Callers convert their
// resources to Resource instead.
package schemas

// The packages listed are every GA API group of k8s.io/api (so that a kind
// the registry comes to serve already has its schema), apiextensions, the
// apimachinery packages their types use, and scheduling/v1alpha3, whose
// types batch/v1 Jobs refer to. apiScheme in names.go registers the same
// API groups. Violations of upstream's API naming rules are upstream's, so
// the linter's report is discarded.
//go:generate go run k8s.io/kube-openapi/cmd/openapi-gen --output-dir . --output-pkg github.com/pgkube/pgkube/schemas --output-file zz_generated.openapi.go --go-header-file /dev/null --report-filename /dev/null k8s.io/api/core/v1 k8s.io/api/admissionregistration/v1 k8s.io/api/apps/v1 k8s.io/api/authentication/v1 k8s.io/api/authorization/v1 k8s.io/api/autoscaling/v1 k8s.io/api/autoscaling/v2 k8s.io/api/batch/v1 k8s.io/api/certificates/v1 k8s.io/api/coordination/v1 k8s.io/api/discovery/v1 k8s.io/api/events/v1 k8s.io/api/flowcontrol/v1 k8s.io/api/networking/v1 k8s.io/api/node/v1 k8s.io/api/policy/v1 k8s.io/api/rbac/v1 k8s.io/api/resource/v1 k8s.io/api/scheduling/v1 k8s.io/api/scheduling/v1alpha3 k8s.io/api/storage/v1 k8s.io/api/storagemigration/v1 k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1 k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/version
