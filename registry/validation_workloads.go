package registry

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// selectorOutcome is how a workload's selector judges its template:
// parseErr when the selector cannot be used at all, empty when it selects
// everything (and so no template check applies).
type selectorOutcome struct {
	matches, empty, parseErr bool
}

// judgeSelector follows LabelSelectorAsSelector: a nil selector matches
// nothing, an empty one everything. strictErrs says whether the selector
// failed validation; only then is the (slower) parse needed to tell
// whether it is usable.
func judgeSelector(s *metav1.LabelSelector, lbls map[string]string, strictErrs bool) selectorOutcome {
	if s == nil {
		return selectorOutcome{}
	}
	if len(s.MatchLabels)+len(s.MatchExpressions) == 0 {
		return selectorOutcome{matches: true, empty: true}
	}
	if !strictErrs && len(s.MatchExpressions) == 0 {
		for k, v := range s.MatchLabels {
			if got, ok := lbls[k]; !ok || got != v {
				return selectorOutcome{}
			}
		}
		return selectorOutcome{matches: true}
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return selectorOutcome{parseErr: true}
	}
	return selectorOutcome{matches: sel.Matches(labels.Set(lbls))}
}

// workloadSelector checks a required, non-empty selector the way apps
// kinds do and reports how it judges the template.
// The selector is at spec.selector, sp being spec.
func workloadSelector(s *metav1.LabelSelector, lbls map[string]string, kind string, sp *field.Path) (selectorOutcome, field.ErrorList) {
	var errs field.ErrorList
	if s == nil {
		errs = append(errs, field.Required(sp.Child("selector"), ""))
	} else {
		errs = append(errs, selectorAt(s, sp, "selector")...)
		if len(s.MatchLabels)+len(s.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(sp.Child("selector"), s, "empty selector is invalid for "+kind))
		}
	}
	return judgeSelector(s, lbls, len(errs) > 0), errs
}

// controllerTemplate is the template check for controllers whose pods
// run forever: the selector must match, pods restart Always and have no
// deadline. kind names the controller in upstream's message.
func controllerTemplate(t *corev1.PodTemplateSpec, sel selectorOutcome, kind string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !sel.empty && !sel.matches {
		errs = append(errs, field.Invalid(p.Child("metadata", "labels"), t.Labels, selectorMismatchMsg))
	}
	errs = append(errs, validatePodTemplateSpec(t, p)...)
	errs = append(errs, alwaysRestart(t, kind, p)...)
	return errs
}

func alwaysRestart(t *corev1.PodTemplateSpec, kind string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if rp := t.Spec.RestartPolicy; rp != "" && rp != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return errs
}

func replicasOf(r *int32) int64 {
	if r == nil {
		return 1 // the default
	}
	return int64(*r)
}

func validateReplicationController(obj, old runtime.Object) field.ErrorList {
	rc := obj.(*corev1.ReplicationController)
	if old != nil && specUnchanged(&rc.Spec, &old.(*corev1.ReplicationController).Spec, old) {
		return nil
	}
	p := field.NewPath("spec")
	errs := nonNegative(int64(rc.Spec.MinReadySeconds), p.Child("minReadySeconds"))
	errs = append(errs, nonNegative(replicasOf(rc.Spec.Replicas), p.Child("replicas"))...)
	tp := p.Child("template")
	if rc.Spec.Template == nil {
		if len(rc.Spec.Selector) == 0 {
			errs = append(errs, field.Required(p.Child("selector"), ""))
		}
		return append(errs, field.Required(tp, ""))
	}
	// An empty selector is defaulted from the template's labels.
	sel := rc.Spec.Selector
	if len(sel) == 0 {
		sel = rc.Spec.Template.Labels
	}
	if len(sel) == 0 {
		errs = append(errs, field.Required(p.Child("selector"), ""))
	}
	matches := true
	for k, v := range sel {
		if got, ok := rc.Spec.Template.Labels[k]; !ok || got != v {
			matches = false
		}
	}
	return append(errs, controllerTemplate(rc.Spec.Template, selectorOutcome{matches: matches, empty: len(sel) == 0}, "ReplicationController", tp)...)
}

