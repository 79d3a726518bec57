package registry

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const mismatchMsg = "`selector` does not match template `labels`"

func TestValidateDeployment(t *testing.T) {
	runCases(t, validDeployment, validateDeployment, []vcase[*appsv1.Deployment]{
		{name: "valid"},
		{name: "kubectl create deployment, before defaults", mutate: func(d *appsv1.Deployment) {
			d.Spec = appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}}}}
		}},
		{name: "selector by expression", mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"frontend", "backend"}}}}
		}},
		{name: "selector does not match", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "x"} },
			want: []string{`spec.template.metadata.labels: Invalid value: {"app":"x"}: ` + mismatchMsg}},
		{name: "expression does not match", mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"frontend"}}}}
		}, want: []string{`spec.template.metadata.labels: Invalid value: {"app":"web","tier":"frontend"}: ` + mismatchMsg}},
		{name: "no selector", mutate: func(d *appsv1.Deployment) { d.Spec.Selector = nil },
			want: []string{"spec.selector: Required value", `spec.template.metadata.labels: Invalid value: {"app":"web","tier":"frontend"}: ` + mismatchMsg}},
		{name: "empty selector", mutate: func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} },
			want: []string{"spec.selector: Invalid value: {}: empty selector is invalid for deployment"}},
		{name: "selector with a bad operator", mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Has"}}}
		}, want: []string{`spec.selector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator`,
			`spec.selector: Invalid value: {"matchExpressions":[{"key":"app","operator":"Has"}]}: invalid label selector`}},
		{name: "negative replicas", mutate: func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](-1) },
			want: []string{"spec.replicas: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "pods that do not restart", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			want: []string{`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`}},
		{name: "deadline on pods", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](10) },
			want: []string{"spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"}},
		{name: "container error inside the template", mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources.Requests["cpu"] = q("2")
		}, want: []string{`spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 500m`}},
		{name: "template label", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Labels["tier"] = "front end" },
			want: []string{`spec.template.labels: Invalid value: "front end": ` + labelValueMsg}},
		{name: "nothing may be unavailable and nothing surge", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromString("0%"))}
		}, want: []string{"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"}},
		{name: "zero unavailable, default surge", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0))}
		}},
		{name: "more than everything unavailable", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("150%"))
		}, want: []string{`spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%`}},
		{name: "surge may exceed 100%", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("200%")) }},
		{name: "not a percentage", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("lots")) },
			want: []string{`spec.strategy.rollingUpdate.maxSurge: Invalid value: "lots": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')`}},
		{name: "negative surge", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(-1)) },
			want: []string{"spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "recreate with rolling parameters", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType },
			want: []string{"spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"}},
		{name: "unknown strategy", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy = appsv1.DeploymentStrategy{Type: "BlueGreen"} },
			want: []string{`spec.strategy: Unsupported value: {"Type":"BlueGreen","RollingUpdate":null}: supported values: "Recreate", "RollingUpdate"`}},
		{name: "negative history", mutate: func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptr.To[int32](-1) },
			want: []string{"spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "progress deadline not after ready time", mutate: func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 600 },
			want: []string{"spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"}},
	})

	// An update is judged on its own; an unchanged invalid spec is let be.
	old := validDeployment()
	d := old.DeepCopy()
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	expectErrs(t, validateDeployment(d, old))
	d.Spec.Replicas = ptr.To[int32](-2)
	expectErrs(t, validateDeployment(d, old), "spec.replicas: Invalid value: -2: must be greater than or equal to 0")
	old.Spec.Replicas = ptr.To[int32](-2)
	d = old.DeepCopy()
	d.Status.Replicas = 1
	expectErrs(t, validateDeployment(d, old))
}

