package registry

import (
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// hpaRoundTripAnnotations carry v2 fields through autoscaling/v1 objects.
// A v2 object has the fields themselves, so upstream drops the annotations
// rather than let a stale copy contradict them.
var hpaRoundTripAnnotations = []string{
	"autoscaling.alpha.kubernetes.io/metrics",
	"autoscaling.alpha.kubernetes.io/current-metrics",
	"autoscaling.alpha.kubernetes.io/conditions",
	"autoscaling.alpha.kubernetes.io/behavior",
	"autoscaling.alpha.kubernetes.io/scale-down-tolerance",
	"autoscaling.alpha.kubernetes.io/scale-up-tolerance",
}

func defaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	h.Annotations = withoutAnnotations(h.Annotations, hpaRoundTripAnnotations)
	setIfNil(&h.Spec.MinReplicas, 1)
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)},
			},
		}}
	}
	// A behavior section, once given, is completed with the controller's
	// built-in rules, so the object shows the rules in force. Without one
	// the controller's flags still decide, and nothing is filled in.
	if b := h.Spec.Behavior; b != nil {
		setIfNil(&b.ScaleUp, autoscalingv2.HPAScalingRules{})
		setIfNil(&b.ScaleUp.StabilizationWindowSeconds, 0)
		setIfNil(&b.ScaleUp.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
		if b.ScaleUp.Policies == nil {
			b.ScaleUp.Policies = []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			}
		}
		// The scale-down window stays unset: the controller's
		// --horizontal-pod-autoscaler-downscale-stabilization flag fills it.
		setIfNil(&b.ScaleDown, autoscalingv2.HPAScalingRules{})
		setIfNil(&b.ScaleDown.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
		if b.ScaleDown.Policies == nil {
			b.ScaleDown.Policies = []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			}
		}
	}
}

func defaultNetworkPolicy(np *networkingv1.NetworkPolicy) {
	s := &np.Spec
	// A policy that does not say what it governs governs ingress, and
	// egress as well when it has egress rules.
	if len(s.PolicyTypes) == 0 {
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(s.Egress) != 0 {
			s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	for i := range s.Ingress {
		defaultNetworkPolicyPorts(s.Ingress[i].Ports)
	}
	for i := range s.Egress {
		defaultNetworkPolicyPorts(s.Egress[i].Ports)
	}
}

func defaultNetworkPolicyPorts(ports []networkingv1.NetworkPolicyPort) {
	for i := range ports {
		setIfNil(&ports[i].Protocol, corev1.ProtocolTCP)
	}
}

func defaultIngressClass(ic *networkingv1.IngressClass) {
	if p := ic.Spec.Parameters; p != nil {
		setIfNil(&p.Scope, networkingv1.IngressClassParametersReferenceScopeCluster)
	}
}

// pdbV1beta1Label marks selectors translated from policy/v1beta1, where an
// empty selector matched nothing rather than everything.
const pdbV1beta1Label = "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match"

// defaultPodDisruptionBudget keeps the marker out of policy/v1 selectors, so
// it can never combine with requirements a user wrote; the bare
// "match nothing" form is what v1beta1's empty selector became and stays.
func defaultPodDisruptionBudget(pdb *policyv1.PodDisruptionBudget) {
	sel := pdb.Spec.Selector
	if sel == nil {
		return
	}
	exprs := sel.MatchExpressions
	if len(sel.MatchLabels) == 0 && len(exprs) == 1 && exprs[0].Key == pdbV1beta1Label &&
		exprs[0].Operator == metav1.LabelSelectorOpExists && len(exprs[0].Values) == 0 {
		return
	}
	var kept []metav1.LabelSelectorRequirement
	for _, e := range exprs {
		if e.Key != pdbV1beta1Label {
			kept = append(kept, e)
		}
	}
	if len(kept) != len(exprs) {
		sel.MatchExpressions = kept
	}
}

func defaultRoleBinding(rb *rbacv1.RoleBinding) {
	setIfEmpty(&rb.RoleRef.APIGroup, rbacv1.GroupName)
	defaultSubjects(rb.Subjects)
}

func defaultClusterRoleBinding(crb *rbacv1.ClusterRoleBinding) {
	setIfEmpty(&crb.RoleRef.APIGroup, rbacv1.GroupName)
	defaultSubjects(crb.Subjects)
}

// defaultSubjects: users and groups are RBAC's own kinds; service accounts
// belong to the core group, whose name is empty.
func defaultSubjects(subjects []rbacv1.Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}

func defaultStorageClass(sc *storagev1.StorageClass) {
	// Delete: provisioned volumes exist for their claims and go with them.
	setIfNil(&sc.ReclaimPolicy, corev1.PersistentVolumeReclaimDelete)
	setIfNil(&sc.VolumeBindingMode, storagev1.VolumeBindingImmediate)
}

func defaultPriorityClass(pc *schedulingv1.PriorityClass) {
	setIfNil(&pc.PreemptionPolicy, corev1.PreemptLowerPriority)
}

func defaultEndpointSlice(es *discoveryv1.EndpointSlice) {
	for i := range es.Ports {
		setIfNil(&es.Ports[i].Name, "")
		setIfNil(&es.Ports[i].Protocol, corev1.ProtocolTCP)
	}
}

func defaultCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	names := &crd.Spec.Names
	setIfEmpty(&names.Singular, strings.ToLower(names.Kind))
	if names.Kind != "" {
		setIfEmpty(&names.ListKind, names.Kind+"List")
	}
	setIfNil(&crd.Spec.Conversion, apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter})
	if w := crd.Spec.Conversion.Webhook; w != nil && w.ClientConfig != nil && w.ClientConfig.Service != nil {
		setIfNil(&w.ClientConfig.Service.Port, 443)
	}
	// A new definition has stored nothing yet but will store at its storage
	// version; recording that from the start is what lets a later change of
	// storage version know which versions objects may still be in.
	if len(crd.Status.StoredVersions) == 0 {
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				crd.Status.StoredVersions = []string{v.Name}
				break
			}
		}
	}
}
