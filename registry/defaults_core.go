package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// defaultService covers what upstream defaults; the ClusterIP(s), IP
// families and NodePorts are chosen later by the allocator, as upstream's
// REST storage does, because they need the cluster's state.
func defaultService(svc *corev1.Service) {
	sp := &svc.Spec
	setIfEmpty(&sp.SessionAffinity, corev1.ServiceAffinityNone)
	switch sp.SessionAffinity {
	case corev1.ServiceAffinityNone:
		// A config has no meaning without affinity; keeping it would make
		// the object say something that is not in effect.
		sp.SessionAffinityConfig = nil
	case corev1.ServiceAffinityClientIP:
		if c := sp.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			timeout := corev1.DefaultClientIPServiceAffinitySeconds
			sp.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
		}
	}
	setIfEmpty(&sp.Type, corev1.ServiceTypeClusterIP)
	for i := range sp.Ports {
		p := &sp.Ports[i]
		setIfEmpty(&p.Protocol, corev1.ProtocolTCP)
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	externallyReachable := sp.Type == corev1.ServiceTypeNodePort || sp.Type == corev1.ServiceTypeLoadBalancer ||
		sp.Type == corev1.ServiceTypeClusterIP && len(sp.ExternalIPs) > 0
	if externallyReachable {
		setIfEmpty(&sp.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster)
	}
	switch sp.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
		setIfNil(&sp.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster)
	}
	if sp.Type == corev1.ServiceTypeLoadBalancer {
		setIfNil(&sp.AllocateLoadBalancerNodePorts, true)
		// Load balancers that report an IP without saying how it is used
		// predate ipMode and all behaved as a VIP.
		for i := range svc.Status.LoadBalancer.Ingress {
			if ing := &svc.Status.LoadBalancer.Ingress[i]; ing.IP != "" {
				setIfNil(&ing.IPMode, corev1.LoadBalancerIPModeVIP)
			}
		}
	}
}

func defaultEndpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			setIfEmpty(&ep.Subsets[i].Ports[j].Protocol, corev1.ProtocolTCP)
		}
	}
}

func defaultSecret(s *corev1.Secret) { setIfEmpty(&s.Type, corev1.SecretTypeOpaque) }

func defaultNamespace(ns *corev1.Namespace) {
	// The name label lets selectors (network policies, webhooks) pick
	// namespaces by name, and nobody else may set it. A namespace created
	// with generateName has no name yet at this point; upstream's namespace
	// strategy adds the label once the name is chosen.
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	setIfEmpty(&ns.Status.Phase, corev1.NamespaceActive)
}

func defaultNode(n *corev1.Node) {
	// A node that reports no allocatable amounts has all of its capacity
	// available.
	if n.Status.Allocatable == nil && n.Status.Capacity != nil {
		n.Status.Allocatable = n.Status.Capacity.DeepCopy()
	}
	roundResources(n.Status.Capacity)
	roundResources(n.Status.Allocatable)
	// Like pod IPs: the internal version keeps only the list, with podCIDR
	// authoritative when the two disagree.
	s := &n.Spec
	switch {
	case s.PodCIDR != "" && (len(s.PodCIDRs) == 0 || s.PodCIDRs[0] != s.PodCIDR):
		s.PodCIDRs = []string{s.PodCIDR}
	case s.PodCIDR == "" && len(s.PodCIDRs) > 0:
		s.PodCIDR = s.PodCIDRs[0]
	}
}

func defaultPersistentVolume(pv *corev1.PersistentVolume) {
	setIfEmpty(&pv.Status.Phase, corev1.VolumePending)
	// Retain: a volume created by hand holds data nobody asked to lose.
	setIfEmpty(&pv.Spec.PersistentVolumeReclaimPolicy, corev1.PersistentVolumeReclaimRetain)
	setIfNil(&pv.Spec.VolumeMode, corev1.PersistentVolumeFilesystem)
	roundResources(pv.Spec.Capacity)
	src := &pv.Spec.PersistentVolumeSource
	if src.HostPath != nil {
		setIfNil(&src.HostPath.Type, corev1.HostPathUnset)
	}
	if src.RBD != nil {
		defaultRBD(&src.RBD.RBDPool, &src.RBD.RadosUser, &src.RBD.Keyring)
	}
	if src.ISCSI != nil {
		setIfEmpty(&src.ISCSI.ISCSIInterface, "default")
	}
	if src.AzureDisk != nil {
		defaultAzureDisk(src.AzureDisk)
	}
	if src.ScaleIO != nil {
		setIfEmpty(&src.ScaleIO.StorageMode, "ThinProvisioned")
		setIfEmpty(&src.ScaleIO.FSType, "xfs")
	}
}

func defaultPersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) {
	setIfEmpty(&pvc.Status.Phase, corev1.ClaimPending)
	defaultPVCSpec(&pvc.Spec)
	roundResources(pvc.Status.Capacity)
	roundResources(pvc.Status.AllocatedResources)
}

func defaultLimitRange(lr *corev1.LimitRange) {
	for i := range lr.Spec.Limits {
		item := &lr.Spec.Limits[i]
		if item.Type == corev1.LimitTypeContainer {
			// A container gets as its limit the default, else the max; as its
			// request the default request, else its limit, else the min.
			if item.Default == nil {
				item.Default = corev1.ResourceList{}
			}
			if item.DefaultRequest == nil {
				item.DefaultRequest = corev1.ResourceList{}
			}
			fillMissing(item.Default, item.Max)
			fillMissing(item.DefaultRequest, item.Default)
			fillMissing(item.DefaultRequest, item.Min)
		}
		for _, l := range []corev1.ResourceList{item.Max, item.Min, item.Default, item.DefaultRequest, item.MaxLimitRequestRatio} {
			roundResources(l)
		}
	}
}

// fillMissing copies into dst the amounts of resources dst does not name.
func fillMissing(dst, src corev1.ResourceList) {
	for name, q := range src {
		if _, ok := dst[name]; !ok {
			dst[name] = q.DeepCopy()
		}
	}
}

func defaultResourceQuota(q *corev1.ResourceQuota) {
	roundResources(q.Spec.Hard)
	roundResources(q.Status.Hard)
	roundResources(q.Status.Used)
}
