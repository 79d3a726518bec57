package registry

import (
	"fmt"
	"net"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Ingress.

var (
	ingressPathTypes    = []string{string(networkingv1.PathTypeExact), string(networkingv1.PathTypeImplementationSpecific), string(networkingv1.PathTypePrefix)}
	invalidPathSequence = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffix   = []string{"/..", "/."}
)

func validateIngress(obj, old runtime.Object) field.ErrorList {
	ing := obj.(*networkingv1.Ingress)
	var oldIng *networkingv1.Ingress
	if old != nil {
		oldIng = old.(*networkingv1.Ingress)
		if specUnchanged(&ing.Spec, &oldIng.Spec, old) {
			return nil
		}
	}
	s := &ing.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	if len(s.Rules) == 0 && s.DefaultBackend == nil {
		errs = append(errs, field.Invalid(p, s.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if s.DefaultBackend != nil {
		errs = append(errs, ingressBackend(s.DefaultBackend, p.Child("defaultBackend"))...)
	}
	// Invalid stored values are tolerated on update, as upstream does.
	wildcardLax, secretLax := false, false
	if oldIng != nil {
		for _, r := range oldIng.Spec.Rules {
			if strings.Contains(r.Host, "*") && len(ingressRuleValue(&r.IngressRuleValue, field.NewPath("x"))) > 0 {
				wildcardLax = true
			}
		}
		for _, t := range oldIng.Spec.TLS {
			if t.SecretName != "" && len(apivalidation.NameIsDNSSubdomain(t.SecretName, false)) > 0 {
				secretLax = true
			}
		}
	}
	rp := p.Child("rules")
	for i := range s.Rules {
		r := &s.Rules[i]
		hp := rp.Index(i).Child("host")
		wildcard := false
		if r.Host != "" {
			if net.ParseIP(r.Host) != nil {
				errs = append(errs, field.Invalid(hp, r.Host, "must be a DNS name, not an IP address"))
			}
			if strings.Contains(r.Host, "*") {
				wildcard = true
				errs = append(errs, nameMessages(validation.IsWildcardDNS1123Subdomain(r.Host), r.Host, hp)...)
			} else {
				errs = append(errs, dns1123Subdomain(r.Host, hp)...)
			}
		}
		if !wildcard || !wildcardLax {
			errs = append(errs, ingressRuleValue(&r.IngressRuleValue, rp.Index(i))...)
		}
	}
	tp := p.Child("tls")
	for i, t := range s.TLS {
		for j, h := range t.Hosts {
			hp := tp.Index(i).Child("hosts").Index(j)
			if strings.Contains(h, "*") {
				errs = append(errs, nameMessages(validation.IsWildcardDNS1123Subdomain(h), h, hp)...)
			} else {
				errs = append(errs, dns1123Subdomain(h, hp)...)
			}
		}
		if !secretLax && t.SecretName != "" {
			errs = append(errs, nameMessages(apivalidation.NameIsDNSSubdomain(t.SecretName, false), t.SecretName, tp.Index(i).Child("secretName"))...)
		}
	}
	if s.IngressClassName != nil {
		errs = append(errs, nameMessages(apivalidation.NameIsDNSSubdomain(*s.IngressClassName, false), *s.IngressClassName, p.Child("ingressClassName"))...)
		if v, ok := ing.Annotations["kubernetes.io/ingress.class"]; ok && old == nil && v != *s.IngressClassName {
			errs = append(errs, field.Invalid(field.NewPath("annotations").Child("kubernetes.io/ingress.class"), v, "must match `ingressClassName` when both are specified"))
		}
	}
	return errs
}

func ingressRuleValue(v *networkingv1.IngressRuleValue, p *field.Path) field.ErrorList {
	if v.HTTP == nil {
		return nil
	}
	hp := p.Child("http")
	var errs field.ErrorList
	if len(v.HTTP.Paths) == 0 {
		errs = append(errs, field.Required(hp.Child("paths"), ""))
	}
	for i := range v.HTTP.Paths {
		errs = append(errs, ingressPath(&v.HTTP.Paths[i], hp.Child("paths").Index(i))...)
	}
	return errs
}

func ingressPath(ip *networkingv1.HTTPIngressPath, p *field.Path) field.ErrorList {
	if ip.PathType == nil {
		return field.ErrorList{field.Required(p.Child("pathType"), "pathType must be specified")}
	}
	var errs field.ErrorList
	pp := p.Child("path")
	switch *ip.PathType {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(ip.Path, "/") {
			errs = append(errs, field.Invalid(pp, ip.Path, "must be an absolute path"))
		}
		if ip.Path != "" {
			for _, seq := range invalidPathSequence {
				if strings.Contains(ip.Path, seq) {
					errs = append(errs, field.Invalid(pp, ip.Path, fmt.Sprintf("must not contain '%s'", seq)))
				}
			}
			for _, suf := range invalidPathSuffix {
				if strings.HasSuffix(ip.Path, suf) {
					errs = append(errs, field.Invalid(pp, ip.Path, fmt.Sprintf("cannot end with '%s'", suf)))
				}
			}
		}
	case networkingv1.PathTypeImplementationSpecific:
		if ip.Path != "" && !strings.HasPrefix(ip.Path, "/") {
			errs = append(errs, field.Invalid(pp, ip.Path, "must be an absolute path"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("pathType"), *ip.PathType, ingressPathTypes))
	}
	return append(errs, ingressBackend(&ip.Backend, p.Child("backend"))...)
}

func ingressBackend(b *networkingv1.IngressBackend, p *field.Path) field.ErrorList {
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(p, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		var errs field.ErrorList
		rp := p.Child("resource")
		if b.Resource.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "name is required"))
		}
		if b.Resource.Kind == "" {
			errs = append(errs, field.Required(rp.Child("kind"), "kind is required"))
		}
		return errs
	case b.Service != nil:
		var errs field.ErrorList
		sp := p.Child("service")
		if b.Service.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		} else {
			errs = append(errs, nameMessages(apivalidation.NameIsDNSLabel(b.Service.Name, false), b.Service.Name, sp.Child("name"))...)
		}
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			errs = append(errs, field.Invalid(p, "", "cannot set both port name & port number"))
		case port.Name != "":
			errs = append(errs, nameMessages(validation.IsValidPortName(port.Name), port.Name, sp.Child("port", "name"))...)
		case port.Number != 0:
			for _, msg := range validation.IsValidPortNum(int(port.Number)) {
				errs = append(errs, field.Invalid(sp.Child("port", "number"), port.Number, msg))
			}
		default:
			errs = append(errs, field.Required(p, "port name or number is required"))
		}
		return errs
	}
	return field.ErrorList{field.Invalid(p, "", "resource or service backend is required")}
}

