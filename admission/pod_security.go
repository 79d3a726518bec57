package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/pgkube/pgkube/storage"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Bounds on the check of existing pods when a namespace's enforce level
// is tightened: upstream's defaults, so the namespace update stays quick.
const (
	psaMaxPodsToCheck  = 3000
	psaPodCheckTimeout = time.Second
)

// PodSecurity applies the Pod Security Standards a namespace selects with
// its pod-security.kubernetes.io labels, as kube-apiserver's PodSecurity
// plugin with no exemptions and privileged defaults: "enforce" refuses
// pods, "warn" sends warnings (see AddWarning); "audit" would annotate the
// audit event, which pgkube does not record yet. Workload objects that
// carry a pod template only ever get warnings, as upstream.
type PodSecurity struct {
	store     Reader
	evaluator policy.Evaluator
	defaults  psaapi.Policy
}

// NewPodSecurity returns the plugin with the checks of the
// k8s.io/pod-security-admission version pgkube is built with.
func NewPodSecurity(store Reader) (*PodSecurity, error) {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("pod security checks: %w", err)
	}
	privileged := psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()}
	return &PodSecurity{
		store:     store,
		evaluator: ev,
		defaults:  psaapi.Policy{Enforce: privileged, Audit: privileged, Warn: privileged},
	}, nil
}

// ignoredPodSubresources cannot change a pod's spec. Any other pod
// subresource (ephemeralcontainers, resize, ...) is checked, so one added
// later is not a way around the policy.
var ignoredPodSubresources = map[string]bool{
	"exec": true, "attach": true, "binding": true, "eviction": true,
	"log": true, "portforward": true, "proxy": true, "status": true,
}

// podTemplateOf extracts the pod template of the workload kinds upstream
// checks; nil when the object has none.
func podTemplateOf(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec, bool) {
	var t *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.PodTemplate:
		t = &o.Template
	case *corev1.ReplicationController:
		t = o.Spec.Template
	case *appsv1.ReplicaSet:
		t = &o.Spec.Template
	case *appsv1.Deployment:
		t = &o.Spec.Template
	case *appsv1.DaemonSet:
		t = &o.Spec.Template
	case *appsv1.StatefulSet:
		t = &o.Spec.Template
	case *batchv1.Job:
		t = &o.Spec.Template
	case *batchv1.CronJob:
		t = &o.Spec.JobTemplate.Spec.Template
	default:
		return nil, nil, false
	}
	if t == nil {
		return nil, nil, true
	}
	return &t.ObjectMeta, &t.Spec, true
}

// Admit is a validating plugin: it changes nothing.
func (p *PodSecurity) Admit(ctx context.Context, a *Attributes) error {
	if a.Operation != Create && a.Operation != Update {
		return nil
	}
	switch {
	case coreResource(a, "namespaces"):
		return p.validateNamespace(ctx, a)
	case coreResource(a, "pods"):
		return p.validatePod(ctx, a)
	}
	if a.Subresource != "" {
		return nil
	}
	meta, spec, ok := podTemplateOf(a.Object)
	if !ok || spec == nil {
		return nil
	}
	ns, err := p.namespace(ctx, a)
	if err != nil {
		// Workloads are never refused: a failed lookup only loses the
		// warning.
		return nil
	}
	pol, _ := psaapi.PolicyToEvaluate(ns.Labels, p.defaults)
	if pol.Warn.Level == psaapi.LevelPrivileged {
		return nil
	}
	p.warn(ctx, pol.Warn, meta, spec)
	return nil
}

func (p *PodSecurity) validatePod(ctx context.Context, a *Attributes) error {
	if ignoredPodSubresources[a.Subresource] {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	ns, err := p.namespace(ctx, a)
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("failed to lookup namespace %q", a.Namespace))
	}
	// Invalid labels still give a policy (the strictest reading of each
	// bad value); upstream only notes the error in the audit log.
	pol, errs := psaapi.PolicyToEvaluate(ns.Labels, p.defaults)
	if len(errs) == 0 && pol.FullyPrivileged() {
		return nil
	}
	if a.Operation == Update {
		old, ok := a.OldObject.(*corev1.Pod)
		if ok && !significantPodUpdate(pod, old) {
			return nil
		}
	}
	result := policy.AggregateCheckResults(p.evaluator.EvaluatePod(pol.Enforce, &pod.ObjectMeta, &pod.Spec))
	if !result.Allowed {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, a.Name,
			fmt.Errorf("violates PodSecurity %q: %s", pol.Enforce.String(), result.ForbiddenDetail()))
	}
	if pol.Warn == pol.Enforce {
		return nil // already passed at this level and version
	}
	p.warn(ctx, pol.Warn, &pod.ObjectMeta, &pod.Spec)
	return nil
}

func (p *PodSecurity) warn(ctx context.Context, lv psaapi.LevelVersion, meta *metav1.ObjectMeta, spec *corev1.PodSpec) {
	result := policy.AggregateCheckResults(p.evaluator.EvaluatePod(lv, meta, spec))
	if !result.Allowed {
		AddWarning(ctx, fmt.Sprintf("would violate PodSecurity %q: %s", lv.String(), result.ForbiddenDetail()))
	}
}