func validateDeployment(obj, old runtime.Object) field.ErrorList {
	d := obj.(*appsv1.Deployment)
	if old != nil && specUnchanged(&d.Spec, &old.(*appsv1.Deployment).Spec, old) {
		return nil
	}
	s := &d.Spec
	p := field.NewPath("spec")
	errs := nonNegAt(replicasOf(s.Replicas), p, "replicas")
	sel, selErrs := workloadSelector(s.Selector, s.Template.Labels, "deployment", p)
	errs = append(errs, selErrs...)
	if sel.parseErr {
		errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, "invalid label selector"))
	} else {
		errs = append(errs, controllerTemplate(&s.Template, sel, "ReplicaSet", p.Child("template"))...)
	}
	errs = append(errs, deploymentStrategy(&s.Strategy, p)...)
	errs = append(errs, nonNegAt(int64(s.MinReadySeconds), p, "minReadySeconds")...)
	if s.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegAt(int64(*s.RevisionHistoryLimit), p, "revisionHistoryLimit")...)
	}
	if s.ProgressDeadlineSeconds != nil {
		errs = append(errs, nonNegAt(int64(*s.ProgressDeadlineSeconds), p, "progressDeadlineSeconds")...)
		if *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
			errs = append(errs, field.Invalid(p.Child("progressDeadlineSeconds"), *s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

var (
	defaultQuarter         = intstr.FromString("25%")
	deploymentStrategyList = []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}
)

// deploymentStrategy: the strategy is at spec.strategy, sp being spec.
func deploymentStrategy(st *appsv1.DeploymentStrategy, sp *field.Path) field.ErrorList {
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(sp.Child("strategy", "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
		return nil
	case "", appsv1.RollingUpdateDeploymentStrategyType:
	default:
		return field.ErrorList{field.NotSupported(sp.Child("strategy"), renderDeploymentStrategy(st), deploymentStrategyList)}
	}
	// Unset limits default to 25% each.
	maxUnavailable, maxSurge := defaultQuarter, defaultQuarter
	if ru := st.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			maxUnavailable = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			maxSurge = *ru.MaxSurge
		}
	}
	mu, ms := intOrPercentValue(maxUnavailable), intOrPercentValue(maxSurge)
	if pct, isPct := percentValue(maxUnavailable); intOrPercentOK(maxUnavailable) && intOrPercentOK(maxSurge) && (mu != 0 || ms != 0) && (!isPct || pct <= 100) {
		return nil
	}
	rp := sp.Child("strategy", "rollingUpdate")
	errs := positiveIntOrPercent(maxUnavailable, rp.Child("maxUnavailable"))
	errs = append(errs, positiveIntOrPercent(maxSurge, rp.Child("maxSurge"))...)
	if mu == 0 && ms == 0 {
		errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
	}
	return append(errs, notMoreThan100Percent(maxUnavailable, rp.Child("maxUnavailable"))...)
}

func validateReplicaSet(obj, old runtime.Object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	if old != nil && specUnchanged(&rs.Spec, &old.(*appsv1.ReplicaSet).Spec, old) {
		return nil
	}
	s := &rs.Spec
	p := field.NewPath("spec")
	errs := nonNegative(replicasOf(s.Replicas), p.Child("replicas"))
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	// Upstream shares the deployment's wording here.
	sel, selErrs := workloadSelector(s.Selector, s.Template.Labels, "deployment", p)
	errs = append(errs, selErrs...)
	if sel.parseErr {
		return append(errs, field.Invalid(p.Child("selector"), s.Selector, "invalid label selector"))
	}
	return append(errs, controllerTemplate(&s.Template, sel, "ReplicaSet", p.Child("template"))...)
}

func validateStatefulSet(obj, old runtime.Object) field.ErrorList {
	ss := obj.(*appsv1.StatefulSet)
	if old != nil && specUnchanged(&ss.Spec, &old.(*appsv1.StatefulSet).Spec, old) {
		return nil
	}
	s := &ss.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	switch s.PodManagementPolicy {
	case "", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(p.Child("podManagementPolicy"), s.PodManagementPolicy, "must be 'OrderedReady' or 'Parallel'"))
	}
	up := p.Child("updateStrategy")
	switch s.UpdateStrategy.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(up.Child("rollingUpdate"), renderStatefulSetRollingUpdate(s.UpdateStrategy.RollingUpdate), "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case "", appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			rp := up.Child("rollingUpdate")
			if ru.Partition != nil {
				errs = append(errs, nonNegative(int64(*ru.Partition), rp.Child("partition"))...)
			}
			if ru.MaxUnavailable != nil {
				mp := rp.Child("maxUnavailable")
				errs = append(errs, positiveIntOrPercent(*ru.MaxUnavailable, mp)...)
				if intOrPercentValue(*ru.MaxUnavailable) == 0 {
					errs = append(errs, field.Invalid(mp, *ru.MaxUnavailable, "cannot be 0"))
				}
				errs = append(errs, notMoreThan100Percent(*ru.MaxUnavailable, mp)...)
			}
		}
	default:
		errs = append(errs, field.Invalid(up, renderStatefulSetStrategy(&s.UpdateStrategy), "must be 'RollingUpdate' or 'OnDelete'"))
	}
	if rp := s.PersistentVolumeClaimRetentionPolicy; rp != nil {
		pp := p.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, retentionPolicyType(rp.WhenDeleted, pp.Child("whenDeleted"))...)
		errs = append(errs, retentionPolicyType(rp.WhenScaled, pp.Child("whenScaled"))...)
	}
	for i := range s.VolumeClaimTemplates {
		errs = append(errs, validatePVCSpec(&s.VolumeClaimTemplates[i].Spec, p.Child("volumeClaimTemplates").Index(i).Child("spec"))...)
	}
	errs = append(errs, nonNegative(replicasOf(s.Replicas), p.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	if s.Ordinals != nil {
		errs = append(errs, nonNegative(int64(s.Ordinals.Start), p.Child("ordinals.start"))...)
	}
	if s.ServiceName != "" {
		errs = append(errs, dns1123Label(s.ServiceName, p.Child("serviceName"))...)
	}
	sel, selErrs := workloadSelector(s.Selector, s.Template.Labels, "statefulset", p)
	errs = append(errs, selErrs...)
	tp := p.Child("template")
	if sel.parseErr {
		errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, ""))
	} else {
		t := &s.Template
		// The controller sets hostname and subdomain itself and adds a
		// volume per claim template, so the template is judged as the
		// pods will be.
		if t.Spec.Hostname != "" || t.Spec.Subdomain != "" || len(s.VolumeClaimTemplates) > 0 {
			t = t.DeepCopy()
			t.Spec.Hostname, t.Spec.Subdomain = "", ""
			if len(s.VolumeClaimTemplates) > 0 {
				vols := make([]corev1.Volume, 0, len(s.VolumeClaimTemplates)+len(t.Spec.Volumes))
				claimed := map[string]bool{}
				for _, vct := range s.VolumeClaimTemplates {
					if claimed[vct.Name] {
						continue
					}
					claimed[vct.Name] = true
					vols = append(vols, corev1.Volume{Name: vct.Name, VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: vct.Name}}})
				}
				for _, v := range t.Spec.Volumes {
					if !claimed[v.Name] {
						vols = append(vols, v)
					}
				}
				t.Spec.Volumes = vols
			}
		}
		if !sel.empty && !sel.matches {
			errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), t.Labels, selectorMismatchMsg))
		}
		errs = append(errs, validatePodTemplateSpec(t, tp)...)
	}
	return append(errs, alwaysRestart(&s.Template, "StatefulSet", tp)...)
}