// NetworkPolicy.

func validateNetworkPolicy(obj, old runtime.Object) field.ErrorList {
	np := obj.(*networkingv1.NetworkPolicy)
	var existing []string
	if old != nil {
		o := old.(*networkingv1.NetworkPolicy)
		if specUnchanged(&np.Spec, &o.Spec, old) {
			return nil
		}
		// Stored addresses keep being accepted, whatever later rules say.
		collect := func(peers []networkingv1.NetworkPolicyPeer) {
			for _, pr := range peers {
				if pr.IPBlock != nil {
					existing = append(existing, pr.IPBlock.CIDR)
					existing = append(existing, pr.IPBlock.Except...)
				}
			}
		}
		for _, r := range o.Spec.Ingress {
			collect(r.From)
		}
		for _, r := range o.Spec.Egress {
			collect(r.To)
		}
	}
	s := &np.Spec
	p := field.NewPath("spec")
	errs := labelSelector(&s.PodSelector, p.Child("podSelector"))
	for i, r := range s.Ingress {
		rp := p.Child("ingress").Index(i)
		for j := range r.Ports {
			errs = append(errs, networkPolicyPort(&r.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range r.From {
			errs = append(errs, networkPolicyPeer(&r.From[j], existing, rp.Child("from").Index(j))...)
		}
	}
	for i, r := range s.Egress {
		rp := p.Child("egress").Index(i)
		for j := range r.Ports {
			errs = append(errs, networkPolicyPort(&r.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range r.To {
			errs = append(errs, networkPolicyPeer(&r.To[j], existing, rp.Child("to").Index(j))...)
		}
	}
	tp := p.Child("policyTypes")
	if len(s.PolicyTypes) > 2 {
		return append(errs, field.Invalid(tp, &s.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range s.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(tp.Index(i), t, []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}))
		}
	}
	return errs
}

func networkPolicyPort(port *networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil {
		errs = append(errs, protocolOf(*port.Protocol, p.Child("protocol"))...)
	}
	ep := p.Child("endPort")
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(ep, *port.EndPort, "may not be specified when `port` is not specified"))
		}
	case port.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port.IntVal, msg))
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(ep, *port.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				errs = append(errs, field.Invalid(ep, *port.EndPort, msg))
			}
		}
	default:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(ep, *port.EndPort, "may not be specified when `port` is non-numeric"))
		}
		errs = append(errs, nameMessages(validation.IsValidPortName(port.Port.StrVal), port.Port.StrVal, p.Child("port"))...)
	}
	return errs
}

