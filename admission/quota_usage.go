package admission

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
)

// This file measures what objects consume of a ResourceQuota, resource by
// resource as upstream's quota evaluators do: object counts for every
// kind, compute resources of pods, node ports and load balancers of
// services, storage of claims.

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	claimsGR   = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

// quotaIgnored are never charged: virtual resources that are not stored,
// and events, which quota has never covered.
var quotaIgnored = map[schema.GroupResource]bool{
	{Resource: "bindings"}:                                                 true,
	{Resource: "componentstatuses"}:                                        true,
	{Resource: "events"}:                                                   true,
	{Group: "events.k8s.io", Resource: "events"}:                           true,
	{Group: "authentication.k8s.io", Resource: "tokenreviews"}:             true,
	{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}:       true,
	{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}:      true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}:  true,
	{Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"}: true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectrulesreviews"}:   true,
}

// legacyCountNames are the older, unprefixed object-count names some core
// kinds also answer to.
var legacyCountNames = map[schema.GroupResource]corev1.ResourceName{
	{Resource: "configmaps"}:             corev1.ResourceConfigMaps,
	{Resource: "resourcequotas"}:         corev1.ResourceQuotas,
	{Resource: "replicationcontrollers"}: corev1.ResourceReplicationControllers,
	{Resource: "secrets"}:                corev1.ResourceSecrets,
}

// countName is the object-count quota name of a resource.
func countName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// countedResource reverses countName and the legacy names: which resource
// a quota name counts, if it is an object count at all.
func countedResource(name corev1.ResourceName) (schema.GroupResource, bool) {
	for gr, legacy := range legacyCountNames {
		if name == legacy {
			return gr, true
		}
	}
	s, ok := strings.CutPrefix(string(name), "count/")
	if !ok || s == "" {
		return schema.GroupResource{}, false
	}
	res, group, _ := strings.Cut(s, ".")
	return schema.GroupResource{Group: group, Resource: res}, true
}

var podQuotaNames = []corev1.ResourceName{
	countName(podsGR), corev1.ResourcePods,
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
}

var serviceQuotaNames = []corev1.ResourceName{
	countName(servicesGR), corev1.ResourceServices, corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
}

const (
	storageClassSuffix        = ".storageclass.storage.k8s.io/"
	deviceClassResourcePrefix = "deviceclass.resource.kubernetes.io/"
)

// quotaNamesFor keeps the names among hard that the resource gr can use.
func quotaNamesFor(gr schema.GroupResource, hard []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range hard {
		if quotaNameConcerns(gr, n) {
			out = append(out, n)
		}
	}
	return out
}

func quotaNameConcerns(gr schema.GroupResource, n corev1.ResourceName) bool {
	switch gr {
	case podsGR:
		return slices.Contains(podQuotaNames, n) ||
			strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix) ||
			strings.HasPrefix(string(n), corev1.ResourceRequestsHugePagesPrefix) ||
			isExtendedQuotaName(n)
	case servicesGR:
		return slices.Contains(serviceQuotaNames, n)
	case claimsGR:
		return n == countName(claimsGR) || n == corev1.ResourcePersistentVolumeClaims || n == corev1.ResourceRequestsStorage ||
			strings.HasSuffix(string(n), storageClassSuffix+string(corev1.ResourcePersistentVolumeClaims)) ||
			strings.HasSuffix(string(n), storageClassSuffix+string(corev1.ResourceRequestsStorage))
	}
	return n == countName(gr) || (legacyCountNames[gr] != "" && n == legacyCountNames[gr])
}

// isNativeResource: unprefixed names and kubernetes.io/ ones belong to
// Kubernetes; anything else is an extended resource.
func isNativeResource(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), corev1.ResourceDefaultNamespacePrefix)
}

// isExtendedQuotaName: "requests.<extended resource>" quota names.
func isExtendedQuotaName(n corev1.ResourceName) bool {
	rest, ok := strings.CutPrefix(string(n), corev1.DefaultResourceRequestsPrefix)
	if !ok {
		return false
	}
	return !isNativeResource(corev1.ResourceName(rest)) || strings.HasPrefix(rest, deviceClassResourcePrefix)
}

// isExtendedResource: a resource a container may request that quota
// tracks as "requests.<name>".
func isExtendedResource(n corev1.ResourceName) bool {
	if strings.HasPrefix(string(n), deviceClassResourcePrefix) {
		return true
	}
	if isNativeResource(n) || strings.HasPrefix(string(n), corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+string(n))) == 0
}

