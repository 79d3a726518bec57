package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

func deploymentRow(d *appsv1.Deployment, now time.Time) []any {
	// Unlike its siblings, the deployment printer renders the selector
	// without the "<none>" placeholder, so an empty selector is a blank cell.
	selector := "<invalid>"
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		selector = sel.String()
	}
	names, images := containerCells(d.Spec.Template.Spec.Containers)
	return []any{
		d.Name,
		fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, derefInt32(d.Spec.Replicas)),
		int64(d.Status.UpdatedReplicas),
		int64(d.Status.AvailableReplicas),
		age(&d.ObjectMeta, now),
		names, images, selector,
	}
}

func replicaSetRow(rs *appsv1.ReplicaSet, now time.Time) []any {
	names, images := containerCells(rs.Spec.Template.Spec.Containers)
	return []any{
		rs.Name,
		int64(derefInt32(rs.Spec.Replicas)),
		int64(rs.Status.Replicas),
		int64(rs.Status.ReadyReplicas),
		age(&rs.ObjectMeta, now),
		names, images,
		metav1.FormatLabelSelector(rs.Spec.Selector),
	}
}

func statefulSetRow(ss *appsv1.StatefulSet, now time.Time) []any {
	names, images := containerCells(ss.Spec.Template.Spec.Containers)
	return []any{
		ss.Name,
		fmt.Sprintf("%d/%d", ss.Status.ReadyReplicas, derefInt32(ss.Spec.Replicas)),
		age(&ss.ObjectMeta, now),
		names, images,
	}
}

func daemonSetRow(ds *appsv1.DaemonSet, now time.Time) []any {
	st := ds.Status
	names, images := containerCells(ds.Spec.Template.Spec.Containers)
	return []any{
		ds.Name,
		int64(st.DesiredNumberScheduled),
		int64(st.CurrentNumberScheduled),
		int64(st.NumberReady),
		int64(st.UpdatedNumberScheduled),
		int64(st.NumberAvailable),
		labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
		age(&ds.ObjectMeta, now),
		names, images,
		metav1.FormatLabelSelector(ds.Spec.Selector),
	}
}

func controllerRevisionRow(cr *appsv1.ControllerRevision, now time.Time) ([]any, error) {
	controller := none
	if ref := metav1.GetControllerOf(cr); ref != nil {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil, err
		}
		gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
		controller = ref.Name
		if !gk.Empty() {
			// e.g. "statefulset.apps/web", the form `kubectl get` accepts back.
			controller = strings.ToLower(gk.String()) + "/" + ref.Name
		}
	}
	return []any{cr.Name, controller, cr.Revision, age(&cr.ObjectMeta, now)}, nil
}

// jobConditionTrue looks only at the first condition of the given type.
func jobConditionTrue(conds []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobStatus(j *batchv1.Job) string {
	conds := j.Status.Conditions
	switch {
	case jobConditionTrue(conds, batchv1.JobComplete):
		return "Complete"
	case jobConditionTrue(conds, batchv1.JobFailed):
		return "Failed"
	case j.DeletionTimestamp != nil:
		return "Terminating"
	case jobConditionTrue(conds, batchv1.JobSuspended):
		return "Suspended"
	case jobConditionTrue(conds, batchv1.JobFailureTarget):
		return "FailureTarget"
	default:
		// kube-apiserver 1.33 has no SuccessCriteriaMet state in this column.
		return "Running"
	}
}

func jobCompletions(j *batchv1.Job) string {
	if j.Spec.Completions != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	}
	// Work-queue jobs finish on the first success; say how many pods race.
	if p := derefInt32(j.Spec.Parallelism); p > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, p)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

func jobDuration(j *batchv1.Job, now time.Time) string {
	switch start, end := j.Status.StartTime, j.Status.CompletionTime; {
	case start == nil:
		return ""
	case end == nil:
		return duration.HumanDuration(now.Sub(start.Time))
	default:
		return duration.HumanDuration(end.Sub(start.Time))
	}
}

func jobRow(j *batchv1.Job, now time.Time) []any {
	names, images := containerCells(j.Spec.Template.Spec.Containers)
	return []any{
		j.Name,
		jobStatus(j),
		jobCompletions(j),
		jobDuration(j, now),
		age(&j.ObjectMeta, now),
		names, images,
		metav1.FormatLabelSelector(j.Spec.Selector),
	}
}