// protocolOf is protocol() with upstream's NetworkPolicy ordering of the
// supported values.
func protocolOf(v corev1.Protocol, p *field.Path) field.ErrorList {
	switch v {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, v, []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)})}
}

func networkPolicyPeer(peer *networkingv1.NetworkPolicyPeer, existing []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, labelSelector(peer.PodSelector, p.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, labelSelector(peer.NamespaceSelector, p.Child("namespaceSelector"))...)
	}
	if b := peer.IPBlock; b != nil {
		n++
		bp := p.Child("ipBlock")
		if b.CIDR == "" {
			errs = append(errs, field.Required(bp.Child("cidr"), ""))
		} else {
			errs = append(errs, validation.IsValidCIDRForLegacyField(bp.Child("cidr"), b.CIDR, true, existing)...)
			if _, outer, err := net.ParseCIDR(b.CIDR); err == nil {
				for i, ex := range b.Except {
					xp := bp.Child("except").Index(i)
					errs = append(errs, validation.IsValidCIDRForLegacyField(xp, ex, true, existing)...)
					_, inner, err := net.ParseCIDR(ex)
					if err != nil {
						continue
					}
					outerLen, _ := outer.Mask.Size()
					innerLen, _ := inner.Mask.Size()
					if !outer.Contains(inner.IP) || outerLen >= innerLen {
						errs = append(errs, field.Invalid(xp, ex, "must be a strict subset of `cidr`"))
					}
				}
			}
		}
	}
	if n == 0 {
		errs = append(errs, field.Required(p, "must specify a peer"))
	} else if n > 1 && peer.IPBlock != nil {
		errs = append(errs, field.Forbidden(p, "may not specify both ipBlock and another peer"))
	}
	return errs
}

// PodDisruptionBudget.

func validatePodDisruptionBudget(obj, old runtime.Object) field.ErrorList {
	pdb := obj.(*policyv1.PodDisruptionBudget)
	if old != nil && specUnchanged(&pdb.Spec, &old.(*policyv1.PodDisruptionBudget).Spec, old) {
		return nil
	}
	s := &pdb.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	if s.MinAvailable != nil && s.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(p, renderPDBSpec(s), "minAvailable and maxUnavailable cannot be both set"))
	}
	if s.MinAvailable != nil {
		errs = append(errs, positiveIntOrPercent(*s.MinAvailable, p.Child("minAvailable"))...)
		errs = append(errs, notMoreThan100Percent(*s.MinAvailable, p.Child("minAvailable"))...)
	}
	if s.MaxUnavailable != nil {
		errs = append(errs, positiveIntOrPercent(*s.MaxUnavailable, p.Child("maxUnavailable"))...)
		errs = append(errs, notMoreThan100Percent(*s.MaxUnavailable, p.Child("maxUnavailable"))...)
	}
	errs = append(errs, labelSelector(s.Selector, p.Child("selector"))...)
	if u := s.UnhealthyPodEvictionPolicy; u != nil && *u != policyv1.IfHealthyBudget && *u != policyv1.AlwaysAllow {
		errs = append(errs, field.NotSupported(p.Child("unhealthyPodEvictionPolicy"), *u, []string{string(policyv1.AlwaysAllow), string(policyv1.IfHealthyBudget)}))
	}
	return errs
}