func TestValidateReplicaSetAndController(t *testing.T) {
	rs := func() *appsv1.ReplicaSet {
		d := validDeployment()
		return &appsv1.ReplicaSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
	}
	runCases(t, rs, validateReplicaSet, []vcase[*appsv1.ReplicaSet]{
		{name: "valid"},
		{name: "empty selector", mutate: func(r *appsv1.ReplicaSet) { r.Spec.Selector = &metav1.LabelSelector{} },
			want: []string{"spec.selector: Invalid value: {}: empty selector is invalid for deployment"}},
		{name: "negative min ready", mutate: func(r *appsv1.ReplicaSet) { r.Spec.MinReadySeconds = -1 },
			want: []string{"spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0"}},
	})
	rc := func() *corev1.ReplicationController {
		d := validDeployment()
		return &corev1.ReplicationController{ObjectMeta: d.ObjectMeta, Spec: corev1.ReplicationControllerSpec{
			Replicas: ptr.To[int32](2), Selector: map[string]string{"app": "web"}, Template: d.Spec.Template.DeepCopy()}}
	}
	runCases(t, rc, validateReplicationController, []vcase[*corev1.ReplicationController]{
		{name: "valid"},
		{name: "selector taken from the template", mutate: func(r *corev1.ReplicationController) { r.Spec.Selector = nil }},
		{name: "mismatch", mutate: func(r *corev1.ReplicationController) { r.Spec.Selector = map[string]string{"app": "db"} },
			want: []string{`spec.template.metadata.labels: Invalid value: {"app":"web","tier":"frontend"}: ` + mismatchMsg}},
		{name: "no template", mutate: func(r *corev1.ReplicationController) { r.Spec.Template = nil },
			want: []string{"spec.template: Required value"}},
		{name: "deadline", mutate: func(r *corev1.ReplicationController) { r.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](1) },
			want: []string{"spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported"}},
	})
}

func validStatefulSet() *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	spec := corev1.PodSpec{Containers: []corev1.Container{{
		Name: "postgres", Image: "postgres:17",
		Ports:        []corev1.ContainerPort{{Name: "pg", ContainerPort: 5432}},
		Env:          []corev1.EnvVar{{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
		Resources:    corev1.ResourceRequirements{Requests: rl("cpu", "250m", "memory", "512Mi"), Limits: rl("memory", "1Gi")},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"pg_isready"}}},
			PeriodSeconds: 5},
	}}, TerminationGracePeriodSeconds: ptr.To[int64](60)}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "10Gi")}},
			}},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
		},
	}
}

func TestValidateStatefulSet(t *testing.T) {
	runCases(t, validStatefulSet, validateStatefulSet, []vcase[*appsv1.StatefulSet]{
		{name: "valid, mounting its claim template"},
		{name: "controller-set hostname is not judged", mutate: func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Hostname = "NOT_VALID" }},
		{name: "mount of no volume", mutate: func(s *appsv1.StatefulSet) { s.Spec.VolumeClaimTemplates[0].Name = "pgdata" },
			want: []string{`spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"`}},
		{name: "pod management policy", mutate: func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = "Random" },
			want: []string{`spec.podManagementPolicy: Invalid value: "Random": must be 'OrderedReady' or 'Parallel'`}},
		{name: "update strategy", mutate: func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = "Recreate" },
			want: []string{`spec.updateStrategy: Invalid value: {"Type":"Recreate","RollingUpdate":null}: must be 'RollingUpdate' or 'OnDelete'`}},
		{name: "zero unavailable", mutate: func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(0))}
		}, want: []string{"spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0"}},
		{name: "service name", mutate: func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "DB" },
			want: []string{`spec.serviceName: Invalid value: "DB": ` + dnsLabelMsg}},
		{name: "claim template without size", mutate: func(s *appsv1.StatefulSet) { s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = nil },
			want: []string{"spec.volumeClaimTemplates[0].spec.resources.requests[storage]: Required value"}},
		{name: "empty selector", mutate: func(s *appsv1.StatefulSet) { s.Spec.Selector = &metav1.LabelSelector{} },
			want: []string{"spec.selector: Invalid value: {}: empty selector is invalid for statefulset"}},
		{name: "restart policy", mutate: func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure },
			want: []string{`spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"`}},
	})
}

func validDaemonSet() *appsv1.DaemonSet {
	d := validDeployment()
	return &appsv1.DaemonSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template,
		UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(1)), MaxSurge: ptr.To(intstr.FromInt32(0))}}}}
}

