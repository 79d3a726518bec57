package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// LimitRanger applies a namespace's LimitRanges, as kube-apiserver's
// plugin of that name: containers get the default requests and limits
// they leave out, then pods and claims are checked against the minimums,
// maximums and limit/request ratios.
type LimitRanger struct {
	store Lister
}

// NewLimitRanger returns the plugin; store lists LimitRanges.
func NewLimitRanger(store Lister) *LimitRanger {
	return &LimitRanger{store: store}
}

// Admit is the mutating half: it fills in container defaults.
func (l *LimitRanger) Admit(ctx context.Context, a *Attributes) error {
	if !limitRangerApplies(a) || !coreResource(a, "pods") {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	defaultRequestsFromLimits(pod)
	ranges, err := l.limitRanges(ctx, a)
	if err != nil {
		return err
	}
	for i := range ranges {
		mergeContainerDefaults(pod, containerDefaults(&ranges[i]))
	}
	return nil
}

// Validate is the validating half: the constraints, checked after every
// mutation has run.
func (l *LimitRanger) Validate(ctx context.Context, a *Attributes) error {
	if !limitRangerApplies(a) {
		return nil
	}
	ranges, err := l.limitRanges(ctx, a)
	if err != nil {
		return err
	}
	for i := range ranges {
		var errs []error
		switch obj := a.Object.(type) {
		case *corev1.Pod:
			errs = validatePodLimits(&ranges[i], obj)
		case *corev1.PersistentVolumeClaim:
			errs = validateClaimLimits(&ranges[i], obj)
		}
		if len(errs) > 0 {
			return forbidden(a, utilerrors.NewAggregate(errs))
		}
	}
	return nil
}

// limitRangerApplies selects the writes upstream looks at: pods on create
// and on resize, claims on create and update, and nothing that is being
// deleted.
func limitRangerApplies(a *Attributes) bool {
	switch {
	case coreResource(a, "pods"):
		if !(a.Operation == Create && a.Subresource == "") && !(a.Operation == Update && a.Subresource == "resize") {
			return false
		}
	case coreResource(a, "persistentvolumeclaims"):
		if a.Subresource != "" || (a.Operation != Create && a.Operation != Update) {
			return false
		}
	default:
		return false
	}
	if a.OldObject != nil {
		if m, err := meta.Accessor(a.OldObject); err == nil && m.GetDeletionTimestamp() != nil {
			return false
		}
	}
	return true
}

func (l *LimitRanger) limitRanges(ctx context.Context, a *Attributes) ([]corev1.LimitRange, error) {
	ranges, err := listAs[corev1.LimitRange](ctx, l.store, a.Cluster, limitRangesKey, a.Namespace)
	if err != nil {
		return nil, forbidden(a, fmt.Errorf("unable to %s %s at this time because there was an error enforcing limit ranges: %w",
			a.Operation, a.Resource, err))
	}
	for i := range ranges {
		for j := range ranges[i].Spec.Limits {
			defaultLimitRangeItem(&ranges[i].Spec.Limits[j])
		}
	}
	return ranges, nil
}

// defaultLimitRangeItem fills in what LimitRange defaulting would have
// stored: a default limit from the max, a default request from the
// default limit, else from the min. pgkube stores LimitRanges as sent.
func defaultLimitRangeItem(item *corev1.LimitRangeItem) {
	if item.Type != corev1.LimitTypeContainer {
		return
	}
	if item.Default == nil {
		item.Default = corev1.ResourceList{}
	}
	if item.DefaultRequest == nil {
		item.DefaultRequest = corev1.ResourceList{}
	}
	for k, v := range item.Max {
		if _, ok := item.Default[k]; !ok {
			item.Default[k] = v.DeepCopy()
		}
	}
	for k, v := range item.Default {
		if _, ok := item.DefaultRequest[k]; !ok {
			item.DefaultRequest[k] = v.DeepCopy()
		}
	}
	for k, v := range item.Min {
		if _, ok := item.DefaultRequest[k]; !ok {
			item.DefaultRequest[k] = v.DeepCopy()
		}
	}
}

// defaultRequestsFromLimits is the pod defaulting upstream runs before
// admission: a container's limit is its request when it names none. It
// must precede the LimitRange defaults, which only fill what is still
// missing.
func defaultRequestsFromLimits(pod *corev1.Pod) {
	fill := func(c *corev1.Container) {
		if len(c.Resources.Limits) == 0 {
			return
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		for k, v := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[k]; !ok {
				c.Resources.Requests[k] = v.DeepCopy()
			}
		}
	}
	for i := range pod.Spec.Containers {
		fill(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		fill(&pod.Spec.InitContainers[i])
	}
}

// containerDefaults collects one LimitRange's container defaults.
func containerDefaults(lr *corev1.LimitRange) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		for k, v := range item.DefaultRequest {
			out.Requests[k] = v.DeepCopy()
		}
		for k, v := range item.Default {
			out.Limits[k] = v.DeepCopy()
		}
	}
	return out
}