// HorizontalPodAutoscaler.

var (
	metricSourceTypes = []string{string(autoscalingv2.ContainerResourceMetricSourceType), string(autoscalingv2.ExternalMetricSourceType),
		string(autoscalingv2.ObjectMetricSourceType), string(autoscalingv2.PodsMetricSourceType), string(autoscalingv2.ResourceMetricSourceType)}
	selectPolicies  = []string{string(autoscalingv2.DisabledPolicySelect), string(autoscalingv2.MaxChangePolicySelect), string(autoscalingv2.MinChangePolicySelect)}
	scalingPolicies = []string{string(autoscalingv2.PercentScalingPolicy), string(autoscalingv2.PodsScalingPolicy)}
)

const (
	maxStabilizationWindowSeconds = 3600
	maxScalingPeriodSeconds       = 1800
)

func validateHPA(obj, old runtime.Object) field.ErrorList {
	hpa := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	var oldHPA *autoscalingv2.HorizontalPodAutoscaler
	if old != nil {
		oldHPA = old.(*autoscalingv2.HorizontalPodAutoscaler)
		if specUnchanged(&hpa.Spec, &oldHPA.Spec, old) {
			return nil
		}
	}
	s := &hpa.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	// Scaling to zero is allowed (HPAScaleToZero is on by default).
	if s.MinReplicas != nil && *s.MinReplicas < 0 {
		errs = append(errs, field.Invalid(p.Child("minReplicas"), *s.MinReplicas, "must be greater than or equal to 0"))
	}
	if s.MaxReplicas == 0 {
		errs = append(errs, field.Required(p.Child("maxReplicas"), "must be set and greater than 0"))
	} else if s.MaxReplicas < 0 {
		errs = append(errs, field.Invalid(p.Child("maxReplicas"), s.MaxReplicas, "must be greater than or equal to 1"))
	}
	if s.MinReplicas != nil && s.MaxReplicas < *s.MinReplicas {
		errs = append(errs, field.Invalid(p.Child("maxReplicas"), s.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	ref := s.ScaleTargetRef
	// An unchanged target is not re-judged; the core group is allowed only
	// for replication controllers.
	checkVersion := oldHPA == nil || oldHPA.Spec.ScaleTargetRef.APIVersion != ref.APIVersion || oldHPA.Spec.ScaleTargetRef.Kind != ref.Kind
	errs = append(errs, crossVersionRef(ref.Kind, ref.Name, ref.APIVersion, checkVersion, ref.Kind == "ReplicationController", p.Child("scaleTargetRef"))...)

	mp := p.Child("metrics")
	objectOrExternal := false
	for i := range s.Metrics {
		m := &s.Metrics[i]
		errs = append(errs, metricSpec(m, mp.Index(i))...)
		objectOrExternal = objectOrExternal || m.Type == autoscalingv2.ObjectMetricSourceType || m.Type == autoscalingv2.ExternalMetricSourceType
	}
	if s.MinReplicas != nil && *s.MinReplicas == 0 && !objectOrExternal {
		errs = append(errs, field.Forbidden(mp, "must specify at least one Object or External metric to support scaling to zero replicas"))
	}
	if b := s.Behavior; b != nil {
		errs = append(errs, scalingRules(b.ScaleUp, p.Child("behavior", "scaleUp"))...)
		errs = append(errs, scalingRules(b.ScaleDown, p.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func crossVersionRef(kind, name, apiVersion string, checkVersion, allowCore bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	} else {
		errs = append(errs, nameMessages(content.IsPathSegmentName(kind), kind, p.Child("kind"))...)
	}
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, nameMessages(content.IsPathSegmentName(name), name, p.Child("name"))...)
	}
	if checkVersion {
		if gv, err := schema.ParseGroupVersion(apiVersion); err != nil {
			errs = append(errs, field.Invalid(p.Child("apiVersion"), apiVersion, err.Error()))
		} else if gv.Group == "" && !allowCore {
			errs = append(errs, field.Invalid(p.Child("apiVersion"), apiVersion, "apiVersion must specify API group"))
		}
	}
	return errs
}

func metricSpec(m *autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric source type"))
	}
	present := []string{}
	if m.Object != nil {
		present = append(present, "object")
		if len(present) == 1 {
			op := p.Child("object")
			errs = append(errs, crossVersionRef(m.Object.DescribedObject.Kind, m.Object.DescribedObject.Name, m.Object.DescribedObject.APIVersion, true, true, op.Child("describedObject"))...)
			errs = append(errs, metricName(m.Object.Metric.Name, op.Child("metric"))...)
			errs = append(errs, metricTarget(&m.Object.Target, op.Child("target"))...)
			if m.Object.Target.Value == nil && m.Object.Target.AverageValue == nil {
				errs = append(errs, field.Required(op.Child("target", "averageValue"), "must set either a target value or averageValue"))
			}
		}
	}
	if m.External != nil {
		present = append(present, "external")
		if len(present) == 1 {
			ep := p.Child("external")
			errs = append(errs, metricName(m.External.Metric.Name, ep.Child("metric"))...)
			errs = append(errs, metricTarget(&m.External.Target, ep.Child("target"))...)
			t := &m.External.Target
			if t.Value == nil && t.AverageValue == nil {
				errs = append(errs, field.Required(ep.Child("target", "averageValue"), "must set either a target value for metric or a per-pod target"))
			}
			if t.Value != nil && t.AverageValue != nil {
				errs = append(errs, field.Forbidden(ep.Child("target", "value"), "may not set both a target value for metric and a per-pod target"))
			}
		}
	}
	if m.Pods != nil {
		present = append(present, "pods")
		if len(present) == 1 {
			pp := p.Child("pods")
			errs = append(errs, metricName(m.Pods.Metric.Name, pp.Child("metric"))...)
			errs = append(errs, metricTarget(&m.Pods.Target, pp.Child("target"))...)
			if m.Pods.Target.AverageValue == nil {
				errs = append(errs, field.Required(pp.Child("target", "averageValue"), "must specify a positive target averageValue"))
			}
		}
	}
	if m.Resource != nil {
		present = append(present, "resource")
		if len(present) == 1 {
			rp := p.Child("resource")
			if m.Resource.Name == "" {
				errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
			}
			errs = append(errs, utilizationTarget(&m.Resource.Target, rp.Child("target"))...)
		}
	}
	if m.ContainerResource != nil {
		present = append(present, "containerResource")
		if len(present) == 1 {
			cp := p.Child("containerResource")
			if m.ContainerResource.Name == "" {
				errs = append(errs, field.Required(cp.Child("name"), "must specify a resource name"))
			} else {
				errs = append(errs, containerResourceName(m.ContainerResource.Name, cp.Child("name"))...)
			}
			if m.ContainerResource.Container == "" {
				errs = append(errs, field.Required(cp.Child("container"), "must specify a container"))
			} else {
				errs = append(errs, dns1123Label(m.ContainerResource.Container, cp.Child("container"))...)
			}
			errs = append(errs, utilizationTarget(&m.ContainerResource.Target, cp.Child("target"))...)
		}
	}
	var expected string
	switch m.Type {
	case autoscalingv2.ObjectMetricSourceType:
		expected = "object"
	case autoscalingv2.PodsMetricSourceType:
		expected = "pods"
	case autoscalingv2.ResourceMetricSourceType:
		expected = "resource"
	case autoscalingv2.ExternalMetricSourceType:
		expected = "external"
	case autoscalingv2.ContainerResourceMetricSourceType:
		expected = "containerResource"
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), m.Type, metricSourceTypes))
	}
	if expected != "" {
		found := false
		for _, t := range present {
			found = found || t == expected
		}
		if !found {
			errs = append(errs, field.Required(p.Child(expected), "must populate information for the given metric source"))
		}
	}
	if len(present) > 1 {
		for _, t := range present {
			if t != expected {
				errs = append(errs, field.Forbidden(p.Child(t), "must populate the given metric source only"))
			}
		}
	}
	return errs
}

