package registry

import (
	"bytes"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// semanticValidators are the built-in kinds' rules beyond their schemas,
// by Kind, as kube-apiserver checks them; old is nil on create.
//
// They run after defaulting, but a field that defaulting would fill is
// accepted when empty too: an empty value is exactly what defaulting
// replaces, so the outcome is upstream's either way, and a gap in the
// defaulters never turns into a rejected object.
func semanticValidators() map[string]func(obj, old runtime.Object) field.ErrorList {
	return map[string]func(obj, old runtime.Object) field.ErrorList{
		"Pod":                     validatePodObject,
		"PodTemplate":             validatePodTemplateObject,
		"ReplicationController":   validateReplicationController,
		"Service":                 validateService,
		"Namespace":               validateNamespace,
		"ConfigMap":               validateConfigMap,
		"Secret":                  validateSecret,
		"ResourceQuota":           validateResourceQuota,
		"LimitRange":              validateLimitRange,
		"Deployment":              validateDeployment,
		"ReplicaSet":              validateReplicaSet,
		"StatefulSet":             validateStatefulSet,
		"DaemonSet":               validateDaemonSet,
		"Job":                     validateJob,
		"CronJob":                 validateCronJob,
		"Role":                    validateRole,
		"ClusterRole":             validateClusterRole,
		"RoleBinding":             validateRoleBinding,
		"ClusterRoleBinding":      validateClusterRoleBinding,
		"Ingress":                 validateIngress,
		"NetworkPolicy":           validateNetworkPolicy,
		"PodDisruptionBudget":     validatePodDisruptionBudget,
		"HorizontalPodAutoscaler": validateHPA,
		"PriorityClass":           validatePriorityClass,
		"StorageClass":            validateStorageClass,
		"Lease":                   validateLease,
		"EndpointSlice":           validateEndpointSlice,

		"MutatingWebhookConfiguration":     validateMutatingWebhookConfiguration,
		"ValidatingWebhookConfiguration":   validateValidatingWebhookConfiguration,
		"ValidatingAdmissionPolicy":        validateValidatingAdmissionPolicy,
		"ValidatingAdmissionPolicyBinding": validateValidatingAdmissionPolicyBinding,
		"CustomResourceDefinition":         validateCRD,
	}
}

// specUnchanged reports an update that leaves the spec alone: a status
// write, a finalizer or label change. Such writes are not re-judged, so an
// object stored before a rule existed can still be finished or deleted.
func specUnchanged(newSpec, oldSpec wireEncoded, old runtime.Object) bool {
	return old != nil && sameEncoding(newSpec, oldSpec)
}

// wireEncoded is what the API types' generated protobuf code provides.
type wireEncoded interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

var encodeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// sameEncoding compares two values by their protobuf encodings: map
// order and nil versus empty do not matter there, as for the semantic
// comparison, at a fraction of the cost of a reflective one, which every
// status write would otherwise pay. Where it is stricter (a quantity
// spelled "1Gi" one time and in bytes the next) the update is merely
// judged in full.
func sameEncoding(a, b wireEncoded) bool {
	n := a.Size()
	if b.Size() != n {
		return false
	}
	bp := encodeBuffers.Get().(*[]byte)
	defer encodeBuffers.Put(bp)
	if cap(*bp) < 2*n {
		*bp = make([]byte, 2*n)
	}
	buf := (*bp)[:2*n]
	if _, err := a.MarshalToSizedBuffer(buf[:n]); err != nil {
		return equality.Semantic.DeepEqual(a, b)
	}
	if _, err := b.MarshalToSizedBuffer(buf[n:]); err != nil {
		return equality.Semantic.DeepEqual(a, b)
	}
	return bytes.Equal(buf[:n], buf[n:])
}

// Messages upstream shares between kinds.
const (
	isNegativeErrorMsg     = apivalidation.IsNegativeErrorMsg
	isNotIntegerErrorMsg   = "must be an integer"
	isInvalidQuotaResource = "must be a standard resource for quota"
	selectorMismatchMsg    = "`selector` does not match template `labels`"
)

func nonNegative(v int64, p *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(v, p)
}

func dns1123Label(v string, p *field.Path) field.ErrorList {
	if fastDNSLabel(v) {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func dns1123Subdomain(v string, p *field.Path) field.ErrorList {
	if fastDNSSubdomain(v) {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func qualifiedName(v string, p *field.Path) field.ErrorList {
	if fastLabelKey(v) {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

// nameMessages turns a name rule's messages into Invalid errors.
func nameMessages(msgs []string, v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

// portNumOrName checks an int-or-string port: a number in range or an
// IANA service name.
func portNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.String {
		for _, msg := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(p, port.StrVal, msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortNum(port.IntValue()) {
		errs = append(errs, field.Invalid(p, port.IntValue(), msg))
	}
	return errs
}

var validProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

// protocol checks a port protocol; empty defaults to TCP.
func protocol(v corev1.Protocol, p *field.Path) field.ErrorList {
	switch v {
	case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, v, validProtocols)}
}

// labelSelector validates a selector strictly, as workloads do.
func labelSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	if s == nil || len(s.MatchExpressions) == 0 && labelsOK(s.MatchLabels) {
		return nil
	}
	return metavalidation.ValidateLabelSelector(s, metavalidation.LabelSelectorValidationOptions{}, p)
}

// sortedKeysInto is sortedKeys into a caller's buffer.
func sortedKeysInto[V any](buf []corev1.ResourceName, m map[corev1.ResourceName]V) []corev1.ResourceName {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// sortedKeys gives map keys in order, so errors come out the same way on
// every run.
func sortedKeys[V any](m map[corev1.ResourceName]V) []corev1.ResourceName {
	keys := make([]corev1.ResourceName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) > 1 {
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	}
	return keys
}

func sortedStringKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) > 1 {
		sort.Strings(keys)
	}
	return keys
}

// Resource names and quantities, as upstream's core helpers classify them.

const (
	hugePagesPrefix    = "hugepages-"
	requestsHugePrefix = "requests.hugepages-"
	requestsPrefix     = "requests."
	defaultNSPrefix    = "kubernetes.io/"
)

var standardResources = map[corev1.ResourceName]bool{
	"cpu": true, "memory": true, "ephemeral-storage": true,
	"requests.cpu": true, "requests.memory": true, "requests.ephemeral-storage": true,
	"limits.cpu": true, "limits.memory": true, "limits.ephemeral-storage": true,
	"pods": true, "resourcequotas": true, "services": true, "replicationcontrollers": true,
	"secrets": true, "configmaps": true, "persistentvolumeclaims": true, "storage": true,
	"requests.storage": true, "services.nodeports": true, "services.loadbalancers": true,
}

// integerResources are counted, not measured.
var integerResources = map[corev1.ResourceName]bool{
	"pods": true, "resourcequotas": true, "services": true, "replicationcontrollers": true,
	"secrets": true, "configmaps": true, "persistentvolumeclaims": true,
	"services.nodeports": true, "services.loadbalancers": true,
}

func isHugePages(n corev1.ResourceName) bool { return strings.HasPrefix(string(n), hugePagesPrefix) }

func isQuotaHugePages(n corev1.ResourceName) bool {
	return isHugePages(n) || strings.HasPrefix(string(n), requestsHugePrefix)
}

// isNativeResource: unprefixed names and *kubernetes.io/ ones belong to
// Kubernetes itself.
func isNativeResource(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), defaultNSPrefix)
}

func isExtendedResource(n corev1.ResourceName) bool {
	if isNativeResource(n) || strings.HasPrefix(string(n), requestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(requestsPrefix+string(n))) == 0
}

func overcommitAllowed(n corev1.ResourceName) bool { return isNativeResource(n) && !isHugePages(n) }

func isIntegerResource(n corev1.ResourceName) bool {
	return integerResources[n] || isExtendedResource(n)
}

func resourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(string(n)) {
		errs = append(errs, field.Invalid(p, n, msg))
	}
	if len(errs) > 0 {
		return errs
	}
	if !strings.Contains(string(n), "/") && !standardResources[n] && !isQuotaHugePages(n) {
		return field.ErrorList{field.Invalid(p, n, "must be a standard resource type or fully qualified")}
	}
	return nil
}

func containerResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := resourceName(n, p)
	if !strings.Contains(string(n), "/") {
		switch {
		case n == corev1.ResourceCPU || n == corev1.ResourceMemory || n == corev1.ResourceEphemeralStorage || isHugePages(n):
		default:
			errs = append(errs, field.Invalid(p, n, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(n) && !isExtendedResource(n) {
		errs = append(errs, field.Invalid(p, n, "doesn't follow extended resource name standard"))
	}
	return errs
}

// isStandardQuotaResource: what the quota system tracks (storage itself is
// only requested, never counted).
func isStandardQuotaResource(n corev1.ResourceName) bool {
	return (standardResources[n] && n != corev1.ResourceStorage) || isQuotaHugePages(n)
}

func quotaResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := resourceName(n, p)
	if !strings.Contains(string(n), "/") && !isStandardQuotaResource(n) {
		errs = append(errs, field.Invalid(p, n, isInvalidQuotaResource))
	}
	return errs
}

// quantityValue: quantities are never negative, and counted resources are
// whole numbers.
func quantityValue(n corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), isNegativeErrorMsg))
	}
	if isIntegerResource(n) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(p, q, isNotIntegerErrorMsg))
	}
	return errs
}

// Deployment and friends express surge and unavailability as a count or
// a percentage.

func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	return v.IntValue()
}

func positiveIntOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	case intstr.Int:
		errs = append(errs, nonNegative(int64(v.IntValue()), p)...)
	default:
		errs = append(errs, field.Invalid(p, v, "must be an integer or percentage (e.g '5%%')"))
	}
	return errs
}

// intOrPercentOK: a non-negative count or a well-formed percentage.
func intOrPercentOK(v intstr.IntOrString) bool {
	if v.Type == intstr.Int {
		return v.IntVal >= 0
	}
	s := v.StrVal
	if len(s) < 2 || s[len(s)-1] != '%' {
		return false
	}
	for i := 0; i < len(s)-1; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func notMoreThan100Percent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if n, ok := percentValue(v); ok && n > 100 {
		return field.ErrorList{field.Invalid(p, v, "must not be greater than 100%")}
	}
	return nil
}