// quotaUsage is what obj, an object of gr, consumes.
func quotaUsage(gr schema.GroupResource, obj runtime.Object, now time.Time) corev1.ResourceList {
	one := func() resource.Quantity { return *resource.NewQuantity(1, resource.DecimalSI) }
	switch o := obj.(type) {
	case *corev1.Pod:
		return podQuotaUsage(o, now)
	case *corev1.Service:
		return serviceQuotaUsage(o)
	case *corev1.PersistentVolumeClaim:
		return claimQuotaUsage(o)
	}
	out := corev1.ResourceList{countName(gr): one()}
	if legacy, ok := legacyCountNames[gr]; ok {
		out[legacy] = one()
	}
	return out
}

// podCountsCompute tells whether a pod still holds its compute resources:
// not once it has finished, nor after its deletion grace period ran out.
func podCountsCompute(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		end := pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)
		if now.After(end) {
			return false
		}
	}
	return true
}

func podQuotaUsage(pod *corev1.Pod, now time.Time) corev1.ResourceList {
	out := corev1.ResourceList{countName(podsGR): *resource.NewQuantity(1, resource.DecimalSI)}
	if !podCountsCompute(pod, now) {
		return out
	}
	requests := podTotal(pod, containerRequests, podLevelRequests(pod))
	limits := podTotal(pod, containerLimits, podLevelLimits(pod))
	// The runtime's own overhead is charged to the pod as well.
	for k, v := range pod.Spec.Overhead {
		if cur, ok := requests[k]; ok {
			cur.Add(v)
			requests[k] = cur
		} else {
			requests[k] = v.DeepCopy()
		}
		if cur, ok := limits[k]; ok && !cur.IsZero() {
			cur.Add(v)
			limits[k] = cur
		}
	}
	addResources(out, computeQuotaUsage(requests, limits))
	return out
}

// computeQuotaUsage maps requests and limits to quota names: the
// unprefixed names count requests, as do their requests.* twins.
func computeQuotaUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(1, resource.DecimalSI)}
	for _, r := range []struct{ plain, req, lim corev1.ResourceName }{
		{corev1.ResourceCPU, corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU},
		{corev1.ResourceMemory, corev1.ResourceRequestsMemory, corev1.ResourceLimitsMemory},
		{corev1.ResourceEphemeralStorage, corev1.ResourceRequestsEphemeralStorage, corev1.ResourceLimitsEphemeralStorage},
	} {
		if q, ok := requests[r.plain]; ok {
			out[r.plain] = q.DeepCopy()
			out[r.req] = q.DeepCopy()
		}
		if q, ok := limits[r.plain]; ok {
			out[r.lim] = q.DeepCopy()
		}
	}
	for k, q := range requests {
		if strings.HasPrefix(string(k), corev1.ResourceHugePagesPrefix) {
			out[k] = q.DeepCopy()
			out[corev1.DefaultResourceRequestsPrefix+k] = q.DeepCopy()
		} else if isExtendedResource(k) {
			out[corev1.DefaultResourceRequestsPrefix+k] = q.DeepCopy()
		}
	}
	return out
}

func serviceQuotaUsage(svc *corev1.Service) corev1.ResourceList {
	n := func(v int) resource.Quantity { return *resource.NewQuantity(int64(v), resource.DecimalSI) }
	out := corev1.ResourceList{
		countName(servicesGR):                n(1),
		corev1.ResourceServices:              n(1),
		corev1.ResourceServicesNodePorts:     n(0),
		corev1.ResourceServicesLoadBalancers: n(0),
	}
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		out[corev1.ResourceServicesNodePorts] = n(len(svc.Spec.Ports))
	case corev1.ServiceTypeLoadBalancer:
		ports := len(svc.Spec.Ports)
		// A load balancer that allocates no node ports uses only those
		// its ports name explicitly.
		if svc.Spec.AllocateLoadBalancerNodePorts != nil && !*svc.Spec.AllocateLoadBalancerNodePorts {
			ports = 0
			for _, p := range svc.Spec.Ports {
				if p.NodePort != 0 {
					ports++
				}
			}
		}
		out[corev1.ResourceServicesNodePorts] = n(ports)
		out[corev1.ResourceServicesLoadBalancers] = n(1)
	}
	return out
}

// claimStorageClass reads a claim's class, from the field or the older
// annotation.
func claimStorageClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