// mergeContainerDefaults gives each container what it lacks of def and
// records what was set in the limit-ranger annotation. As upstream, each
// LimitRange that sets anything replaces the annotation.
func mergeContainerDefaults(pod *corev1.Pod, def corev1.ResourceRequirements) {
	var notes []string
	merge := func(c *corev1.Container, kind string) {
		var setReq, setLim []string
		for k, v := range def.Limits {
			if _, ok := c.Resources.Limits[k]; !ok {
				if c.Resources.Limits == nil {
					c.Resources.Limits = corev1.ResourceList{}
				}
				c.Resources.Limits[k] = v.DeepCopy()
				setLim = append(setLim, string(k))
			}
		}
		for k, v := range def.Requests {
			if _, ok := c.Resources.Requests[k]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = corev1.ResourceList{}
				}
				c.Resources.Requests[k] = v.DeepCopy()
				setReq = append(setReq, string(k))
			}
		}
		if len(setReq) > 0 {
			slices.Sort(setReq)
			notes = append(notes, strings.Join(setReq, ", ")+" request for "+kind+" "+c.Name)
		}
		if len(setLim) > 0 {
			slices.Sort(setLim)
			notes = append(notes, strings.Join(setLim, ", ")+" limit for "+kind+" "+c.Name)
		}
	}
	for i := range pod.Spec.Containers {
		merge(&pod.Spec.Containers[i], "container")
	}
	for i := range pod.Spec.InitContainers {
		merge(&pod.Spec.InitContainers[i], "init container")
	}
	if len(notes) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
	}
}

func validatePodLimits(lr *corev1.LimitRange, pod *corev1.Pod) []error {
	var errs []error
	check := func(item *corev1.LimitRangeItem, requests, limits corev1.ResourceList) {
		kind := string(item.Type)
		for _, k := range sortedNames(item.Min) {
			errs = appendErr(errs, checkMin(kind, k, item.Min[k], requests, limits))
		}
		for _, k := range sortedNames(item.Max) {
			errs = appendErr(errs, checkMax(kind, k, item.Max[k], requests, limits))
		}
		for _, k := range sortedNames(item.MaxLimitRequestRatio) {
			errs = appendErr(errs, checkRatio(kind, k, item.MaxLimitRequestRatio[k], requests, limits))
		}
	}
	for i := range lr.Spec.Limits {
		item := &lr.Spec.Limits[i]
		switch item.Type {
		case corev1.LimitTypeContainer:
			for j := range pod.Spec.Containers {
				c := &pod.Spec.Containers[j]
				check(item, containerRequests(c), c.Resources.Limits)
			}
			for j := range pod.Spec.InitContainers {
				c := &pod.Spec.InitContainers[j]
				check(item, containerRequests(c), c.Resources.Limits)
			}
		case corev1.LimitTypePod:
			check(item, podTotal(pod, containerRequests, podLevelRequests(pod)), podTotal(pod, containerLimits, podLevelLimits(pod)))
		}
	}
	return errs
}

func validateClaimLimits(lr *corev1.LimitRange, pvc *corev1.PersistentVolumeClaim) []error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypePersistentVolumeClaim {
			continue
		}
		kind := string(item.Type)
		for _, k := range sortedNames(item.Min) {
			errs = appendErr(errs, checkMin(kind, k, item.Min[k], pvc.Spec.Resources.Requests, nil))
		}
		for _, k := range sortedNames(item.Max) {
			errs = appendErr(errs, checkMaxRequest(kind, k, item.Max[k], pvc.Spec.Resources.Requests))
		}
	}
	return errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// scaled compares quantities in milli-units when all of them fit, so
// fractional cpu is exact, and in whole units when one would overflow.
func scaled(qs ...resource.Quantity) []int64 {
	out := make([]int64, len(qs))
	milli := true
	for _, q := range qs {
		if q.Value() > resource.MaxMilliValue {
			milli = false
		}
	}
	for i, q := range qs {
		if milli {
			out[i] = q.MilliValue()
		} else {
			out[i] = q.Value()
		}
	}
	return out
}

func checkMin(kind string, name corev1.ResourceName, min resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	v := scaled(req, lim, min)
	switch {
	case !hasReq:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, min.String())
	case v[0] < v[2]:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, min.String(), req.String())
	case hasLim && v[1] < v[2]:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, min.String(), lim.String())
	}
	return nil
}

func checkMax(kind string, name corev1.ResourceName, max resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	v := scaled(req, lim, max)
	switch {
	case !hasLim:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, max.String())
	case v[1] > v[2]:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, max.String(), lim.String())
	case hasReq && v[0] > v[2]:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, max.String(), req.String())
	}
	return nil
}

// checkMaxRequest is the claim form of a maximum: claims have requests only.
func checkMaxRequest(kind string, name corev1.ResourceName, max resource.Quantity, requests corev1.ResourceList) error {
	req, hasReq := requests[name]
	v := scaled(req, resource.Quantity{}, max)
	switch {
	case !hasReq:
		return fmt.Errorf("maximum %s usage per %s is %s.  No request is specified", name, kind, max.String())
	case v[0] > v[2]:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, max.String(), req.String())
	}
	return nil
}

func checkRatio(kind string, name corev1.ResourceName, maxRatio resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	v := scaled(req, lim, maxRatio)
	if !hasReq || v[0] == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, maxRatio.String())
	}
	if !hasLim || v[1] == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, maxRatio.String())
	}
	ratio := float64(v[1]) / float64(v[0])
	observed, allowed := ratio, float64(maxRatio.Value())
	// The ratio itself may be fractional (1.5): compare in milli-units
	// when the bound allows it.
	if maxRatio.Value() <= resource.MaxMilliValue {
		observed, allowed = ratio*1000, float64(maxRatio.MilliValue())
	}
	if observed > allowed {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, maxRatio.String(), ratio)
	}
	return nil
}