func retentionPolicyType(v appsv1.PersistentVolumeClaimRetentionPolicyType, p *field.Path) field.ErrorList {
	switch v {
	case "", appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, v, []string{"Retain", "Delete"})}
}

var accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOncePod}

// validatePVCSpec covers the claim template basics: access modes and a
// storage request.
func validatePVCSpec(s *corev1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.AccessModes) == 0 {
		errs = append(errs, field.Required(p.Child("accessModes"), "at least 1 access mode is required"))
	}
	rwop := false
	for _, m := range s.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany:
		case corev1.ReadWriteOncePod:
			rwop = true
		default:
			errs = append(errs, field.NotSupported(p.Child("accessModes"), m, accessModes))
		}
	}
	if rwop && len(s.AccessModes) > 1 {
		errs = append(errs, field.Forbidden(p.Child("accessModes"), "may not use ReadWriteOncePod with other access modes"))
	}
	if s.Selector != nil {
		errs = append(errs, labelSelector(s.Selector, p.Child("selector"))...)
	}
	storage, ok := s.Resources.Requests[corev1.ResourceStorage]
	rp := p.Child("resources", "requests").Key(string(corev1.ResourceStorage))
	if !ok {
		errs = append(errs, field.Required(rp, ""))
	} else if storage.Sign() <= 0 {
		errs = append(errs, field.Invalid(rp, storage.String(), "must be greater than zero"))
	} else {
		errs = append(errs, quantityValue(corev1.ResourceStorage, storage, rp)...)
	}
	if m := s.VolumeMode; m != nil && *m != corev1.PersistentVolumeBlock && *m != corev1.PersistentVolumeFilesystem {
		errs = append(errs, field.NotSupported(p.Child("volumeMode"), *m, []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem}))
	}
	return errs
}