func cronJobRow(cj *batchv1.CronJob, now time.Time) []any {
	last := none
	if t := cj.Status.LastScheduleTime; t != nil {
		last = since(*t, now)
	}
	tmpl := &cj.Spec.JobTemplate.Spec
	names, images := containerCells(tmpl.Template.Spec.Containers)
	return []any{
		cj.Name,
		cj.Spec.Schedule,
		stringPtrOr(cj.Spec.TimeZone, none),
		boolPtrCell(cj.Spec.Suspend),
		int64(len(cj.Status.Active)),
		last,
		age(&cj.ObjectMeta, now),
		names, images,
		metav1.FormatLabelSelector(tmpl.Selector),
	}
}

func horizontalPodAutoscalerRow(hpa *autoscalingv2.HorizontalPodAutoscaler, now time.Time) []any {
	minPods := unset
	if hpa.Spec.MinReplicas != nil {
		minPods = fmt.Sprint(*hpa.Spec.MinReplicas)
	}
	ref := hpa.Spec.ScaleTargetRef
	return []any{
		hpa.Name,
		ref.Kind + "/" + ref.Name,
		hpaTargets(hpa.Spec.Metrics, hpa.Status.CurrentMetrics),
		minPods,
		int64(hpa.Spec.MaxReplicas),
		int64(hpa.Status.CurrentReplicas),
		age(&hpa.ObjectMeta, now),
	}
}

// hpaTargets renders "current/target" per metric, pairing spec and status
// entries by position, and keeps only the first two.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return none
	}
	const shown = 2
	var parts []string
	for i, spec := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		parts = append(parts, hpaTarget(spec, st))
	}
	if len(parts) > shown {
		return fmt.Sprintf("%s + %d more...", strings.Join(parts[:shown], ", "), len(parts)-shown)
	}
	return strings.Join(parts, ", ")
}

func hpaTarget(spec autoscalingv2.MetricSpec, st *autoscalingv2.MetricStatus) string {
	// valueOrAverage covers object and external metrics, which may target
	// either a total value or a per-pod average.
	valueOrAverage := func(target autoscalingv2.MetricTarget, current *autoscalingv2.MetricValueStatus) string {
		cur := unknown
		if target.AverageValue != nil {
			if current != nil && current.AverageValue != nil {
				cur = current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", cur, target.AverageValue.String())
		}
		if current != nil {
			cur = current.Value.String()
		}
		return fmt.Sprintf("%s/%s", cur, target.Value.String())
	}
	// resourceTarget covers resource and container-resource metrics, which
	// may target an average value or an average utilisation percentage.
	resourceTarget := func(name corev1.ResourceName, target autoscalingv2.MetricTarget, current *autoscalingv2.MetricValueStatus) string {
		cur := unknown
		if target.AverageValue != nil {
			if current != nil {
				cur = current.AverageValue.String()
			}
			return fmt.Sprintf("%s: %s/%s", name, cur, target.AverageValue.String())
		}
		if current != nil && current.AverageUtilization != nil {
			cur = fmt.Sprintf("%d%%", *current.AverageUtilization)
		}
		want := "<auto>"
		if target.AverageUtilization != nil {
			want = fmt.Sprintf("%d%%", *target.AverageUtilization)
		}
		return fmt.Sprintf("%s: %s/%s", name, cur, want)
	}

	switch {
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.External != nil {
			cur = &st.External.Current
		}
		return valueOrAverage(spec.External.Target, cur)
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.Object != nil {
			cur = &st.Object.Current
		}
		return valueOrAverage(spec.Object.Target, cur)
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		cur := unknown
		if st != nil && st.Pods != nil {
			cur = st.Pods.Current.AverageValue.String()
		}
		return fmt.Sprintf("%s/%s", cur, spec.Pods.Target.AverageValue.String())
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.Resource != nil {
			cur = &st.Resource.Current
		}
		return resourceTarget(spec.Resource.Name, spec.Resource.Target, cur)
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.ContainerResource != nil {
			cur = &st.ContainerResource.Current
		}
		return resourceTarget(spec.ContainerResource.Name, spec.ContainerResource.Target, cur)
	}
	return "<unknown type>"
}