func metricName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p.Child("name"), "must specify a metric name")}
	}
	return nameMessages(content.IsPathSegmentName(name), name, p.Child("name"))
}

func metricTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric target type"))
	}
	if t.Type != autoscalingv2.UtilizationMetricType && t.Type != autoscalingv2.ValueMetricType && t.Type != autoscalingv2.AverageValueMetricType {
		errs = append(errs, field.Invalid(p.Child("type"), t.Type, "must be either Utilization, Value, or AverageValue"))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		errs = append(errs, field.Invalid(p.Child("value"), t.Value, "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		errs = append(errs, field.Invalid(p.Child("averageValue"), t.AverageValue, "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(p.Child("averageUtilization"), t.AverageUtilization, "must be greater than 0"))
	}
	return errs
}

func utilizationTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	errs := metricTarget(t, p)
	if t.AverageUtilization == nil && t.AverageValue == nil {
		errs = append(errs, field.Required(p.Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if t.AverageUtilization != nil && t.AverageValue != nil {
		errs = append(errs, field.Forbidden(p.Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return errs
}

// scalingRules: rules left without policies get the default ones.
func scalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil {
		if *w < 0 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), w, "must be greater than or equal to zero"))
		}
		if *w > maxStabilizationWindowSeconds {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), w, fmt.Sprintf("must be less than or equal to %v", maxStabilizationWindowSeconds)))
		}
	}
	if sp := r.SelectPolicy; sp != nil {
		switch *sp {
		case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
		default:
			errs = append(errs, field.NotSupported(p.Child("selectPolicy"), sp, selectPolicies))
		}
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		if pol.Type != autoscalingv2.PodsScalingPolicy && pol.Type != autoscalingv2.PercentScalingPolicy {
			errs = append(errs, field.NotSupported(pp.Child("type"), pol.Type, scalingPolicies))
		}
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be greater than zero"))
		}
		if pol.PeriodSeconds > maxScalingPeriodSeconds {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, fmt.Sprintf("must be less than or equal to %v", maxScalingPeriodSeconds)))
		}
	}
	if r.Tolerance != nil && r.Tolerance.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("tolerance"), r.Tolerance.String(), isNegativeErrorMsg))
	}
	return errs
}

