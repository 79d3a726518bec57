package printers

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func podTemplateRow(t *corev1.PodTemplate, _ time.Time) []any {
	names, images := containerCells(t.Template.Spec.Containers)
	return []any{t.Name, names, images, labels.FormatLabels(t.Template.Labels)}
}

func replicationControllerRow(rc *corev1.ReplicationController, now time.Time) []any {
	var containers []corev1.Container
	if rc.Spec.Template != nil {
		containers = rc.Spec.Template.Spec.Containers
	}
	names, images := containerCells(containers)
	return []any{
		rc.Name,
		int64(derefInt32(rc.Spec.Replicas)),
		int64(rc.Status.Replicas),
		int64(rc.Status.ReadyReplicas),
		age(&rc.ObjectMeta, now),
		names, images,
		labels.FormatLabels(rc.Spec.Selector),
	}
}

func serviceRow(svc *corev1.Service, now time.Time) []any {
	clusterIP := none
	switch {
	case len(svc.Spec.ClusterIPs) > 0:
		clusterIP = svc.Spec.ClusterIPs[0]
	case svc.Spec.ClusterIP != "":
		// Defaulting copies clusterIP into clusterIPs on every read upstream;
		// honour objects that skipped it.
		clusterIP = svc.Spec.ClusterIP
	}
	ports := servicePorts(svc.Spec.Ports)
	return []any{
		svc.Name,
		string(svc.Spec.Type),
		clusterIP,
		serviceExternalIP(svc),
		orNone(ports),
		age(&svc.ObjectMeta, now),
		labels.FormatLabels(svc.Spec.Selector),
	}
}

// loadBalancerAddresses lists ingress points, IP preferred over hostname.
// The server always renders the wide form, so nothing is truncated here.
func loadBalancerAddresses(ips, hostnames []string) string {
	var out []string
	for i := range ips {
		out = append(out, firstNonEmpty(ips[i], hostnames[i]))
	}
	return sortedUnique(out)
}

func serviceLoadBalancer(st corev1.LoadBalancerStatus) string {
	ips := make([]string, len(st.Ingress))
	hosts := make([]string, len(st.Ingress))
	for i, in := range st.Ingress {
		ips[i], hosts[i] = in.IP, in.Hostname
	}
	return loadBalancerAddresses(ips, hosts)
}

func serviceExternalIP(svc *corev1.Service) string {
	// Presence of spec.externalIPs, not the joined text, decides the
	// placeholder; a list of empty strings prints as a blank cell upstream.
	external := strings.Join(svc.Spec.ExternalIPs, ",")
	hasExternal := len(svc.Spec.ExternalIPs) > 0
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if !hasExternal {
			return none
		}
		return external
	case corev1.ServiceTypeLoadBalancer:
		lb := serviceLoadBalancer(svc.Status.LoadBalancer)
		switch {
		case lb != "" && hasExternal:
			return lb + "," + external
		case hasExternal:
			return external
		case lb != "":
			return lb
		default:
			// Still waiting for the cloud provider to assign an address.
			return pending
		}
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return unknown
}