func TestValidateDaemonSet(t *testing.T) {
	runCases(t, validDaemonSet, validateDaemonSet, []vcase[*appsv1.DaemonSet]{
		{name: "valid"},
		{name: "no rolling parameters", mutate: func(d *appsv1.DaemonSet) { d.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{} }},
		{name: "surge and unavailable", mutate: func(d *appsv1.DaemonSet) { d.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(1)) },
			want: []string{"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"}},
		{name: "neither", mutate: func(d *appsv1.DaemonSet) {
			d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(0))
		},
			want: []string{"spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"}},
		{name: "no selector", mutate: func(d *appsv1.DaemonSet) { d.Spec.Selector = nil },
			want: []string{`spec.template.metadata.labels: Invalid value: {"app":"web","tier":"frontend"}: ` + mismatchMsg}},
		{name: "empty selector", mutate: func(d *appsv1.DaemonSet) { d.Spec.Selector = &metav1.LabelSelector{} },
			want: []string{"spec.selector: Invalid value: {}: empty selector is invalid for daemonset"}},
	})
}

func validJob() *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default"},
		Spec: batchv1.JobSpec{
			Parallelism: ptr.To[int32](2), Completions: ptr.To[int32](4), BackoffLimit: ptr.To[int32](6),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers:    []corev1.Container{{Name: "pi", Image: "perl:5.34", Command: []string{"perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"}}},
				RestartPolicy: corev1.RestartPolicyNever,
			}},
		},
	}
}

func TestValidateJob(t *testing.T) {
	runCases(t, validJob, validateJob, []vcase[*batchv1.Job]{
		{name: "valid"},
		{name: "manual selector matching", mutate: func(j *batchv1.Job) {
			j.Spec.ManualSelector = ptr.To(true)
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"job": "pi"}}
			j.Spec.Template.Labels = map[string]string{"job": "pi"}
		}},
		{name: "manual selector missing", mutate: func(j *batchv1.Job) { j.Spec.ManualSelector = ptr.To(true) },
			want: []string{"spec.selector: Required value"}},
		{name: "selector not matching", mutate: func(j *batchv1.Job) {
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"job": "pi"}}
		}, want: []string{"spec.template.metadata.labels: Invalid value: null: " + mismatchMsg}},
		{name: "restart always", mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways },
			want: []string{`spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`}},
		{name: "restart unset", mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = "" },
			want: []string{`spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`}},
		{name: "negative parallelism", mutate: func(j *batchv1.Job) { j.Spec.Parallelism = ptr.To[int32](-1) },
			want: []string{"spec.parallelism: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "negative completions and backoff", mutate: func(j *batchv1.Job) {
			j.Spec.Completions = ptr.To[int32](-1)
			j.Spec.BackoffLimit = ptr.To[int32](-1)
		}, want: []string{"spec.completions: Invalid value: -1: must be greater than or equal to 0",
			"spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "indexed without completions", mutate: func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			j.Spec.Completions = nil
		}, want: []string{"spec.completions: Required value: when completion mode is Indexed"}},
		{name: "pod failure policy needs Never", mutate: func(j *batchv1.Job) {
			j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{Action: batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}}}}
		}, want: []string{`spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified`}},
	})

	// The template is frozen once the job runs.
	old := validJob()
	j := old.DeepCopy()
	j.Spec.Template.Spec.Containers[0].Image = "perl:5.36"
	errs := validateJob(j, old)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "spec.template: Invalid value: ") || !strings.HasSuffix(errs[0].Error(), ": field is immutable") {
		t.Errorf("template change: %v", errs)
	}
	j = old.DeepCopy()
	j.Spec.Completions = ptr.To[int32](5)
	expectErrs(t, validateJob(j, old), "spec.completions: Invalid value: 5: field is immutable")
	// A suspended job that has not started may be re-aimed.
	old.Spec.Suspend = ptr.To(true)
	j = old.DeepCopy()
	j.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "batch"}
	j.Spec.Template.Spec.Containers[0].Resources.Requests = rl("cpu", "2")
	expectErrs(t, validateJob(j, old))
	// Status writes are fine.
	j = old.DeepCopy()
	j.Status.Active = 1
	expectErrs(t, validateJob(j, old))
}

