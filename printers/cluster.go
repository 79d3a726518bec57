package printers

import (
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventView is the common shape of core/v1 and events.k8s.io/v1 events:
// both are stored as one internal type upstream and printed identically.
type eventView struct {
	name, eventType, reason, message string
	regarding                        corev1.ObjectReference
	source                           corev1.EventSource
	reportingController              string
	reportingInstance                string
	firstTimestamp, lastTimestamp    metav1.Time
	eventTime                        metav1.MicroTime
	count                            int32
	seriesCount                      int32
	seriesLast                       metav1.MicroTime
	isSeries                         bool
}

func coreEventRow(e *corev1.Event, now time.Time) []any {
	v := eventView{
		name: e.Name, eventType: e.Type, reason: e.Reason, message: e.Message,
		regarding: e.InvolvedObject, source: e.Source,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		firstTimestamp: e.FirstTimestamp, lastTimestamp: e.LastTimestamp, eventTime: e.EventTime,
		count: e.Count,
	}
	if e.Series != nil {
		v.isSeries, v.seriesCount, v.seriesLast = true, e.Series.Count, e.Series.LastObservedTime
	}
	return v.row(now)
}

func eventsV1Row(e *eventsv1.Event, now time.Time) []any {
	v := eventView{
		name: e.Name, eventType: e.Type, reason: e.Reason, message: e.Note,
		regarding: e.Regarding, source: e.DeprecatedSource,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		firstTimestamp: e.DeprecatedFirstTimestamp, lastTimestamp: e.DeprecatedLastTimestamp, eventTime: e.EventTime,
		count: e.DeprecatedCount,
	}
	if e.Series != nil {
		v.isSeries, v.seriesCount, v.seriesLast = true, e.Series.Count, e.Series.LastObservedTime
	}
	return v.row(now)
}

func (e eventView) row(now time.Time) []any {
	// Events written through events.k8s.io only carry eventTime (and a
	// series for repeats); the deprecated timestamps fill in for old clients.
	first := since(e.firstTimestamp, now)
	if e.firstTimestamp.IsZero() {
		first = sinceMicro(e.eventTime, now)
	}
	last := first
	if !e.lastTimestamp.IsZero() {
		last = since(e.lastTimestamp, now)
	}
	count := e.count
	switch {
	case e.isSeries:
		last = sinceMicro(e.seriesLast, now)
		count = e.seriesCount
	case count == 0:
		count = 1
	}

	object := strings.ToLower(e.regarding.Kind)
	if e.regarding.Name != "" {
		object += "/" + e.regarding.Name
	}
	source := firstNonEmpty(e.source.Component, e.reportingController)
	if host := firstNonEmpty(e.source.Host, e.reportingInstance); host != "" {
		source += ", " + host
	}
	return []any{
		last,
		e.eventType,
		e.reason,
		object,
		e.regarding.FieldPath,
		source,
		strings.TrimSpace(e.message),
		first,
		int64(count),
		e.name,
	}
}

func leaseRow(l *coordinationv1.Lease, now time.Time) []any {
	return []any{l.Name, stringPtrOr(l.Spec.HolderIdentity, ""), age(&l.ObjectMeta, now)}
}

func endpointSliceRow(es *discoveryv1.EndpointSlice, now time.Time) []any {
	ports := firstN{limit: 3}
	for _, p := range es.Ports {
		switch {
		case p.Port != nil:
			ports.add(strconv.Itoa(int(*p.Port)))
		case p.Name != nil:
			ports.add(*p.Name)
		default:
			// A port-less entry means "all ports".
			ports.add("*")
		}
	}
	addrs := firstN{limit: 3}
	for _, ep := range es.Endpoints {
		for _, a := range ep.Addresses {
			addrs.add(a)
		}
	}
	return []any{
		es.Name,
		string(es.AddressType),
		orUnset(ports.String()),
		orUnset(addrs.String()),
		age(&es.ObjectMeta, now),
	}
}

func ingressRow(ing *networkingv1.Ingress, now time.Time) []any {
	ips := make([]string, len(ing.Status.LoadBalancer.Ingress))
	hosts := make([]string, len(ing.Status.LoadBalancer.Ingress))
	for i, in := range ing.Status.LoadBalancer.Ingress {
		ips[i], hosts[i] = in.IP, in.Hostname
	}
	ports := "80"
	if len(ing.Spec.TLS) > 0 {
		ports = "80, 443"
	}
	return []any{
		ing.Name,
		stringPtrOr(ing.Spec.IngressClassName, none),
		ingressHosts(ing.Spec.Rules),
		loadBalancerAddresses(ips, hosts),
		ports,
		age(&ing.ObjectMeta, now),
	}
}

// ingressHosts shows up to three rule hosts, "*" when no rule names one.
// The overflow count is taken over all rules, hostless ones included, as
// upstream does.
func ingressHosts(rules []networkingv1.IngressRule) string {
	const shown = 3
	var hosts []string
	more := false
	for _, r := range rules {
		if len(hosts) == shown {
			more = true
			break
		}
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	if len(hosts) == 0 {
		return "*"
	}
	s := strings.Join(hosts, ",")
	if more {
		s += " + " + strconv.Itoa(len(rules)-shown) + " more..."
	}
	return s
}

func ingressClassRow(ic *networkingv1.IngressClass, now time.Time) []any {
	params := none
	if p := ic.Spec.Parameters; p != nil {
		params = p.Kind
		if p.APIGroup != nil {
			params += "." + *p.APIGroup
		}
		params += "/" + p.Name
	}
	// kube-apiserver 1.33 does not yet mark the default class with "(default)".
	return []any{ic.Name, ic.Spec.Controller, params, age(&ic.ObjectMeta, now)}
}

func networkPolicyRow(np *networkingv1.NetworkPolicy, now time.Time) []any {
	return []any{np.Name, metav1.FormatLabelSelector(&np.Spec.PodSelector), age(&np.ObjectMeta, now)}
}

func podDisruptionBudgetRow(pdb *policyv1.PodDisruptionBudget, now time.Time) []any {
	minAvailable, maxUnavailable := "N/A", "N/A"
	if v := pdb.Spec.MinAvailable; v != nil {
		minAvailable = v.String()
	}
	if v := pdb.Spec.MaxUnavailable; v != nil {
		maxUnavailable = v.String()
	}
	return []any{pdb.Name, minAvailable, maxUnavailable, int64(pdb.Status.DisruptionsAllowed), age(&pdb.ObjectMeta, now)}
}

func bindingRow(meta *metav1.ObjectMeta, ref rbacv1.RoleRef, subjects []rbacv1.Subject, now time.Time) []any {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return []any{
		meta.Name,
		ref.Kind + "/" + ref.Name,
		age(meta, now),
		strings.Join(users, ", "),
		strings.Join(groups, ", "),
		strings.Join(sas, ", "),
	}
}

func roleBindingRow(rb *rbacv1.RoleBinding, now time.Time) []any {
	return bindingRow(&rb.ObjectMeta, rb.RoleRef, rb.Subjects, now)
}

func clusterRoleBindingRow(crb *rbacv1.ClusterRoleBinding, now time.Time) []any {
	return bindingRow(&crb.ObjectMeta, crb.RoleRef, crb.Subjects, now)
}

// Either annotation marks a default StorageClass; the beta one is still honoured.
var defaultStorageClassAnnotations = []string{
	"storageclass.kubernetes.io/is-default-class",
	"storageclass.beta.kubernetes.io/is-default-class",
}

func storageClassRow(sc *storagev1.StorageClass, now time.Time) []any {
	name := sc.Name
	// 1.33 judges each class on its own; later releases only flag the
	// newest of several defaults, which needs the whole list.
	for _, a := range defaultStorageClassAnnotations {
		if sc.Annotations[a] == "true" {
			name += " (default)"
			break
		}
	}
	reclaim := string(corev1.PersistentVolumeReclaimDelete)
	if sc.ReclaimPolicy != nil {
		reclaim = string(*sc.ReclaimPolicy)
	}
	binding := string(storagev1.VolumeBindingImmediate)
	if sc.VolumeBindingMode != nil {
		binding = string(*sc.VolumeBindingMode)
	}
	expand := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
	return []any{name, sc.Provisioner, reclaim, binding, expand, age(&sc.ObjectMeta, now)}
}

func priorityClassRow(pc *schedulingv1.PriorityClass, now time.Time) []any {
	policy := ""
	if pc.PreemptionPolicy != nil {
		policy = string(*pc.PreemptionPolicy)
	}
	return []any{pc.Name, int64(pc.Value), pc.GlobalDefault, age(&pc.ObjectMeta, now), policy}
}

func runtimeClassRow(rc *nodev1.RuntimeClass, now time.Time) []any {
	return []any{rc.Name, rc.Handler, age(&rc.ObjectMeta, now)}
}