func validateDaemonSet(obj, old runtime.Object) field.ErrorList {
	ds := obj.(*appsv1.DaemonSet)
	if old != nil && specUnchanged(&ds.Spec, &old.(*appsv1.DaemonSet).Spec, old) {
		return nil
	}
	s := &ds.Spec
	p := field.NewPath("spec")
	sp := p.Child("selector")
	errs := labelSelector(s.Selector, sp)
	sel := judgeSelector(s.Selector, s.Template.Labels, len(errs) > 0)
	if !sel.parseErr && !sel.empty && !sel.matches {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), s.Template.Labels, selectorMismatchMsg))
	}
	if s.Selector != nil && len(s.Selector.MatchLabels)+len(s.Selector.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(sp, s.Selector, "empty selector is invalid for daemonset"))
	}
	errs = append(errs, validatePodTemplateSpec(&s.Template, p.Child("template"))...)
	errs = append(errs, alwaysRestart(&s.Template, "DaemonSet", p.Child("template"))...)
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	errs = append(errs, daemonSetStrategy(&s.UpdateStrategy, p.Child("updateStrategy"))...)
	if s.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.RevisionHistoryLimit), p.Child("revisionHistoryLimit"))...)
	}
	return errs
}

func daemonSetStrategy(st *appsv1.DaemonSetUpdateStrategy, p *field.Path) field.ErrorList {
	switch st.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
		return nil
	case "", appsv1.RollingUpdateDaemonSetStrategyType:
	default:
		return field.ErrorList{field.NotSupported(p, renderDaemonSetStrategy(st), []string{string(appsv1.RollingUpdateDaemonSetStrategyType), string(appsv1.OnDeleteDaemonSetStrategyType)})}
	}
	// Defaults: one unavailable at a time, no surge.
	maxUnavailable, maxSurge := intstr.FromInt32(1), intstr.FromInt32(0)
	if ru := st.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			maxUnavailable = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			maxSurge = *ru.MaxSurge
		}
	}
	rp := p.Child("rollingUpdate")
	errs := positiveIntOrPercent(maxUnavailable, rp.Child("maxUnavailable"))
	errs = append(errs, positiveIntOrPercent(maxSurge, rp.Child("maxSurge"))...)
	errs = append(errs, notMoreThan100Percent(maxUnavailable, rp.Child("maxUnavailable"))...)
	errs = append(errs, notMoreThan100Percent(maxSurge, rp.Child("maxSurge"))...)
	hasUnavailable, hasSurge := intOrPercentValue(maxUnavailable) != 0, intOrPercentValue(maxSurge) != 0
	switch {
	case hasUnavailable && hasSurge:
		errs = append(errs, field.Invalid(rp.Child("maxSurge"), maxSurge, "may not be set when maxUnavailable is non-zero"))
	case !hasUnavailable && !hasSurge:
		errs = append(errs, field.Required(rp.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
	}
	return errs
}

// Jobs.

var (
	podFailurePolicyActions = []batchv1.PodFailurePolicyAction{batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex,
		batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore}
	exitCodeOperators = []batchv1.PodFailurePolicyOnExitCodesOperator{batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn}
	conditionStatuses = []corev1.ConditionStatus{corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionUnknown}
)

func validateJob(obj, old runtime.Object) field.ErrorList {
	job := obj.(*batchv1.Job)
	var oldJob *batchv1.Job
	if old != nil {
		oldJob = old.(*batchv1.Job)
		if specUnchanged(&job.Spec, &oldJob.Spec, old) {
			return nil
		}
	}
	s := &job.Spec
	p := field.NewPath("spec")
	errs := validateJobSpec(s, p)
	// Upstream generates the selector from the job's uid when the user
	// gives none; a user's selector must pick the template's pods.
	sp := p.Child("selector")
	if s.Selector == nil {
		if s.ManualSelector != nil && *s.ManualSelector {
			errs = append(errs, field.Required(sp, ""))
		}
	} else {
		selErrs := labelSelector(s.Selector, sp)
		errs = append(errs, selErrs...)
		if sel := judgeSelector(s.Selector, s.Template.Labels, len(selErrs) > 0); !sel.parseErr && !sel.matches {
			errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), s.Template.Labels, selectorMismatchMsg))
		}
	}
	if s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion && s.Completions != nil && *s.Completions > 0 {
		host := fmt.Sprintf("%s-%d", job.Name, *s.Completions-1)
		if len(validation.IsDNS1123Label(host)) > 0 {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), job.Name, "will not able to create pod with invalid DNS label: "+host))
		}
	}
	if oldJob != nil {
		errs = append(errs, jobUpdate(job, oldJob, p)...)
	}
	return errs
}