// PriorityClass.

const highestUserPriority = int32(1000000000)

// systemPriorityClasses are the only classes allowed the "system-" prefix,
// each with its fixed value.
var systemPriorityClasses = map[string]int32{
	"system-cluster-critical": 2 * highestUserPriority,
	"system-node-critical":    2*highestUserPriority + 1000,
}

func validatePriorityClass(obj, old runtime.Object) field.ErrorList {
	pc := obj.(*schedulingv1.PriorityClass)
	var errs field.ErrorList
	if strings.HasPrefix(pc.Name, "system-") {
		const reserved = "priority class names with 'system-' prefix are reserved for system use only. error: "
		np := field.NewPath("metadata", "name")
		switch v, known := systemPriorityClasses[pc.Name]; {
		case !known:
			errs = append(errs, field.Forbidden(np, reserved+fmt.Sprintf("%v is not a known system priority class", pc.Name)))
		case v != pc.Value:
			errs = append(errs, field.Forbidden(np, reserved+fmt.Sprintf("value of %v PriorityClass must be %v", pc.Name, v)))
		case pc.GlobalDefault:
			errs = append(errs, field.Forbidden(np, reserved+fmt.Sprintf("globalDefault of %v PriorityClass must be false", pc.Name)))
		}
	} else if pc.Value > highestUserPriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"), fmt.Sprintf("maximum allowed value of a user defined priority is %v", highestUserPriority)))
	}
	if pc.PreemptionPolicy != nil {
		errs = append(errs, preemptionPolicy(*pc.PreemptionPolicy, field.NewPath("preemptionPolicy"))...)
	}
	return errs
}

// StorageClass.

