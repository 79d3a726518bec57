package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

// defaulters are the built-in kinds' defaulting functions, by Kind: what
// kube-apiserver 1.33, with its default feature gates, fills in when a field
// is left unset. They fill in only what is unset, except for a few
// normalisations noted where they happen. Upstream also converts every
// write to its internal version and back; what that round trip changes
// (deprecated alias fields kept in step, legacy annotations dropped) is done
// here too, so that what is stored reads back as kube-apiserver shows it.
//
// Kinds absent from the map have nothing upstream defaults that a client
// could see: ServiceAccount, Event, ControllerRevision, Lease, Ingress, Role,
// ClusterRole, RuntimeClass, the review kinds, and ConfigMap, whose data
// upstream sets to an empty map that JSON never shows (here it would only
// make an unchanged immutable ConfigMap compare as changed).
func defaulters() map[string]func(obj runtime.Object) {
	return map[string]func(obj runtime.Object){
		// core/v1
		"Pod":                   forType(defaultPod),
		"PodTemplate":           forType(defaultPodTemplate),
		"ReplicationController": forType(defaultReplicationController),
		"Service":               forType(defaultService),
		"Endpoints":             forType(defaultEndpoints),
		"Secret":                forType(defaultSecret),
		"Namespace":             forType(defaultNamespace),
		"Node":                  forType(defaultNode),
		"PersistentVolume":      forType(defaultPersistentVolume),
		"PersistentVolumeClaim": forType(defaultPersistentVolumeClaim),
		"LimitRange":            forType(defaultLimitRange),
		"ResourceQuota":         forType(defaultResourceQuota),

		// apps/v1, batch/v1
		"Deployment":  forType(defaultDeployment),
		"ReplicaSet":  forType(defaultReplicaSet),
		"StatefulSet": forType(defaultStatefulSet),
		"DaemonSet":   forType(defaultDaemonSet),
		"Job":         forType(defaultJob),
		"CronJob":     forType(defaultCronJob),

		"HorizontalPodAutoscaler":  forType(defaultHPA),
		"NetworkPolicy":            forType(defaultNetworkPolicy),
		"IngressClass":             forType(defaultIngressClass),
		"PodDisruptionBudget":      forType(defaultPodDisruptionBudget),
		"RoleBinding":              forType(defaultRoleBinding),
		"ClusterRoleBinding":       forType(defaultClusterRoleBinding),
		"StorageClass":             forType(defaultStorageClass),
		"PriorityClass":            forType(defaultPriorityClass),
		"EndpointSlice":            forType(defaultEndpointSlice),
		"CustomResourceDefinition": forType(defaultCRD),

		"MutatingWebhookConfiguration":     forType(defaultMutatingWebhookConfiguration),
		"ValidatingWebhookConfiguration":   forType(defaultValidatingWebhookConfiguration),
		"ValidatingAdmissionPolicy":        forType(defaultValidatingAdmissionPolicy),
		"ValidatingAdmissionPolicyBinding": forType(defaultValidatingAdmissionPolicyBinding),
	}
}

// forType adapts a defaulter of one Go type; any other object (a kind served
// under the same name in another group) is left alone rather than panicking
// in the write path.
func forType[T runtime.Object](f func(T)) func(runtime.Object) {
	return func(obj runtime.Object) {
		if t, ok := obj.(T); ok {
			f(t)
		}
	}
}

// roundResources rounds every quantity up to a whole milli-unit: the API
// has always stored resource amounts at that precision, rounding rather
// than rejecting finer values.
func roundResources(list corev1.ResourceList) {
	for name, q := range list {
		q.RoundUp(resource.Milli)
		list[name] = q
	}
}

func roundRequirements(r *corev1.ResourceRequirements) {
	roundResources(r.Limits)
	roundResources(r.Requests)
}

func roundVolumeRequirements(r *corev1.VolumeResourceRequirements) {
	roundResources(r.Limits)
	roundResources(r.Requests)
}

// setIfNil points p at v when p is unset.
func setIfNil[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

// setIfEmpty sets s to v when it is the zero string.
func setIfEmpty[S ~string](s *S, v S) {
	if *s == "" {
		*s = v
	}
}
