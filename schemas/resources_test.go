package schemas

import "testing"

// servedResources mirrors the registry's built-in table (registry_test.go
// checks the registry itself), so these tests do not depend on registry.
func servedResources() []Resource {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	ns := func(group, resource, kind string) Resource {
		return Resource{Group: group, Version: "v1", Resource: resource, Kind: kind, Namespaced: true, Verbs: all}
	}
	cluster := func(group, resource, kind string) Resource {
		return Resource{Group: group, Version: "v1", Resource: resource, Kind: kind, Verbs: all}
	}
	review := func(group, resource, kind string, namespaced bool) Resource {
		return Resource{Group: group, Version: "v1", Resource: resource, Kind: kind, Namespaced: namespaced, CreateOnly: true, Verbs: []string{"create"}}
	}
	with := func(r Resource, f func(*Resource)) Resource { f(&r); return r }
	status := func(r *Resource) { r.Status = true }
	scale := func(r *Resource) { r.Status, r.Scale = true, true }
	return []Resource{
		with(ns("", "pods", "Pod"), func(r *Resource) { r.Status = true; r.Subresources = []string{"binding"} }),
		with(ns("", "services", "Service"), status),
		ns("", "endpoints", "Endpoints"),
		ns("", "configmaps", "ConfigMap"),
		ns("", "secrets", "Secret"),
		with(ns("", "serviceaccounts", "ServiceAccount"), func(r *Resource) { r.Subresources = []string{"token"} }),
		ns("", "events", "Event"),
		with(cluster("", "nodes", "Node"), status),
		with(cluster("", "namespaces", "Namespace"), func(r *Resource) { r.Status = true; r.Subresources = []string{"finalize"} }),
		with(ns("", "replicationcontrollers", "ReplicationController"), scale),
		with(cluster("", "persistentvolumes", "PersistentVolume"), status),
		with(ns("", "persistentvolumeclaims", "PersistentVolumeClaim"), status),
		ns("", "limitranges", "LimitRange"),
		with(ns("", "resourcequotas", "ResourceQuota"), status),
		ns("", "podtemplates", "PodTemplate"),
		with(ns("apps", "deployments", "Deployment"), scale),
		with(ns("apps", "replicasets", "ReplicaSet"), scale),
		with(ns("apps", "statefulsets", "StatefulSet"), scale),
		with(ns("apps", "daemonsets", "DaemonSet"), status),
		ns("apps", "controllerrevisions", "ControllerRevision"),
		with(ns("batch", "jobs", "Job"), status),
		with(ns("batch", "cronjobs", "CronJob"), status),
		with(Resource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", Namespaced: true}, status),
		ns("coordination.k8s.io", "leases", "Lease"),
		ns("discovery.k8s.io", "endpointslices", "EndpointSlice"),
		ns("events.k8s.io", "events", "Event"),
		with(ns("networking.k8s.io", "ingresses", "Ingress"), status),
		cluster("networking.k8s.io", "ingressclasses", "IngressClass"),
		ns("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
		with(ns("policy", "poddisruptionbudgets", "PodDisruptionBudget"), status),
		review("authentication.k8s.io", "tokenreviews", "TokenReview", false),
		review("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", false),
		review("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", true),
		review("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
		review("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
		review("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", false),
		ns("rbac.authorization.k8s.io", "roles", "Role"),
		ns("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
		cluster("rbac.authorization.k8s.io", "clusterroles", "ClusterRole"),
		cluster("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding"),
		cluster("storage.k8s.io", "storageclasses", "StorageClass"),
		cluster("scheduling.k8s.io", "priorityclasses", "PriorityClass"),
		cluster("node.k8s.io", "runtimeclasses", "RuntimeClass"),
		with(cluster("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition"), status),
	}
}

func newTestSet(t testing.TB) *Set {
	t.Helper()
	s, err := New(servedResources(), WithVersion("v1.33.0-test"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