func servicePorts(ports []corev1.ServicePort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		if p.NodePort > 0 {
			parts[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			parts[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(parts, ",")
}

func endpointsRow(ep *corev1.Endpoints, now time.Time) []any {
	return []any{ep.Name, endpointsSummary(ep.Subsets), age(&ep.ObjectMeta, now)}
}

// endpointsSummary lists ready addresses (host:port per port, or bare IPs for
// port-less headless services), capped at three entries.
func endpointsSummary(subsets []corev1.EndpointSubset) string {
	if len(subsets) == 0 {
		return none
	}
	list := firstN{limit: 3}
	for _, ss := range subsets {
		if len(ss.Ports) == 0 {
			for _, a := range ss.Addresses {
				list.add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				list.add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return list.String()
}

func nodeRow(n *corev1.Node, now time.Time) []any {
	var status []string
	// Only the Ready condition feeds STATUS; other conditions are noise here.
	if c := lastNodeCondition(n.Status.Conditions, corev1.NodeReady); c != nil {
		if c.Status == corev1.ConditionTrue {
			status = append(status, string(c.Type))
		} else {
			status = append(status, "Not"+string(c.Type))
		}
	} else {
		status = append(status, "Unknown")
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}

	info := n.Status.NodeInfo
	orUnknown := func(s string) string {
		if s == "" {
			return unknown
		}
		return s
	}
	return []any{
		n.Name,
		strings.Join(status, ","),
		orNone(nodeRoles(n.Labels)),
		age(&n.ObjectMeta, now),
		info.KubeletVersion,
		nodeAddress(n, corev1.NodeInternalIP),
		nodeAddress(n, corev1.NodeExternalIP),
		orUnknown(info.OSImage),
		orUnknown(info.KernelVersion),
		orUnknown(info.ContainerRuntimeVersion),
	}
}

// lastNodeCondition returns the last condition of type t, matching upstream's
// map-based lookup where later duplicates win.
func lastNodeCondition(conds []corev1.NodeCondition, t corev1.NodeConditionType) *corev1.NodeCondition {
	var found *corev1.NodeCondition
	for i := range conds {
		if conds[i].Type == t {
			found = &conds[i]
		}
	}
	return found
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return none
}

const (
	nodeRoleLabelPrefix = "node-role.kubernetes.io/"
	legacyNodeRoleLabel = "kubernetes.io/role"
)

// nodeRoles understands both the node-role.kubernetes.io/<role> label
// convention and the older kubernetes.io/role=<role> one.
func nodeRoles(l map[string]string) string {
	var roles []string
	for k, v := range l {
		if role, ok := strings.CutPrefix(k, nodeRoleLabelPrefix); ok {
			roles = append(roles, role)
		} else if k == legacyNodeRoleLabel {
			roles = append(roles, v)
		}
	}
	return sortedUnique(roles)
}

func namespaceRow(ns *corev1.Namespace, now time.Time) []any {
	return []any{ns.Name, string(ns.Status.Phase), age(&ns.ObjectMeta, now)}
}

func secretRow(s *corev1.Secret, now time.Time) []any {
	// stringData is merged into data on write; count it too in case an
	// object reaches us before that happened.
	keys := len(s.Data)
	for k := range s.StringData {
		if _, dup := s.Data[k]; !dup {
			keys++
		}
	}
	return []any{s.Name, string(s.Type), int64(keys), age(&s.ObjectMeta, now)}
}

func serviceAccountRow(sa *corev1.ServiceAccount, now time.Time) []any {
	return []any{sa.Name, int64(len(sa.Secrets)), age(&sa.ObjectMeta, now)}
}

func configMapRow(cm *corev1.ConfigMap, now time.Time) []any {
	return []any{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), age(&cm.ObjectMeta, now)}
}

// betaStorageClassAnnotation predates spec.storageClassName and, when
// present, still overrides it for display.
const betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"

func persistentVolumeRow(pv *corev1.PersistentVolume, now time.Time) []any {
	claim := ""
	if ref := pv.Spec.ClaimRef; ref != nil {
		claim = ref.Namespace + "/" + ref.Name
	}
	phase := string(pv.Status.Phase)
	if pv.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	class := pv.Spec.StorageClassName
	if c, ok := pv.Annotations[betaStorageClassAnnotation]; ok {
		class = c
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	return []any{
		pv.Name,
		capacity.String(),
		accessModesShort(pv.Spec.AccessModes),
		string(pv.Spec.PersistentVolumeReclaimPolicy),
		phase,
		claim,
		class,
		stringPtrOr(pv.Spec.VolumeAttributesClassName, unset),
		pv.Status.Reason,
		age(&pv.ObjectMeta, now),
		volumeModeCell(pv.Spec.VolumeMode),
	}
}

func persistentVolumeClaimRow(pvc *corev1.PersistentVolumeClaim, now time.Time) []any {
	phase := string(pvc.Status.Phase)
	if pvc.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	// Capacity and access modes describe the bound volume, so they stay
	// blank until binding.
	capacity, modes := "", ""
	if pvc.Spec.VolumeName != "" {
		q := pvc.Status.Capacity[corev1.ResourceStorage]
		capacity = q.String()
		modes = accessModesShort(pvc.Status.AccessModes)
	}
	class := stringPtrOr(pvc.Spec.StorageClassName, "")
	if c, ok := pvc.Annotations[betaStorageClassAnnotation]; ok {
		class = c
	}
	return []any{
		pvc.Name,
		phase,
		pvc.Spec.VolumeName,
		capacity,
		modes,
		class,
		stringPtrOr(pvc.Spec.VolumeAttributesClassName, unset),
		age(&pvc.ObjectMeta, now),
		volumeModeCell(pvc.Spec.VolumeMode),
	}
}

func volumeModeCell(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return unset
	}
	return string(*m)
}

func stringPtrOr(p *string, fallback string) string {
	if p == nil {
		return fallback
	}
	return *p
}

func resourceQuotaRow(rq *corev1.ResourceQuota, now time.Time) []any {
	names := make([]string, 0, len(rq.Status.Hard))
	for n := range rq.Status.Hard {
		names = append(names, string(n))
	}
	sort.Strings(names)
	var requests, limits []string
	for _, n := range names {
		used := rq.Status.Used[corev1.ResourceName(n)]
		hard := rq.Status.Hard[corev1.ResourceName(n)]
		entry := fmt.Sprintf("%s: %s/%s", n, used.String(), hard.String())
		// "limits.cpu" style names go to LIMIT; everything else, including
		// "requests.cpu" and bare "cpu" or "pods", goes to REQUEST.
		if prefix, _, dotted := strings.Cut(n, "."); dotted && prefix == "limits" {
			limits = append(limits, entry)
		} else {
			requests = append(requests, entry)
		}
	}
	return []any{rq.Name, strings.Join(requests, ", "), strings.Join(limits, ", "), age(&rq.ObjectMeta, now)}
}