func validateStorageClass(obj, old runtime.Object) field.ErrorList {
	sc := obj.(*storagev1.StorageClass)
	var errs field.ErrorList
	pp := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(pp, ""))
	} else {
		errs = append(errs, qualifiedName(strings.ToLower(sc.Provisioner), pp)...)
	}
	paramPath := field.NewPath("parameters")
	if len(sc.Parameters) > 512 {
		errs = append(errs, field.TooLong(paramPath, "", 512))
	} else {
		size := 0
		for _, k := range sortedStringKeys(sc.Parameters) {
			if k == "" {
				errs = append(errs, field.Invalid(paramPath, k, "field can not be empty."))
			}
			size += len(k) + len(sc.Parameters[k])
		}
		if size > 256*1024 {
			errs = append(errs, field.TooLong(paramPath, "", 256*1024))
		}
	}
	if rp := sc.ReclaimPolicy; rp != nil && *rp != "" {
		switch *rp {
		case corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), rp, []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRetain)}))
		}
	}
	if m := sc.VolumeBindingMode; m != nil && *m != storagev1.VolumeBindingImmediate && *m != storagev1.VolumeBindingWaitForFirstConsumer {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), m, []string{string(storagev1.VolumeBindingImmediate), string(storagev1.VolumeBindingWaitForFirstConsumer)}))
	}
	for i, term := range sc.AllowedTopologies {
		tp := field.NewPath("allowedTopologies").Index(i).Child("matchLabelExpressions")
		for j, r := range term.MatchLabelExpressions {
			rp := tp.Index(j)
			if len(r.Values) == 0 {
				errs = append(errs, field.Required(rp.Child("values"), ""))
			}
			for k, v := range r.Values {
				for l := 0; l < k; l++ {
					if r.Values[l] == v {
						errs = append(errs, field.Duplicate(rp.Child("values").Index(k), v))
						break
					}
				}
			}
			errs = append(errs, metavalidation.ValidateLabelName(r.Key, rp.Child("key"))...)
			for l := 0; l < j; l++ {
				if term.MatchLabelExpressions[l].Key == r.Key {
					errs = append(errs, field.Duplicate(rp.Child("key"), r.Key))
					break
				}
			}
		}
		for k := 0; k < i; k++ {
			if sameTopologyTerm(sc.AllowedTopologies[k], term) {
				errs = append(errs, field.Duplicate(tp, ""))
				break
			}
		}
	}
	return errs
}

// sameTopologyTerm compares terms as sets of key -> set of values.
func sameTopologyTerm(a, b corev1.TopologySelectorTerm) bool {
	asSets := func(t corev1.TopologySelectorTerm) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, r := range t.MatchLabelExpressions {
			vs := map[string]bool{}
			for _, v := range r.Values {
				vs[v] = true
			}
			m[r.Key] = vs
		}
		return m
	}
	return equality.Semantic.DeepEqual(asSets(a), asSets(b))
}

// Lease.

func validateLease(obj, old runtime.Object) field.ErrorList {
	s := &obj.(*coordinationv1.Lease).Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	if s.LeaseDurationSeconds != nil && *s.LeaseDurationSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), s.LeaseDurationSeconds, "must be greater than 0"))
	}
	if s.LeaseTransitions != nil && *s.LeaseTransitions < 0 {
		errs = append(errs, field.Invalid(p.Child("leaseTransitions"), s.LeaseTransitions, "must be greater than or equal to 0"))
	}
	if s.Strategy != nil {
		// Upstream names the field twice in this path.
		sp := p.Child("strategy", "strategy")
		if !strings.Contains(string(*s.Strategy), "/") {
			if *s.Strategy != coordinationv1.OldestEmulationVersion {
				errs = append(errs, field.NotSupported(sp, *s.Strategy, []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}))
			}
		} else {
			errs = append(errs, nameMessages(validation.IsQualifiedName(string(*s.Strategy)), string(*s.Strategy), sp)...)
		}
	}
	if s.PreferredHolder != nil && *s.PreferredHolder != "" && (s.Strategy == nil || *s.Strategy == "") {
		errs = append(errs, field.Forbidden(p.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}