// significantPodUpdate tells whether an update can change the outcome:
// the only pod fields updatable in place that the checks read are
// container images, and ephemeral containers can be added.
func significantPodUpdate(pod, old *corev1.Pod) bool {
	if len(pod.Spec.Containers) != len(old.Spec.Containers) || len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return true
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Image != old.Spec.Containers[i].Image {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Image != old.Spec.InitContainers[i].Image {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		found := false
		for _, oc := range old.Spec.EphemeralContainers {
			if oc.Name == c.Name {
				found = true
				if oc.Image != c.Image {
					return true
				}
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// validateNamespace refuses invalid policy labels, and when the enforce
// level gets stricter, warns about the existing pods it would refuse.
func (p *PodSecurity) validateNamespace(ctx context.Context, a *Attributes) error {
	if a.Subresource != "" {
		return nil
	}
	ns, ok := a.Object.(*corev1.Namespace)
	if !ok {
		return nil
	}
	pol, errs := psaapi.PolicyToEvaluate(ns.Labels, p.defaults)
	if a.Operation == Create {
		if len(errs) > 0 {
			return apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, a.Name, errs)
		}
		return nil
	}
	old, ok := a.OldObject.(*corev1.Namespace)
	if !ok {
		return nil
	}
	oldPol, oldErrs := psaapi.PolicyToEvaluate(old.Labels, p.defaults)
	// Labels that were already invalid in the same way do not block
	// unrelated updates of the namespace.
	if len(errs) > 0 && (len(oldErrs) == 0 || !reflect.DeepEqual(errs, oldErrs)) {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, a.Name, errs)
	}
	switch {
	case pol.Enforce == oldPol.Enforce,
		pol.Enforce.Level == psaapi.LevelPrivileged,
		pol.Enforce.Version == oldPol.Enforce.Version && psaapi.CompareLevels(pol.Enforce.Level, oldPol.Enforce.Level) < 1:
		return nil
	}
	for _, w := range p.checkExistingPods(ctx, a.Cluster, ns.Name, pol.Enforce) {
		AddWarning(ctx, w)
	}
	return nil
}

// checkExistingPods evaluates the namespace's pods at the new level, one
// pod per controller first so that a large workload does not use up the
// budget, and folds pods with the same problems into one warning.
func (p *PodSecurity) checkExistingPods(ctx context.Context, cluster, namespace string, enforce psaapi.LevelVersion) []string {
	deadline := time.Now().Add(psaPodCheckTimeout)
	if d, ok := ctx.Deadline(); ok {
		if half := time.Now().Add(time.Until(d) / 2); half.Before(deadline) {
			deadline = half
		}
	}
	pods, err := listAs[corev1.Pod](ctx, p.store, cluster, podsKey, namespace)
	if err != nil {
		return []string{"failed to list pods while checking new PodSecurity enforce level"}
	}
	ordered := make([]*corev1.Pod, 0, len(pods))
	var repeats []*corev1.Pod
	seen := map[types.UID]bool{}
	for i := range pods {
		ref := metav1.GetControllerOfNoCopy(&pods[i])
		switch {
		case ref == nil:
			ordered = append(ordered, &pods[i])
		case seen[ref.UID]:
			repeats = append(repeats, &pods[i])
		default:
			seen[ref.UID] = true
			ordered = append(ordered, &pods[i])
		}
	}
	ordered = append(ordered, repeats...)
	total := len(ordered)
	if len(ordered) > psaMaxPodsToCheck {
		ordered = ordered[:psaMaxPodsToCheck]
	}
	type count struct {
		first string
		n     int
	}
	counts := map[string]*count{}
	var reasons []string
	checked := len(ordered)
	for i, pod := range ordered {
		r := policy.AggregateCheckResults(p.evaluator.EvaluatePod(enforce, &pod.ObjectMeta, &pod.Spec))
		if !r.Allowed {
			reason := r.ForbiddenReason()
			c := counts[reason]
			if c == nil {
				c = &count{first: pod.Name}
				counts[reason] = c
				reasons = append(reasons, reason)
			} else if pod.Name < c.first {
				c.first = pod.Name
			}
			c.n++
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			checked = i + 1
			break
		}
	}
	var out []string
	if checked < total {
		out = append(out, fmt.Sprintf("new PodSecurity enforce level only checked against the first %d of %d existing pods", checked, total))
	}
	if len(reasons) > 0 {
		out = append(out, fmt.Sprintf("existing pods in namespace %q violate the new PodSecurity enforce level %q", namespace, enforce.String()))
	}
	podWarnings := make([]string, 0, len(reasons))
	for _, reason := range reasons {
		c := counts[reason]
		switch c.n {
		case 1:
			podWarnings = append(podWarnings, fmt.Sprintf("%s: %s", c.first, reason))
		case 2:
			podWarnings = append(podWarnings, fmt.Sprintf("%s (and 1 other pod): %s", c.first, reason))
		default:
			podWarnings = append(podWarnings, fmt.Sprintf("%s (and %d other pods): %s", c.first, c.n-1, reason))
		}
	}
	sort.Strings(podWarnings)
	return append(out, podWarnings...)
}

// namespace reads the request's namespace for its labels.
func (p *PodSecurity) namespace(ctx context.Context, a *Attributes) (*corev1.Namespace, error) {
	o, err := p.store.Get(ctx, a.Cluster, storage.Key{Resource: namespacesKey, Name: a.Namespace})
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{}
	if err := json.Unmarshal(o.Data, ns); err != nil {
		return nil, errors.Join(errors.New("decode namespace"), err)
	}
	return ns, nil
}