func claimQuotaUsage(pvc *corev1.PersistentVolumeClaim) corev1.ResourceList {
	one := *resource.NewQuantity(1, resource.DecimalSI)
	out := corev1.ResourceList{corev1.ResourcePersistentVolumeClaims: one, countName(claimsGR): one}
	class := claimStorageClass(pvc)
	if class != "" {
		out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourcePersistentVolumeClaims))] = one
	}
	req, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return out
	}
	storage := req.DeepCopy()
	storage.RoundUp(0)
	// An expansion that failed leaves more allocated than now requested:
	// the larger is what the volume holds.
	if alloc, ok := pvc.Status.AllocatedResources[corev1.ResourceStorage]; ok && alloc.Cmp(storage) > 0 {
		storage = alloc.DeepCopy()
		storage.RoundUp(0)
	}
	out[corev1.ResourceRequestsStorage] = storage
	if class != "" {
		out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourceRequestsStorage))] = storage.DeepCopy()
	}
	return out
}

// quotaScopes lists a quota's scopes as selector requirements: plain
// scopes mean "Exists".
func quotaScopes(q *corev1.ResourceQuota) []corev1.ScopedResourceSelectorRequirement {
	var out []corev1.ScopedResourceSelectorRequirement
	for _, s := range q.Spec.Scopes {
		out = append(out, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		out = append(out, q.Spec.ScopeSelector.MatchExpressions...)
	}
	return out
}

// quotaMatches tells whether a quota applies to obj: it limits a resource
// obj uses, and obj is within every one of its scopes.
func quotaMatches(q *corev1.ResourceQuota, gr schema.GroupResource, obj runtime.Object) (bool, error) {
	if len(quotaNamesFor(gr, sortedNames(q.Spec.Hard))) == 0 {
		return false, nil
	}
	return inScopes(quotaScopes(q), obj)
}

func inScopes(scopes []corev1.ScopedResourceSelectorRequirement, obj runtime.Object) (bool, error) {
	for _, s := range scopes {
		ok, err := inScope(s, obj)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// inScope: only pods (and claims, for volume attributes classes) have
// scopes; every other kind is outside all of them.
func inScope(s corev1.ScopedResourceSelectorRequirement, obj runtime.Object) (bool, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		switch s.ScopeName {
		case corev1.ResourceQuotaScopeTerminating:
			return podTerminating(o), nil
		case corev1.ResourceQuotaScopeNotTerminating:
			return !podTerminating(o), nil
		case corev1.ResourceQuotaScopeBestEffort:
			return podBestEffort(o), nil
		case corev1.ResourceQuotaScopeNotBestEffort:
			return !podBestEffort(o), nil
		case corev1.ResourceQuotaScopePriorityClass:
			if s.Operator == corev1.ScopeSelectorOpExists {
				return o.Spec.PriorityClassName != "", nil
			}
			var set labels.Set
			if o.Spec.PriorityClassName != "" {
				set = labels.Set{string(s.ScopeName): o.Spec.PriorityClassName}
			}
			return scopeSelectorMatches(s, set)
		case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			return podCrossNamespaceAffinity(o), nil
		}
	case *corev1.PersistentVolumeClaim:
		if s.ScopeName != corev1.ResourceQuotaScopeVolumeAttributesClass {
			return false, nil
		}
		classes := claimAttributeClasses(o)
		if s.Operator == corev1.ScopeSelectorOpExists {
			return len(classes) > 0, nil
		}
		if len(classes) == 0 {
			return scopeSelectorMatches(s, labels.Set{})
		}
		for _, c := range classes {
			if ok, err := scopeSelectorMatches(s, labels.Set{string(s.ScopeName): c}); err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

func scopeSelectorMatches(s corev1.ScopedResourceSelectorRequirement, set labels.Set) (bool, error) {
	var op selection.Operator
	switch s.Operator {
	case corev1.ScopeSelectorOpIn:
		op = selection.In
	case corev1.ScopeSelectorOpNotIn:
		op = selection.NotIn
	case corev1.ScopeSelectorOpExists:
		op = selection.Exists
	case corev1.ScopeSelectorOpDoesNotExist:
		op = selection.DoesNotExist
	default:
		return false, fmt.Errorf("%q is not a valid scope selector operator", s.Operator)
	}
	req, err := labels.NewRequirement(string(s.ScopeName), op, s.Values)
	if err != nil {
		return false, fmt.Errorf("failed to parse and convert selector: %v", err)
	}
	return labels.NewSelector().Add(*req).Matches(set), nil
}

func claimAttributeClasses(pvc *corev1.PersistentVolumeClaim) []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if pvc.Spec.VolumeAttributesClassName != nil {
		add(*pvc.Spec.VolumeAttributesClassName)
	}
	if pvc.Status.CurrentVolumeAttributesClassName != nil {
		add(*pvc.Status.CurrentVolumeAttributesClassName)
	}
	if pvc.Status.ModifyVolumeStatus != nil {
		add(pvc.Status.ModifyVolumeStatus.TargetVolumeAttributesClassName)
	}
	return out
}

// podTerminating: a pod with a deadline ends by itself.
func podTerminating(pod *corev1.Pod) bool {
	return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0
}

// podBestEffort: no container (nor the pod) asks for or is limited in cpu
// or memory, the resources QoS classes are made of.
func podBestEffort(pod *corev1.Pod) bool {
	positive := func(l corev1.ResourceList) bool {
		for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := l[n]; ok && q.Sign() > 0 {
				return true
			}
		}
		return false
	}
	if positive(podLevelRequests(pod)) || positive(podLevelLimits(pod)) {
		return false
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if positive(cs[i].Resources.Requests) || positive(cs[i].Resources.Limits) {
				return false
			}
		}
	}
	return true
}

func podCrossNamespaceAffinity(pod *corev1.Pod) bool {
	if pod.Spec.Affinity == nil {
		return false
	}
	cross := func(t *corev1.PodAffinityTerm) bool { return len(t.Namespaces) > 0 || t.NamespaceSelector != nil }
	check := func(req []corev1.PodAffinityTerm, pref []corev1.WeightedPodAffinityTerm) bool {
		for i := range req {
			if cross(&req[i]) {
				return true
			}
		}
		for i := range pref {
			if cross(&pref[i].PodAffinityTerm) {
				return true
			}
		}
		return false
	}
	if a := pod.Spec.Affinity.PodAffinity; a != nil &&
		check(a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	if a := pod.Spec.Affinity.PodAntiAffinity; a != nil &&
		check(a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	return false
}

// podQuotaConstraints: a quota on cpu or memory requests or limits needs
// every container to state them, or the sum would mean nothing.
func podQuotaConstraints(pod *corev1.Pod, limited []corev1.ResourceName) error {
	if pod.Spec.Resources != nil && (len(pod.Spec.Resources.Requests) > 0 || len(pod.Spec.Resources.Limits) > 0) {
		return nil // the pod-level values are what is charged
	}
	var required []corev1.ResourceName
	for _, n := range limited {
		switch n {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
			corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory:
			required = append(required, n)
		}
	}
	if len(required) == 0 {
		return nil
	}
	missing := map[corev1.ResourceName][]string{}
	check := func(c *corev1.Container) {
		usage := computeQuotaUsage(containerRequests(c), c.Resources.Limits)
		for _, n := range required {
			if _, ok := usage[n]; !ok && !slices.Contains(missing[n], c.Name) {
				missing[n] = append(missing[n], c.Name)
			}
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		check(&pod.Spec.InitContainers[i])
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]corev1.ResourceName, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		slices.Sort(missing[n])
		parts[i] = fmt.Sprintf("%s for: %s", n, strings.Join(missing[n], ","))
	}
	return fmt.Errorf("must specify %s", strings.Join(parts, "; "))
}

// Arithmetic on resource lists, with upstream's quota semantics.

func addUsage(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	addResources(out, a)
	addResources(out, b)
	return out
}

// subtractFloor is a-b per resource of a, never below zero.
func subtractFloor(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range a {
		q := v.DeepCopy()
		if o, ok := b[k]; ok {
			q.Sub(o)
		}
		if q.Sign() < 0 {
			q = *resource.NewQuantity(0, q.Format)
		}
		out[k] = q
	}
	return out
}

func maskUsage(l corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, n := range names {
		if q, ok := l[n]; ok {
			out[n] = q.DeepCopy()
		}
	}
	return out
}

func withoutZeros(l corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range l {
		if !v.IsZero() {
			out[k] = v
		}
	}
	return out
}

func negativeUsage(l corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for k, v := range l {
		if v.Sign() < 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// exceeding lists the names whose usage is above hard.
func exceeding(usage, hard corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for k, h := range hard {
		if u, ok := usage[k]; ok && u.Cmp(h) > 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func usageEqual(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		o, ok := b[k]
		if !ok || v.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

// prettyUsage prints "a=1,b=2" sorted by name, as quota messages do.
func prettyUsage(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for _, k := range sortedNames(l) {
		q := l[k]
		parts = append(parts, string(k)+"="+q.String())
	}
	return strings.Join(parts, ",")
}

func joinNames(names []corev1.ResourceName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}