func jobUpdate(job, oldJob *batchv1.Job, p *field.Path) field.ErrorList {
	s, o := &job.Spec, &oldJob.Spec
	var errs field.ErrorList
	indexed := s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion
	cp := p.Child("completions")
	if !indexed {
		errs = append(errs, apivalidation.ValidateImmutableField(s.Completions, o.Completions, cp)...)
	} else if s.Completions != nil && !equality.Semantic.DeepEqual(s.Completions, o.Completions) &&
		(s.Parallelism == nil || *s.Completions != *s.Parallelism) {
		errs = append(errs, field.Invalid(cp, s.Completions, "can only be modified in tandem with spec.parallelism"))
	}

	// The template is frozen, except that a suspended job that has not
	// started yet may still get its scheduling directives and container
	// resources adjusted.
	t, ot := &s.Template, o.Template.DeepCopy()
	suspended := o.Suspend != nil && *o.Suspend
	mutable := suspended && (oldJob.Status.StartTime == nil || jobSuspendedCondition(oldJob)) && oldJob.Status.Active == 0
	if mutable {
		switch {
		case t.Spec.Affinity == nil && ot.Spec.Affinity != nil:
			ot.Spec.Affinity.NodeAffinity = nil
			if *ot.Spec.Affinity == (corev1.Affinity{}) {
				ot.Spec.Affinity = nil
			}
		case t.Spec.Affinity != nil && ot.Spec.Affinity == nil:
			ot.Spec.Affinity = &corev1.Affinity{NodeAffinity: t.Spec.Affinity.NodeAffinity}
		case t.Spec.Affinity != nil && ot.Spec.Affinity != nil:
			ot.Spec.Affinity.NodeAffinity = t.Spec.Affinity.NodeAffinity
		}
		ot.Spec.NodeSelector = t.Spec.NodeSelector
		ot.Spec.Tolerations = t.Spec.Tolerations
		ot.Annotations = t.Annotations
		ot.Labels = t.Labels
		ot.Spec.SchedulingGates = t.Spec.SchedulingGates
		if len(t.Spec.Containers) == len(ot.Spec.Containers) {
			for i := range t.Spec.Containers {
				if ot.Spec.Containers[i].Name == t.Spec.Containers[i].Name {
					ot.Spec.Containers[i].Resources = t.Spec.Containers[i].Resources
				}
			}
		}
		if len(t.Spec.InitContainers) == len(ot.Spec.InitContainers) {
			for i := range t.Spec.InitContainers {
				if ot.Spec.InitContainers[i].Name == t.Spec.InitContainers[i].Name {
					ot.Spec.InitContainers[i].Resources = t.Spec.InitContainers[i].Resources
				}
			}
		}
		errs = append(errs, apivalidation.ValidateImmutableField(t.Spec, ot.Spec, p.Child("template.spec"))...)
		// Metadata may change freely then.
	} else {
		errs = append(errs, apivalidation.ValidateImmutableField(t, ot, p.Child("template"))...)
	}
	errs = append(errs, apivalidation.ValidateImmutableField(s.BackoffLimitPerIndex, o.BackoffLimitPerIndex, p.Child("backoffLimitPerIndex"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(s.ManagedBy, o.ManagedBy, p.Child("managedBy"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(s.SuccessPolicy, o.SuccessPolicy, p.Child("successPolicy"))...)
	return errs
}

func jobSuspendedCondition(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobSuspended && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// validateJobSpec holds what Jobs and CronJobs' job templates share.
func validateJobSpec(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		v    *int32
	}{{"parallelism", s.Parallelism}, {"completions", s.Completions}, {"backoffLimit", s.BackoffLimit},
		{"ttlSecondsAfterFinished", s.TTLSecondsAfterFinished}, {"backoffLimitPerIndex", s.BackoffLimitPerIndex}} {
		if f.v != nil {
			errs = append(errs, nonNegative(int64(*f.v), p.Child(f.name))...)
		}
	}
	if s.ActiveDeadlineSeconds != nil {
		errs = append(errs, nonNegative(*s.ActiveDeadlineSeconds, p.Child("activeDeadlineSeconds"))...)
	}
	if s.MaxFailedIndexes != nil {
		errs = append(errs, nonNegative(int64(*s.MaxFailedIndexes), p.Child("maxFailedIndexes"))...)
		if s.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Required(p.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
	}
	if s.ManagedBy != nil {
		errs = append(errs, validation.IsDomainPrefixedPath(p.Child("managedBy"), *s.ManagedBy)...)
		if len(*s.ManagedBy) > 63 {
			errs = append(errs, field.TooLong(p.Child("managedBy"), "", 63))
		}
	}
	indexed := false
	if m := s.CompletionMode; m != nil {
		switch *m {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			indexed = true
		default:
			errs = append(errs, field.NotSupported(p.Child("completionMode"), m, []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
	}
	if indexed {
		if s.Completions == nil {
			errs = append(errs, field.Required(p.Child("completions"), "when completion mode is Indexed"))
		}
		if s.Parallelism != nil && *s.Parallelism > 100000 {
			errs = append(errs, field.Invalid(p.Child("parallelism"), *s.Parallelism, "must be less than or equal to 100000 when completion mode is Indexed"))
		}
		if s.Completions != nil && s.MaxFailedIndexes != nil && *s.MaxFailedIndexes > *s.Completions {
			errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "must be less than or equal to completions"))
		}
		if s.MaxFailedIndexes != nil && *s.MaxFailedIndexes > 100000 {
			errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "must be less than or equal to 100000"))
		}
	} else if s.CompletionMode == nil || *s.CompletionMode == batchv1.NonIndexedCompletion {
		if s.BackoffLimitPerIndex != nil {
			errs = append(errs, field.Invalid(p.Child("backoffLimitPerIndex"), *s.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if s.MaxFailedIndexes != nil {
			errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "requires indexed completion mode"))
		}
	}
	if s.PodFailurePolicy != nil {
		errs = append(errs, podFailurePolicy(s, p.Child("podFailurePolicy"))...)
	}
	if s.SuccessPolicy != nil && !indexed {
		errs = append(errs, field.Invalid(p.Child("successPolicy"), *s.SuccessPolicy, "requires indexed completion mode"))
	}
	if r := s.PodReplacementPolicy; r != nil {
		rp := p.Child("podReplacementPolicy")
		if s.PodFailurePolicy != nil {
			if *r != batchv1.Failed {
				errs = append(errs, field.NotSupported(rp, *r, []batchv1.PodReplacementPolicy{batchv1.Failed}))
			}
		} else if *r != batchv1.Failed && *r != batchv1.TerminatingOrFailed {
			errs = append(errs, field.NotSupported(rp, *r, []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}))
		}
	}

	tp := p.Child("template")
	errs = append(errs, validatePodTemplateSpec(&s.Template, tp)...)
	rpPath := tp.Child("spec", "restartPolicy")
	switch rp := s.Template.Spec.RestartPolicy; {
	case rp == "" || rp == corev1.RestartPolicyAlways:
		// An unset policy defaults to Always, which jobs cannot use.
		errs = append(errs, field.Required(rpPath, `valid values: "OnFailure", "Never"`))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(rpPath, rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case s.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(rpPath, rp, `only "Never" is supported when podFailurePolicy is specified`))
	}
	return errs
}

func podFailurePolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rulesPath := p.Child("rules")
	if len(s.PodFailurePolicy.Rules) > 20 {
		errs = append(errs, field.TooMany(rulesPath, len(s.PodFailurePolicy.Rules), 20))
	}
	names := map[string]bool{}
	for _, c := range s.Template.Spec.Containers {
		names[c.Name] = true
	}
	for _, c := range s.Template.Spec.InitContainers {
		names[c.Name] = true
	}
	for i := range s.PodFailurePolicy.Rules {
		r := &s.PodFailurePolicy.Rules[i]
		rp := rulesPath.Index(i)
		ap := rp.Child("action")
		switch r.Action {
		case "":
			errs = append(errs, field.Required(ap, fmt.Sprintf("valid values: %q", podFailurePolicyActions)))
		case batchv1.PodFailurePolicyActionFailIndex:
			if s.BackoffLimitPerIndex == nil {
				errs = append(errs, field.Invalid(ap, r.Action, "requires the backoffLimitPerIndex to be set"))
			}
		case batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore:
		default:
			errs = append(errs, field.NotSupported(ap, r.Action, podFailurePolicyActions))
		}
		if ec := r.OnExitCodes; ec != nil {
			ep := rp.Child("onExitCodes")
			switch ec.Operator {
			case "":
				errs = append(errs, field.Required(ep.Child("operator"), fmt.Sprintf("valid values: %q", exitCodeOperators)))
			case batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn:
			default:
				errs = append(errs, field.NotSupported(ep.Child("operator"), ec.Operator, exitCodeOperators))
			}
			if ec.ContainerName != nil && !names[*ec.ContainerName] {
				errs = append(errs, field.Invalid(ep.Child("containerName"), *ec.ContainerName, "must be one of the container or initContainer names in the pod template"))
			}
			vp := ep.Child("values")
			if len(ec.Values) == 0 {
				errs = append(errs, field.Invalid(vp, ec.Values, "at least one value is required"))
			} else if len(ec.Values) > 255 {
				errs = append(errs, field.TooMany(vp, len(ec.Values), 255))
			}
			ordered := true
			for j, v := range ec.Values {
				if ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
					errs = append(errs, field.Invalid(vp.Index(j), v, "must not be 0 for the In operator"))
				}
				for k := 0; k < j; k++ {
					if ec.Values[k] == v {
						errs = append(errs, field.Duplicate(vp.Index(j), v))
						break
					}
				}
				if j > 0 && ec.Values[j-1] > v {
					ordered = false
				}
			}
			if !ordered {
				errs = append(errs, field.Invalid(vp, ec.Values, "must be ordered"))
			}
		}
		if len(r.OnPodConditions) > 0 {
			cp := rp.Child("onPodConditions")
			if len(r.OnPodConditions) > 20 {
				errs = append(errs, field.TooMany(cp, len(r.OnPodConditions), 20))
			}
			for j, pc := range r.OnPodConditions {
				errs = append(errs, qualifiedName(string(pc.Type), cp.Index(j).Child("type"))...)
				switch pc.Status {
				case "":
					errs = append(errs, field.Required(cp.Index(j).Child("status"), fmt.Sprintf("valid values: %q", conditionStatuses)))
				case corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionUnknown:
				default:
					errs = append(errs, field.NotSupported(cp.Index(j).Child("status"), pc.Status, conditionStatuses))
				}
			}
		}
		if r.OnExitCodes != nil && len(r.OnPodConditions) > 0 {
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
		}
		if r.OnExitCodes == nil && len(r.OnPodConditions) == 0 {
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
		}
	}
	return errs
}

func validateCronJob(obj, old runtime.Object) field.ErrorList {
	cj := obj.(*batchv1.CronJob)
	var oldSpec *batchv1.CronJobSpec
	if old != nil {
		oldSpec = &old.(*batchv1.CronJob).Spec
		if specUnchanged(&cj.Spec, oldSpec, old) {
			return nil
		}
	}
	s := &cj.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	if s.Schedule == "" {
		errs = append(errs, field.Required(p.Child("schedule"), ""))
	} else {
		// A TZ prefix is tolerated only on objects that already had one.
		tzAllowed := oldSpec != nil && strings.Contains(oldSpec.Schedule, "TZ")
		errs = append(errs, scheduleFormat(s.Schedule, tzAllowed, s.TimeZone, p.Child("schedule"))...)
	}
	if s.StartingDeadlineSeconds != nil {
		errs = append(errs, nonNegative(*s.StartingDeadlineSeconds, p.Child("startingDeadlineSeconds"))...)
	}
	if oldSpec == nil || !equality.Semantic.DeepEqual(oldSpec.TimeZone, s.TimeZone) {
		errs = append(errs, timeZone(s.TimeZone, p.Child("timeZone"))...)
	}
	switch s.ConcurrencyPolicy {
	case "", batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		errs = append(errs, field.NotSupported(p.Child("concurrencyPolicy"), s.ConcurrencyPolicy,
			[]batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}))
	}
	jp := p.Child("jobTemplate")
	errs = append(errs, validateJobSpec(&s.JobTemplate.Spec, jp.Child("spec"))...)
	if s.JobTemplate.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jp.Child("spec", "selector"), s.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ms := s.JobTemplate.Spec.ManualSelector; ms != nil && *ms {
		errs = append(errs, field.NotSupported(jp.Child("spec", "manualSelector"), ms, []string{"nil", "false"}))
	}
	if s.SuccessfulJobsHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.SuccessfulJobsHistoryLimit), p.Child("successfulJobsHistoryLimit"))...)
	}
	if s.FailedJobsHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.FailedJobsHistoryLimit), p.Child("failedJobsHistoryLimit"))...)
	}
	// The controller names jobs "<cronjob>-<11 characters>", which must
	// still fit a label.
	if old == nil && len(cj.Name) > validation.DNS1035LabelMaxLength-11 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, "must be no more than 52 characters"))
	}
	return errs
}
