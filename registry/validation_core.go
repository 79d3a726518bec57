package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxObjectDataSize bounds a ConfigMap's or Secret's payload.
const maxObjectDataSize = corev1.MaxSecretSize

func validateNamespace(obj, old runtime.Object) field.ErrorList {
	ns := obj.(*corev1.Namespace)
	var errs field.ErrorList
	p := field.NewPath("spec", "finalizers")
	for _, f := range ns.Spec.Finalizers {
		errs = append(errs, finalizerName(string(f), p)...)
	}
	return errs
}

// finalizerName: a qualified name, and unprefixed only for the
// finalizers Kubernetes defines.
func finalizerName(f string, p *field.Path) field.ErrorList {
	errs := apivalidation.ValidateFinalizerName(f, p)
	if !strings.Contains(f, "/") {
		switch f {
		case string(corev1.FinalizerKubernetes), metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents:
		default:
			errs = append(errs, field.Invalid(p, f, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

func validateConfigMap(obj, old runtime.Object) field.ErrorList {
	cm := obj.(*corev1.ConfigMap)
	var errs field.ErrorList
	size := 0
	dp := field.NewPath("data")
	for _, k := range sortedStringKeys(cm.Data) {
		if !fastConfigKey(k) {
			errs = append(errs, nameMessages(validation.IsConfigMapKey(k), k, dp.Key(k))...)
		}
		if _, dup := cm.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(dp.Key(k), k, "duplicate of key present in binaryData"))
		}
		size += len(cm.Data[k])
	}
	bp := field.NewPath("binaryData")
	for _, k := range sortedStringKeys(cm.BinaryData) {
		if !fastConfigKey(k) {
			errs = append(errs, nameMessages(validation.IsConfigMapKey(k), k, bp.Key(k))...)
		}
		size += len(cm.BinaryData[k])
	}
	if size > maxObjectDataSize {
		// The empty path: the error is about the whole object.
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxObjectDataSize))
	}
	return errs
}

func validateSecret(obj, old runtime.Object) field.ErrorList {
	sec := obj.(*corev1.Secret)
	var errs field.ErrorList
	dp := field.NewPath("data")
	size := 0
	for _, k := range sortedStringKeys(sec.Data) {
		if !fastConfigKey(k) {
			errs = append(errs, nameMessages(validation.IsConfigMapKey(k), k, dp.Key(k))...)
		}
		size += len(sec.Data[k])
	}
	if size > maxObjectDataSize {
		errs = append(errs, field.TooLong(dp, "", maxObjectDataSize))
	}
	jsonKey := func(key string) {
		b, ok := sec.Data[key]
		if !ok {
			errs = append(errs, field.Required(dp.Key(key), ""))
			return
		}
		if err := json.Unmarshal(b, &map[string]any{}); err != nil {
			errs = append(errs, field.Invalid(dp.Key(key), "<secret contents redacted>", err.Error()))
		}
	}
	switch sec.Type {
	case corev1.SecretTypeServiceAccountToken:
		// The token itself is added later by a controller.
		if sec.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		jsonKey(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		jsonKey(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, user := sec.Data[corev1.BasicAuthUsernameKey]
		_, pass := sec.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			errs = append(errs, field.Required(dp.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dp.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(sec.Data[corev1.SSHAuthPrivateKey]) == 0 {
			errs = append(errs, field.Required(dp.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		if _, ok := sec.Data[corev1.TLSCertKey]; !ok {
			errs = append(errs, field.Required(dp.Key(corev1.TLSCertKey), ""))
		}
		if _, ok := sec.Data[corev1.TLSPrivateKeyKey]; !ok {
			errs = append(errs, field.Required(dp.Key(corev1.TLSPrivateKeyKey), ""))
		}
	}
	return errs
}

var quotaScopes = []corev1.ResourceQuotaScope{
	corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeBestEffort,
	corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity,
	corev1.ResourceQuotaScopeVolumeAttributesClass,
}

func validateResourceQuota(obj, old runtime.Object) field.ErrorList {
	q := obj.(*corev1.ResourceQuota)
	if old != nil && specUnchanged(&q.Spec, &old.(*corev1.ResourceQuota).Spec, old) {
		return nil
	}
	p := field.NewPath("spec")
	var errs field.ErrorList
	hp := p.Child("hard")
	for _, n := range sortedKeys(q.Spec.Hard) {
		rp := hp.Key(string(n))
		errs = append(errs, quotaResourceName(n, rp)...)
		errs = append(errs, quantityValue(n, q.Spec.Hard[n], rp)...)
	}
	errs = append(errs, validateQuotaScopes(&q.Spec, p)...)
	return errs
}

// validateQuotaScopes: scopes are known, fit the resources limited and
// do not contradict one another; the scope selector likewise.
func validateQuotaScopes(s *corev1.ResourceQuotaSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	hard := sortedKeys(s.Hard)
	conflicts := func(set map[corev1.ResourceQuotaScope]bool, fp *field.Path) {
		if set[corev1.ResourceQuotaScopeBestEffort] && set[corev1.ResourceQuotaScopeNotBestEffort] {
			errs = append(errs, field.Invalid(fp, s.Scopes, "conflicting scopes"))
		}
		if set[corev1.ResourceQuotaScopeTerminating] && set[corev1.ResourceQuotaScopeNotTerminating] {
			errs = append(errs, field.Invalid(fp, s.Scopes, "conflicting scopes"))
		}
	}
	if len(s.Scopes) > 0 {
		sp := p.Child("scopes")
		set := map[corev1.ResourceQuotaScope]bool{}
		for _, sc := range s.Scopes {
			if !knownQuotaScope(sc) {
				errs = append(errs, field.Invalid(sp, s.Scopes, "unsupported scope"))
			}
			for _, n := range hard {
				if isStandardQuotaResource(n) && !scopeAppliesTo(sc, n) {
					errs = append(errs, field.Invalid(sp, s.Scopes, "unsupported scope applied to resource"))
				}
			}
			set[sc] = true
		}
		conflicts(set, sp)
	}
	if s.ScopeSelector == nil {
		return errs
	}
	mp := p.Child("scopeSelector", "matchExpressions")
	set := map[corev1.ResourceQuotaScope]bool{}
	for _, r := range s.ScopeSelector.MatchExpressions {
		if !knownQuotaScope(r.ScopeName) {
			errs = append(errs, field.Invalid(mp.Child("scopeName"), r.ScopeName, "unsupported scope"))
		}
		for _, n := range hard {
			if isStandardQuotaResource(n) && !scopeAppliesTo(r.ScopeName, n) {
				errs = append(errs, field.Invalid(mp, s.ScopeSelector, "unsupported scope applied to resource"))
			}
		}
		switch r.ScopeName {
		case corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopeTerminating,
			corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			if r.Operator != corev1.ScopeSelectorOpExists {
				errs = append(errs, field.Invalid(mp.Child("operator"), r.Operator,
					"must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"))
			}
		}
		switch r.Operator {
		case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
			if len(r.Values) == 0 {
				errs = append(errs, field.Required(mp.Child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
			}
		case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
			if len(r.Values) != 0 {
				errs = append(errs, field.Invalid(mp.Child("values"), r.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
			}
		default:
			errs = append(errs, field.Invalid(mp.Child("operator"), r.Operator, "not a valid selector operator"))
		}
		set[r.ScopeName] = true
	}
	conflicts(set, mp)
	return errs
}

func knownQuotaScope(sc corev1.ResourceQuotaScope) bool {
	for _, k := range quotaScopes {
		if k == sc {
			return true
		}
	}
	return false
}

var podComputeResources = map[corev1.ResourceName]bool{
	"cpu": true, "memory": true, "limits.cpu": true, "limits.memory": true, "requests.cpu": true, "requests.memory": true,
}

func scopeAppliesTo(sc corev1.ResourceQuotaScope, n corev1.ResourceName) bool {
	switch sc {
	case corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeNotBestEffort,
		corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return n == corev1.ResourcePods || podComputeResources[n]
	case corev1.ResourceQuotaScopeBestEffort:
		return n == corev1.ResourcePods
	case corev1.ResourceQuotaScopeVolumeAttributesClass:
		return n == corev1.ResourcePersistentVolumeClaims || n == corev1.ResourceRequestsStorage
	}
	return true
}

func validateLimitRange(obj, old runtime.Object) field.ErrorList {
	lr := obj.(*corev1.LimitRange)
	if old != nil && specUnchanged(&lr.Spec, &old.(*corev1.LimitRange).Spec, old) {
		return nil
	}
	var errs field.ErrorList
	lp := field.NewPath("spec", "limits")
	seen := map[corev1.LimitType]bool{}
	for i := range lr.Spec.Limits {
		l := &lr.Spec.Limits[i]
		ip := lp.Index(i)
		errs = append(errs, limitType(l.Type, ip.Child("type"))...)
		if seen[l.Type] {
			errs = append(errs, field.Duplicate(ip.Child("type"), l.Type))
		}
		seen[l.Type] = true
		nameFn := resourceName
		if l.Type == corev1.LimitTypePod || l.Type == corev1.LimitTypeContainer {
			nameFn = containerResourceName
		}
		keys := map[corev1.ResourceName]bool{}
		check := func(list corev1.ResourceList, name string) {
			for _, k := range sortedKeys(list) {
				errs = append(errs, nameFn(k, ip.Child(name).Key(string(k)))...)
				keys[k] = true
			}
		}
		check(l.Max, "max")
		check(l.Min, "min")
		def, defReq := l.Default, l.DefaultRequest
		if l.Type == corev1.LimitTypePod {
			if len(l.Default) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(l.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
			def, defReq = nil, nil
		} else {
			check(l.Default, "default")
			check(l.DefaultRequest, "defaultRequest")
		}
		if l.Type == corev1.LimitTypeContainer {
			def, defReq = containerLimitDefaults(l)
		}
		if l.Type == corev1.LimitTypePersistentVolumeClaim {
			_, hasMin := l.Min[corev1.ResourceStorage]
			_, hasMax := l.Max[corev1.ResourceStorage]
			if !hasMin && !hasMax {
				errs = append(errs, field.Required(ip.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
			}
		}
		check(l.MaxLimitRequestRatio, "maxLimitRequestRatio")
		for _, k := range sortedKeys(keys) {
			errs = append(errs, limitBounds(k, l, def, defReq, ip)...)
		}
	}
	return errs
}

// containerLimitDefaults fills default and defaultRequest the way
// defaulting does for container limits (default from max, request from
// default or min), since the bounds are checked on the filled values.
func containerLimitDefaults(l *corev1.LimitRangeItem) (def, defReq corev1.ResourceList) {
	def, defReq = corev1.ResourceList{}, corev1.ResourceList{}
	for k, v := range l.Default {
		def[k] = v
	}
	for k, v := range l.Max {
		if _, ok := def[k]; !ok {
			def[k] = v
		}
	}
	for k, v := range l.DefaultRequest {
		defReq[k] = v
	}
	for k, v := range def {
		if _, ok := defReq[k]; !ok {
			defReq[k] = v
		}
	}
	for k, v := range l.Min {
		if _, ok := defReq[k]; !ok {
			defReq[k] = v
		}
	}
	return def, defReq
}

func limitBounds(k corev1.ResourceName, l *corev1.LimitRangeItem, def, defReq corev1.ResourceList, ip *field.Path) field.ErrorList {
	var errs field.ErrorList
	minQ, hasMin := l.Min[k]
	maxQ, hasMax := l.Max[k]
	defQ, hasDef := def[k]
	reqQ, hasReq := defReq[k]
	ratio, hasRatio := l.MaxLimitRequestRatio[k]
	key := string(k)
	if hasMin && hasMax && minQ.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("min").Key(key), minQ, fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
	}
	if hasReq && hasMin && minQ.Cmp(reqQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), reqQ, fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), reqQ.String())))
	}
	if hasReq && hasMax && reqQ.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), reqQ, fmt.Sprintf("default request value %s is greater than max value %s", reqQ.String(), maxQ.String())))
	}
	if hasReq && hasDef && reqQ.Cmp(defQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), reqQ, fmt.Sprintf("default request value %s is greater than default limit value %s", reqQ.String(), defQ.String())))
	}
	if hasDef && hasMin && minQ.Cmp(defQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("default").Key(key), minQ, fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), defQ.String())))
	}
	if hasDef && hasMax && defQ.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(ip.Child("default").Key(key), maxQ, fmt.Sprintf("default value %s is greater than max value %s", defQ.String(), maxQ.String())))
	}
	if hasRatio && ratio.Cmp(*resource.NewQuantity(1, resource.DecimalSI)) < 0 {
		errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is less than 1", ratio.String())))
	}
	if hasRatio && hasMin && hasMax {
		r, lo, hi := float64(ratio.Value()), minQ.Value(), maxQ.Value()
		if ratio.Value() < resource.MaxMilliValue && lo < resource.MaxMilliValue && hi < resource.MaxMilliValue {
			r, lo, hi = float64(ratio.MilliValue())/1000, minQ.MilliValue(), maxQ.MilliValue()
		}
		if limit := float64(hi) / float64(lo); r > limit {
			errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), limit)))
		}
	}
	if !overcommitAllowed(k) && hasDef && hasReq && defQ.Cmp(reqQ) != 0 {
		errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), reqQ, fmt.Sprintf("default value %s must equal to defaultRequest value %s in %s", defQ.String(), reqQ.String(), key)))
	}
	return errs
}

func limitType(t corev1.LimitType, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(string(t)) {
		errs = append(errs, field.Invalid(p, t, msg))
	}
	if len(errs) > 0 {
		return errs
	}
	if !strings.Contains(string(t), "/") {
		switch t {
		case corev1.LimitTypePod, corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim:
		default:
			errs = append(errs, field.Invalid(p, t, "must be a standard limit type or fully qualified"))
		}
	}
	return errs
}
