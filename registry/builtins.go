package registry

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
)

var (
	all = []string{"all"}

	dnsSubdomain = apivalidation.NameIsDNSSubdomain
	dnsLabel     = apivalidation.NameIsDNSLabel
	dns1035Label = apivalidation.NameIsDNS1035Label
	pathSegment  = path.ValidatePathSegmentName
)

// builtins is the table of Kubernetes' GA resources pgkube serves. Each
// entry is data; the behaviour functions it names live in kinds.go.
func builtins() []*Resource {
	return []*Resource{
		// core/v1
		{Version: "v1", Resource: "pods", Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Categories: all,
			Status: true, Fields: podFields, Prepare: preparePod, GracefulDelete: podGracefulDelete,
			Subresources: []string{"binding", "eviction", "log", "exec", "attach", "portforward"}, Generation: true},
		{Version: "v1", Resource: "services", Kind: "Service", Namespaced: true, ShortNames: []string{"svc"}, Categories: all,
			Status: true, NameRule: dns1035Label, Immutable: []string{"spec.ipFamilyPolicy"}},
		{Version: "v1", Resource: "endpoints", Kind: "Endpoints", Namespaced: true, ShortNames: []string{"ep"}},
		{Version: "v1", Resource: "configmaps", Kind: "ConfigMap", Namespaced: true, ShortNames: []string{"cm"},
			Validate: validateImmutableData},
		{Version: "v1", Resource: "secrets", Kind: "Secret", Namespaced: true, Fields: secretFields, Prepare: prepareSecret,
			Validate: validateImmutableData, Immutable: []string{"type"}},
		{Version: "v1", Resource: "serviceaccounts", Kind: "ServiceAccount", Namespaced: true, ShortNames: []string{"sa"},
			Subresources: []string{"token"}},
		{Version: "v1", Resource: "events", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}, Fields: eventFields,
			NameRule: lenientName, GC: NoGarbageCollection},
		{Version: "v1", Resource: "nodes", Kind: "Node", ShortNames: []string{"no"}, Status: true, KeepStatusOnCreate: true,
			Fields: nodeFields, Subresources: []string{"proxy"}},
		{Version: "v1", Resource: "namespaces", Kind: "Namespace", ShortNames: []string{"ns"}, Status: true,
			NameRule: dnsLabel, Fields: namespaceFields, Prepare: prepareNamespace, PendingFinalizers: namespaceFinalizers,
			Deleting: namespaceTerminating, Subresources: []string{"finalize"}},
		{Version: "v1", Resource: "replicationcontrollers", Kind: "ReplicationController", Namespaced: true,
			ShortNames: []string{"rc"}, Categories: all, Status: true, Generation: true,
			Scale: &ScaleInfo{SelectorIsMap: true}, Fields: replicasFields, GC: OrphanDependents},
		{Version: "v1", Resource: "persistentvolumes", Kind: "PersistentVolume", ShortNames: []string{"pv"}, Status: true,
			Prepare: preparePV},
		{Version: "v1", Resource: "persistentvolumeclaims", Kind: "PersistentVolumeClaim", Namespaced: true,
			ShortNames: []string{"pvc"}, Status: true, Prepare: preparePVC},
		{Version: "v1", Resource: "limitranges", Kind: "LimitRange", Namespaced: true, ShortNames: []string{"limits"}},
		{Version: "v1", Resource: "resourcequotas", Kind: "ResourceQuota", Namespaced: true, ShortNames: []string{"quota"},
			Status: true},
		{Version: "v1", Resource: "podtemplates", Kind: "PodTemplate", Namespaced: true},

		// apps/v1
		{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", Namespaced: true,
			ShortNames: []string{"deploy"}, Categories: all, Status: true, Generation: true, Scale: &ScaleInfo{},
			Immutable: []string{"spec.selector"}, Prepare: prepareDeployment},
		{Group: "apps", Version: "v1", Resource: "replicasets", Kind: "ReplicaSet", Namespaced: true,
			ShortNames: []string{"rs"}, Categories: all, Status: true, Generation: true, Scale: &ScaleInfo{},
			Immutable: []string{"spec.selector"}, Fields: replicasFields},
		{Group: "apps", Version: "v1", Resource: "statefulsets", Kind: "StatefulSet", Namespaced: true,
			ShortNames: []string{"sts"}, Categories: all, Status: true, Generation: true, Scale: &ScaleInfo{},
			Immutable: []string{"spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy"}},
		{Group: "apps", Version: "v1", Resource: "daemonsets", Kind: "DaemonSet", Namespaced: true,
			ShortNames: []string{"ds"}, Categories: all, Status: true, Generation: true,
			Immutable: []string{"spec.selector"}},
		{Group: "apps", Version: "v1", Resource: "controllerrevisions", Kind: "ControllerRevision", Namespaced: true,
			Immutable: []string{"data"}},

		// batch/v1
		{Group: "batch", Version: "v1", Resource: "jobs", Kind: "Job", Namespaced: true, Categories: all,
			Status: true, Generation: true, Fields: jobFields, GC: OrphanDependents, OrphanWarning: jobOrphanWarning, Prepare: prepareJob,
			Immutable: []string{"spec.selector", "spec.completionMode", "spec.podFailurePolicy"}},
		{Group: "batch", Version: "v1", Resource: "cronjobs", Kind: "CronJob", Namespaced: true, ShortNames: []string{"cj"},
			Categories: all, Status: true, Generation: true},

		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler",
			Namespaced: true, ShortNames: []string{"hpa"}, Categories: all, Status: true},
		{Group: "coordination.k8s.io", Version: "v1", Resource: "leases", Kind: "Lease", Namespaced: true},
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices", Kind: "EndpointSlice", Namespaced: true},
		{Group: "events.k8s.io", Version: "v1", Resource: "events", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"},
			StorageResource: "/events", ToStorage: eventToCore, FromStorage: eventFromCore, Fields: eventFields,
			NameRule: lenientName, GC: NoGarbageCollection},
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses", Kind: "Ingress", Namespaced: true,
			ShortNames: []string{"ing"}, Status: true, Generation: true},
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingressclasses", Kind: "IngressClass"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies", Kind: "NetworkPolicy", Namespaced: true,
			ShortNames: []string{"netpol"}, Generation: true},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets", Kind: "PodDisruptionBudget", Namespaced: true,
			ShortNames: []string{"pdb"}, Status: true, Generation: true},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations",
			Kind: "MutatingWebhookConfiguration", Categories: []string{"api-extensions"}, Generation: true},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations",
			Kind: "ValidatingWebhookConfiguration", Categories: []string{"api-extensions"}, Generation: true},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies",
			Kind: "ValidatingAdmissionPolicy", Categories: []string{"api-extensions"}, Status: true, Generation: true},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings",
			Kind: "ValidatingAdmissionPolicyBinding", Categories: []string{"api-extensions"}, Generation: true},
		{Group: "authentication.k8s.io", Version: "v1", Resource: "tokenreviews", Kind: "TokenReview", CreateOnly: true},
		{Group: "authentication.k8s.io", Version: "v1", Resource: "selfsubjectreviews", Kind: "SelfSubjectReview", CreateOnly: true},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "localsubjectaccessreviews", Kind: "LocalSubjectAccessReview",
			Namespaced: true, CreateOnly: true},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews", Kind: "SelfSubjectAccessReview", CreateOnly: true},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectrulesreviews", Kind: "SelfSubjectRulesReview", CreateOnly: true},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews", Kind: "SubjectAccessReview", CreateOnly: true},
		// Served by the API server itself from the node agents'
		// measurements, where kube-apiserver aggregates metrics-server.
		{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "nodes", Kind: "NodeMetrics", Computed: true},
		{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "pods", Kind: "PodMetrics", Namespaced: true, Computed: true},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles", Kind: "Role", Namespaced: true, NameRule: pathSegment},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings", Kind: "RoleBinding", Namespaced: true,
			NameRule: pathSegment, Immutable: []string{"roleRef"}},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles", Kind: "ClusterRole", NameRule: pathSegment},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings", Kind: "ClusterRoleBinding",
			NameRule: pathSegment, Immutable: []string{"roleRef"}},
		{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses", Kind: "StorageClass", ShortNames: []string{"sc"},
			Immutable: []string{"provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"}},
		{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses", Kind: "PriorityClass", ShortNames: []string{"pc"},
			Immutable: []string{"value", "preemptionPolicy"}},
		{Group: "node.k8s.io", Version: "v1", Resource: "runtimeclasses", Kind: "RuntimeClass", Immutable: []string{"handler"}},
		{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions", Kind: "CustomResourceDefinition",
			ShortNames: []string{"crd", "crds"}, Categories: []string{"api-extensions"}, Status: true, Generation: true,
			PendingFinalizers: crdHeld, Deleting: crdDeleting},
	}
}

// lenientName accepts what upstream accepts for events: any name that is a
// valid path segment (controllers name events "<object>.<hex>").
func lenientName(name string, prefix bool) []string { return pathSegment(name, prefix) }

func podFields(obj runtime.Object) map[string]string {
	p := obj.(*corev1.Pod)
	return map[string]string{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

func secretFields(obj runtime.Object) map[string]string {
	return map[string]string{"type": string(obj.(*corev1.Secret).Type)}
}

func nodeFields(obj runtime.Object) map[string]string {
	return map[string]string{"spec.unschedulable": strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)}
}

func namespaceFields(obj runtime.Object) map[string]string {
	return map[string]string{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
}

// eventFields works on both faces of events: the stored core/v1 form is
// what selectors are evaluated on.
func eventFields(obj runtime.Object) map[string]string {
	var e *corev1.Event
	switch o := obj.(type) {
	case *corev1.Event:
		e = o
	case *eventsv1.Event:
		c, _ := eventToCore(o)
		e = c.(*corev1.Event)
	default:
		return nil
	}
	return map[string]string{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

// jobOrphanWarning is upstream's warning for a Job deleted with no policy.
const jobOrphanWarning = "child pods are preserved by default when jobs are deleted; " +
	"set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"
