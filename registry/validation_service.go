package registry

import (
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxClientIPAffinitySeconds is a day, upstream's cap on sticky sessions.
const maxClientIPAffinitySeconds = 86400

var serviceTypes = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort}

// effectiveClusterIPs is what the spec's clusterIPs will be once the
// server has filled them in before its own checks, as upstream does: the
// singular field seeds the list, and on update an omitted address is the
// one already allocated. (pgkube's allocator runs after validation.)
func effectiveClusterIPs(s, old *corev1.Service) []string {
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	if old != nil && len(ips) == 0 && s.Spec.Type != corev1.ServiceTypeExternalName && old.Spec.Type != corev1.ServiceTypeExternalName {
		ips = effectiveClusterIPs(old, nil)
	}
	return ips
}

func isHeadless(ips []string) bool { return len(ips) == 1 && ips[0] == corev1.ClusterIPNone }

func validateService(obj, old runtime.Object) field.ErrorList {
	svc := obj.(*corev1.Service)
	var oldSvc *corev1.Service
	if old != nil {
		oldSvc = old.(*corev1.Service)
		if specUnchanged(&svc.Spec, &oldSvc.Spec, old) {
			return nil
		}
	}
	spec := svc.Spec
	if oldSvc != nil {
		spec = dropTypeDependent(spec, &oldSvc.Spec)
	}
	s := &spec
	p := field.NewPath("spec")
	typ := serviceType(s)
	ips := effectiveClusterIPs(&corev1.Service{Spec: spec}, oldSvc)
	headless := isHeadless(ips)
	var errs field.ErrorList

	if len(s.Ports) == 0 && !headless && typ != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(p.Child("ports"), ""))
	}
	switch typ {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if headless {
			errs = append(errs, field.Invalid(p.Child("clusterIPs").Index(0), ips[0], fmt.Sprintf("may not be set to 'None' for %s services", typ)))
		}
	case corev1.ServiceTypeExternalName:
		if len(s.ClusterIPs) > 0 || s.ClusterIP != "" {
			errs = append(errs, field.Forbidden(p.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(s.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(p.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if s.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(p.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A trailing dot marks the name fully qualified.
		if cname := strings.TrimSuffix(s.ExternalName, "."); cname != "" {
			errs = append(errs, dns1123Subdomain(cname, p.Child("externalName"))...)
		} else {
			errs = append(errs, field.Required(p.Child("externalName"), ""))
		}
	}

	portsPath := p.Child("ports")
	for i := range s.Ports {
		sp := &s.Ports[i]
		pp := portsPath.Index(i)
		if len(s.Ports) > 1 && sp.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else if sp.Name != "" {
			errs = append(errs, dns1123Label(sp.Name, pp.Child("name"))...)
			for j := 0; j < i; j++ {
				if s.Ports[j].Name == sp.Name {
					errs = append(errs, field.Duplicate(pp.Child("name"), sp.Name))
					break
				}
			}
		}
		for _, msg := range validation.IsValidPortNum(int(sp.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), sp.Port, msg))
		}
		errs = append(errs, protocol(sp.Protocol, pp.Child("protocol"))...)
		// An unset target port defaults to the port.
		if sp.TargetPort.IntVal != 0 || sp.TargetPort.StrVal != "" {
			errs = append(errs, portNumOrName(sp.TargetPort, pp.Child("targetPort"))...)
		}
		if sp.AppProtocol != nil {
			errs = append(errs, qualifiedName(*sp.AppProtocol, pp.Child("appProtocol"))...)
		}
	}
	if s.Selector != nil {
		errs = append(errs, metavalidation.ValidateLabels(s.Selector, p.Child("selector"))...)
	}

	affinity := s.SessionAffinity
	switch affinity {
	case "", corev1.ServiceAffinityNone:
		if s.SessionAffinityConfig != nil {
			errs = append(errs, field.Forbidden(p.Child("sessionAffinityConfig"), "must not be set when session affinity is None"))
		}
	case corev1.ServiceAffinityClientIP:
		// An unset config is defaulted to the standard timeout.
		if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPAffinitySeconds {
				errs = append(errs, field.Invalid(p.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), c.ClientIP.TimeoutSeconds,
					fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
			}
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("sessionAffinity"), affinity, []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}))
	}

	if typ != corev1.ServiceTypeExternalName {
		errs = append(errs, clusterIPFields(s, ips, oldSvc, p)...)
	}
	var oldExternal []string
	if oldSvc != nil {
		oldExternal = oldSvc.Spec.ExternalIPs
	}
	for i, ip := range s.ExternalIPs {
		ep := p.Child("externalIPs").Index(i)
		if e := validation.IsValidIPForLegacyField(ep, ip, true, oldExternal); len(e) > 0 {
			errs = append(errs, e...)
		} else {
			errs = append(errs, endpointIP(ip, ep)...)
		}
	}

	switch typ {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), typ, serviceTypes))
	}
	if typ == corev1.ServiceTypeClusterIP {
		for i := range s.Ports {
			if s.Ports[i].NodePort != 0 {
				errs = append(errs, field.Forbidden(portsPath.Index(i).Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
		}
	}
	for i := range s.Ports {
		sp := &s.Ports[i]
		for j := 0; j < i; j++ {
			if sp.NodePort != 0 && s.Ports[j].NodePort == sp.NodePort && protoOrTCP(s.Ports[j].Protocol) == protoOrTCP(sp.Protocol) {
				errs = append(errs, field.Duplicate(portsPath.Index(i).Child("nodePort"), sp.NodePort))
				break
			}
		}
		for j := 0; j < i; j++ {
			if s.Ports[j].Port == sp.Port && protoOrTCP(s.Ports[j].Protocol) == protoOrTCP(sp.Protocol) {
				errs = append(errs, field.Duplicate(portsPath.Index(i), internalServicePort{Protocol: protoOrTCP(sp.Protocol), Port: sp.Port}))
				break
			}
		}
	}
	if len(s.LoadBalancerSourceRanges) > 0 {
		rp := p.Child("LoadBalancerSourceRanges")
		if typ != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(rp, "may only be used when `type` is 'LoadBalancer'"))
		}
		var existing []string
		if oldSvc != nil {
			for _, r := range oldSvc.Spec.LoadBalancerSourceRanges {
				existing = append(existing, strings.TrimSpace(r))
			}
		}
		for i, r := range s.LoadBalancerSourceRanges {
			errs = append(errs, validation.IsValidCIDRForLegacyField(rp.Index(i), strings.TrimSpace(r), true, existing)...)
		}
	}
	if s.AllocateLoadBalancerNodePorts != nil && typ != corev1.ServiceTypeLoadBalancer {
		errs = append(errs, field.Forbidden(p.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if s.LoadBalancerClass != nil {
		if typ == corev1.ServiceTypeLoadBalancer {
			errs = append(errs, qualifiedName(*s.LoadBalancerClass, p.Child("loadBalancerClass"))...)
		} else {
			errs = append(errs, field.Forbidden(p.Child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
		}
	}
	if oldSvc != nil && typ == corev1.ServiceTypeLoadBalancer && oldSvc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		a, b := oldSvc.Spec.LoadBalancerClass, s.LoadBalancerClass
		if (a == nil) != (b == nil) || (a != nil && *a != *b) {
			errs = append(errs, field.Invalid(p.Child("loadBalancerClass"), b, "may not change once set"))
		}
	}

	external := externallyAccessible(s)
	switch etp := s.ExternalTrafficPolicy; {
	case !external && etp != "":
		errs = append(errs, field.Invalid(p.Child("externalTrafficPolicy"), etp, "may only be set for externally-accessible services"))
	case external && etp != "" && etp != corev1.ServiceExternalTrafficPolicyCluster && etp != corev1.ServiceExternalTrafficPolicyLocal:
		errs = append(errs, field.NotSupported(p.Child("externalTrafficPolicy"), etp,
			[]corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}))
	}
	needsHC := typ == corev1.ServiceTypeLoadBalancer && s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if !needsHC && s.HealthCheckNodePort != 0 {
		errs = append(errs, field.Invalid(p.Child("healthCheckNodePort"), s.HealthCheckNodePort, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
	} else if needsHC && s.HealthCheckNodePort != 0 {
		for _, msg := range validation.IsValidPortNum(int(s.HealthCheckNodePort)) {
			errs = append(errs, field.Invalid(p.Child("healthCheckNodePort"), s.HealthCheckNodePort, msg))
		}
	}
	if itp := s.InternalTrafficPolicy; itp != nil && *itp != corev1.ServiceInternalTrafficPolicyCluster && *itp != corev1.ServiceInternalTrafficPolicyLocal {
		errs = append(errs, field.NotSupported(p.Child("internalTrafficPolicy"), *itp,
			[]corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}))
	}
	if td := s.TrafficDistribution; td != nil {
		valid := []string{corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone, corev1.ServiceTrafficDistributionPreferSameNode}
		ok := false
		for _, v := range valid {
			ok = ok || v == *td
		}
		if !ok {
			errs = append(errs, field.NotSupported(p.Child("trafficDistribution"), *td, valid))
		}
	}
	return errs
}

func serviceType(s *corev1.ServiceSpec) corev1.ServiceType {
	if s.Type == "" {
		return corev1.ServiceTypeClusterIP
	}
	return s.Type
}

func externallyAccessible(s *corev1.ServiceSpec) bool {
	t := serviceType(s)
	return t == corev1.ServiceTypeLoadBalancer || t == corev1.ServiceTypeNodePort ||
		(t == corev1.ServiceTypeClusterIP && len(s.ExternalIPs) > 0)
}

func needsNodePorts(s *corev1.ServiceSpec) bool {
	t := serviceType(s)
	return t == corev1.ServiceTypeNodePort ||
		(t == corev1.ServiceTypeLoadBalancer && (s.AllocateLoadBalancerNodePorts == nil || *s.AllocateLoadBalancerNodePorts))
}

// dropTypeDependent mirrors what upstream does to an update before
// judging it: when the type changes, values the old type needed and the
// new one cannot use are cleared, provided the user left them as they were
// (a changed value is the user's and gets judged).
func dropTypeDependent(s corev1.ServiceSpec, old *corev1.ServiceSpec) corev1.ServiceSpec {
	oldType, newType := serviceType(old), serviceType(&s)
	if oldType != corev1.ServiceTypeExternalName && newType == corev1.ServiceTypeExternalName {
		if s.ClusterIP == old.ClusterIP && equality.Semantic.DeepEqual(s.ClusterIPs, old.ClusterIPs) {
			s.ClusterIP, s.ClusterIPs = "", nil
		}
		if equality.Semantic.DeepEqual(s.IPFamilies, old.IPFamilies) {
			s.IPFamilies = nil
		}
		if equality.Semantic.DeepEqual(s.IPFamilyPolicy, old.IPFamilyPolicy) {
			s.IPFamilyPolicy = nil
		}
	}
	if needsNodePorts(old) && !needsNodePorts(&s) {
		known := map[int32]bool{}
		for _, p := range old.Ports {
			known[p.NodePort] = true
		}
		same := true
		for _, p := range s.Ports {
			same = same && (p.NodePort == 0 || known[p.NodePort])
		}
		if same {
			s.Ports = append([]corev1.ServicePort(nil), s.Ports...)
			for i := range s.Ports {
				s.Ports[i].NodePort = 0
			}
		}
	}
	oldHC := oldType == corev1.ServiceTypeLoadBalancer && old.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	newHC := newType == corev1.ServiceTypeLoadBalancer && s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if oldHC && !newHC && s.HealthCheckNodePort == old.HealthCheckNodePort {
		s.HealthCheckNodePort = 0
	}
	if oldType == corev1.ServiceTypeLoadBalancer && newType != corev1.ServiceTypeLoadBalancer {
		if a, b := old.AllocateLoadBalancerNodePorts, s.AllocateLoadBalancerNodePorts; a != nil && b != nil && *a == *b {
			s.AllocateLoadBalancerNodePorts = nil
		}
		if equality.Semantic.DeepEqual(old.LoadBalancerClass, s.LoadBalancerClass) {
			s.LoadBalancerClass = nil
		}
	}
	if externallyAccessible(old) && !externallyAccessible(&s) && old.ExternalTrafficPolicy == s.ExternalTrafficPolicy {
		s.ExternalTrafficPolicy = ""
	}
	return s
}

func protoOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

var ipFamilyPolicies = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}

// clusterIPFields: the addresses, their families, and on update that the
// primary address stays.
func clusterIPFields(s *corev1.ServiceSpec, ips []string, oldSvc *corev1.Service, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	cp := p.Child("clusterIPs")
	if s.ClusterIP != "" && len(s.ClusterIPs) > 0 && s.ClusterIPs[0] != s.ClusterIP {
		errs = append(errs, field.Invalid(cp, s.ClusterIPs, "first value must match `clusterIP`"))
	}
	fp := p.Child("ipFamilies")
	for i, f := range s.IPFamilies {
		if f != corev1.IPv4Protocol && f != corev1.IPv6Protocol {
			errs = append(errs, field.NotSupported(fp.Index(i), f, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
		}
		for j := 0; j < i; j++ {
			if s.IPFamilies[j] == f {
				errs = append(errs, field.Duplicate(fp.Index(i), f))
				break
			}
		}
	}
	if pol := s.IPFamilyPolicy; pol != nil {
		switch *pol {
		case corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack:
		default:
			errs = append(errs, field.NotSupported(p.Child("ipFamilyPolicy"), pol, ipFamilyPolicies))
		}
	}
	var existing []string
	if oldSvc != nil {
		existing = effectiveClusterIPs(oldSvc, nil)
	}
	invalid := false
	for i, ip := range ips {
		if i == 0 && ip == corev1.ClusterIPNone {
			if len(ips) > 1 {
				invalid = true
				errs = append(errs, field.Invalid(cp, ips, "'None' must be the first and only value"))
			}
			continue
		}
		e := validation.IsValidIPForLegacyField(cp.Index(i), ip, true, existing)
		invalid = invalid || len(e) > 0
		errs = append(errs, e...)
	}
	if len(ips) > 2 {
		errs = append(errs, field.Invalid(cp, ips, "may only hold up to 2 values"))
	}
	if invalid {
		return errs
	}
	if len(ips) == 2 {
		if (net.ParseIP(ips[0]).To4() != nil) == (net.ParseIP(ips[1]).To4() != nil) {
			errs = append(errs, field.Invalid(cp, ips, "may specify no more than one IP for each IP family"))
		}
	}
	if !isHeadless(ips) {
		for i, ip := range ips {
			if i >= len(s.IPFamilies) {
				break
			}
			v6 := net.ParseIP(ip).To4() == nil
			if s.IPFamilies[i] == corev1.IPv4Protocol && v6 {
				errs = append(errs, field.Invalid(cp.Index(i), ip, fmt.Sprintf("expected an IPv4 value as indicated by `ipFamilies[%v]`", i)))
			}
			if s.IPFamilies[i] == corev1.IPv6Protocol && !v6 {
				errs = append(errs, field.Invalid(cp.Index(i), ip, fmt.Sprintf("expected an IPv6 value as indicated by `ipFamilies[%v]`", i)))
			}
		}
	}
	if oldSvc != nil && oldSvc.Spec.Type != corev1.ServiceTypeExternalName && !(isHeadless(existing) && isHeadless(ips)) {
		switch {
		case len(existing) == len(ips):
			for i := range existing {
				if existing[i] != ips[i] {
					errs = append(errs, field.Invalid(cp.Index(i), ips, "may not change once set"))
				}
			}
		case len(existing) > len(ips):
			if len(ips) == 0 {
				errs = append(errs, field.Invalid(cp.Index(0), ips, "primary clusterIP can not be unset"))
			} else if ips[0] != existing[0] {
				errs = append(errs, field.Invalid(cp.Index(0), ips, "may not change once set"))
			}
		default:
			if len(existing) > 0 && ips[0] != existing[0] {
				errs = append(errs, field.Invalid(cp.Index(0), ips, "may not change once set"))
			}
		}
	}
	return errs
}

// endpointIP refuses addresses that cannot be a workload's.
func endpointIP(ip string, p *field.Path) field.ErrorList {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return field.ErrorList{field.Invalid(p, ip, "must be a valid IP address")}
	}
	var errs field.ErrorList
	if parsed.IsUnspecified() {
		errs = append(errs, field.Invalid(p, ip, fmt.Sprintf("may not be unspecified (%v)", ip)))
	}
	if parsed.IsLoopback() {
		errs = append(errs, field.Invalid(p, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if parsed.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(p, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if parsed.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(p, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

var addressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}

func validateEndpointSlice(obj, old runtime.Object) field.ErrorList {
	es := obj.(*discoveryv1.EndpointSlice)
	var errs field.ErrorList
	switch es.AddressType {
	case "":
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), es.AddressType, addressTypes))
	}
	ep := field.NewPath("endpoints")
	if len(es.Endpoints) > 1000 {
		errs = append(errs, field.TooMany(ep, len(es.Endpoints), 1000))
	} else {
		for i := range es.Endpoints {
			e := &es.Endpoints[i]
			ip := ep.Index(i)
			ap := ip.Child("addresses")
			if len(e.Addresses) == 0 {
				errs = append(errs, field.Required(ap, "must contain at least 1 address"))
			} else if len(e.Addresses) > 100 {
				errs = append(errs, field.TooMany(ap, len(e.Addresses), 100))
			}
			// Syntax only: pgkube's own "kubernetes" slice carries whatever
			// address the server listens on, loopback or unspecified
			// included, which upstream's finer checks would refuse.
			for j, a := range e.Addresses {
				switch es.AddressType {
				case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
					errs = append(errs, validation.IsValidIPForLegacyField(ap.Index(j), a, true, nil)...)
				case discoveryv1.AddressTypeFQDN:
					errs = append(errs, validation.IsFullyQualifiedDomainName(ap.Index(j), a)...)
				}
			}
			if e.NodeName != nil {
				errs = append(errs, dns1123Subdomain(*e.NodeName, ip.Child("nodeName"))...)
			}
			if e.Hostname != nil {
				errs = append(errs, dns1123Label(*e.Hostname, ip.Child("hostname"))...)
			}
		}
	}
	pp := field.NewPath("ports")
	if len(es.Ports) > 20000 {
		return append(errs, field.TooMany(pp, len(es.Ports), 20000))
	}
	for i, port := range es.Ports {
		ip := pp.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, dns1123Label(name, ip.Child("name"))...)
		}
		for j := 0; j < i; j++ {
			other := ""
			if es.Ports[j].Name != nil {
				other = *es.Ports[j].Name
			}
			if other == name {
				errs = append(errs, field.Duplicate(ip.Child("name"), name))
				break
			}
		}
		if port.Protocol != nil {
			errs = append(errs, protocol(*port.Protocol, ip.Child("protocol"))...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, qualifiedName(*port.AppProtocol, ip.Child("appProtocol"))...)
		}
	}
	return errs
}