func validCronJob() *batchv1.CronJob {
	j := validJob()
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "default"},
		Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent,
			SuccessfulJobsHistoryLimit: ptr.To[int32](3), FailedJobsHistoryLimit: ptr.To[int32](1),
			JobTemplate: batchv1.JobTemplateSpec{Spec: j.Spec}},
	}
}

func TestValidateCronJob(t *testing.T) {
	runCases(t, validCronJob, validateCronJob, []vcase[*batchv1.CronJob]{
		{name: "every five minutes"},
		{name: "hourly", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "@hourly" }},
		{name: "week days by name", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "30 9 * jan-jun MON-FRI" }},
		{name: "time zone", mutate: func(c *batchv1.CronJob) { c.Spec.TimeZone = ptr.To("Europe/Berlin") }},
		{name: "four fields", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "*/5 * * *" },
			want: []string{`spec.schedule: Invalid value: "*/5 * * *": expected exactly 5 fields, found 4: [*/5 * * *]`}},
		{name: "minute out of range", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "61 * * * *" },
			want: []string{`spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61`}},
		{name: "no schedule", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "" },
			want: []string{"spec.schedule: Required value"}},
		{name: "TZ in the schedule", mutate: func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" },
			want: []string{`spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead`}},
		{name: "unknown time zone", mutate: func(c *batchv1.CronJob) { c.Spec.TimeZone = ptr.To("Mars/Olympus_Mons") },
			want: []string{`spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons`}},
		{name: "local time zone", mutate: func(c *batchv1.CronJob) { c.Spec.TimeZone = ptr.To("Local") },
			want: []string{`spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones`}},
		{name: "concurrency policy", mutate: func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = "Sometimes" },
			want: []string{`spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"`}},
		{name: "negative history", mutate: func(c *batchv1.CronJob) { c.Spec.FailedJobsHistoryLimit = ptr.To[int32](-1) },
			want: []string{"spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "job pods restart always", mutate: func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		},
			want: []string{`spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`}},
		{name: "job selector", mutate: func(c *batchv1.CronJob) { c.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{} },
			want: []string{"spec.jobTemplate.spec.selector: Invalid value: {}: `selector` will be auto-generated"}},
		{name: "name too long for its jobs", mutate: func(c *batchv1.CronJob) { c.Name = strings.Repeat("a", 53) },
			want: []string{`metadata.name: Invalid value: "` + strings.Repeat("a", 53) + `": must be no more than 52 characters`}},
	})
}

func TestValidateCronSchedules(t *testing.T) {
	for spec, want := range map[string]string{
		"* * * * *":                 "",
		"0 0 1 1 *":                 "",
		"0 */2 * * 1-5":             "",
		"5/15 0-23/2 1,15 * ?":      "",
		"@every 90s":                "",
		"@daily":                    "",
		"CRON_TZ=UTC 0 3 * * *":     "",
		"":                          "empty spec string",
		"@fortnightly":              "unrecognized descriptor: @fortnightly",
		"@every one":                `failed to parse duration @every one: time: invalid duration "one"`,
		"x * * * *":                 `failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax`,
		"1-2-3 * * * *":             "too many hyphens: 1-2-3",
		"*/5/2 * * * *":             "too many slashes: */5/2",
		"0 0 0 * *":                 "beginning of range (0) below minimum (1): 0",
		"5-1 * * * *":               "beginning of range (5) beyond end of range (1): 5-1",
		"*/0 * * * *":               "step of range should be a positive number: */0",
		"0 0 * * 7":                 "end of range (7) above maximum (6): 7",
		"0 0 * foo *":               `failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax`,
		"* * * * * *":               "expected exactly 5 fields, found 6: [* * * * * *]",
		"TZ=Nowhere/City * * * * *": "provided bad location Nowhere/City: unknown time zone Nowhere/City",
	} {
		got := ""
		if err := parseCronSchedule(spec); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%q: %q, want %q", spec, got, want)
		}
	}
}
