package registry

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Upstream validates its internal types, and a message that prints a whole
// struct shows that type's JSON, which has Go's field names (the internal
// types carry no JSON tags). These mirror the few such structs so the
// messages read the same here.

type internalServicePort struct {
	Name        string
	Protocol    corev1.Protocol
	AppProtocol *string
	Port        int32
	TargetPort  intstr.IntOrString
	NodePort    int32
}

type internalRollingUpdate struct {
	MaxUnavailable intstr.IntOrString
	MaxSurge       intstr.IntOrString
}

type internalStrategy struct {
	Type          string
	RollingUpdate *internalRollingUpdate
}

func derefIntOrString(v *intstr.IntOrString) intstr.IntOrString {
	if v == nil {
		return intstr.IntOrString{}
	}
	return *v
}

func renderDeploymentStrategy(s *appsv1.DeploymentStrategy) internalStrategy {
	r := internalStrategy{Type: string(s.Type)}
	if ru := s.RollingUpdate; ru != nil {
		r.RollingUpdate = &internalRollingUpdate{MaxUnavailable: derefIntOrString(ru.MaxUnavailable), MaxSurge: derefIntOrString(ru.MaxSurge)}
	}
	return r
}

func renderDaemonSetStrategy(s *appsv1.DaemonSetUpdateStrategy) internalStrategy {
	r := internalStrategy{Type: string(s.Type)}
	if ru := s.RollingUpdate; ru != nil {
		r.RollingUpdate = &internalRollingUpdate{MaxUnavailable: derefIntOrString(ru.MaxUnavailable), MaxSurge: derefIntOrString(ru.MaxSurge)}
	}
	return r
}

type internalStatefulSetRollingUpdate struct {
	Partition      int32
	MaxUnavailable *intstr.IntOrString
}

func renderStatefulSetRollingUpdate(ru *appsv1.RollingUpdateStatefulSetStrategy) *internalStatefulSetRollingUpdate {
	if ru == nil {
		return nil
	}
	r := &internalStatefulSetRollingUpdate{MaxUnavailable: ru.MaxUnavailable}
	if ru.Partition != nil {
		r.Partition = *ru.Partition
	}
	return r
}

func renderStatefulSetStrategy(s *appsv1.StatefulSetUpdateStrategy) any {
	return struct {
		Type          string
		RollingUpdate *internalStatefulSetRollingUpdate
	}{string(s.Type), renderStatefulSetRollingUpdate(s.RollingUpdate)}
}

func renderPDBSpec(s *policyv1.PodDisruptionBudgetSpec) any {
	return struct {
		MinAvailable               *intstr.IntOrString
		Selector                   *metav1.LabelSelector
		MaxUnavailable             *intstr.IntOrString
		UnhealthyPodEvictionPolicy *policyv1.UnhealthyPodEvictionPolicyType
	}{s.MinAvailable, s.Selector, s.MaxUnavailable, s.UnhealthyPodEvictionPolicy}
}
