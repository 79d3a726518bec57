// Package cronjob is the CronJob controller, as upstream's: at each time
// of a CronJob's schedule (five fields or an @macro, in spec.timeZone) it
// creates a Job named NAME-<minutes since the epoch> from the job template,
// annotated with its scheduled time; it keeps status.active,
// lastScheduleTime and lastSuccessfulTime; it honours suspend,
// concurrencyPolicy (Allow, Forbid: skip while one runs, Replace: delete
// the running ones first) and startingDeadlineSeconds (a start missed by
// longer is skipped), and deletes the oldest finished Jobs beyond the
// history limits.
//
// Time is the manager's clock (framework.Context.Clock), which tests can
// move (see controllers/testclock).
package cronjob

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

const ownerIndex = "cronjob:owner"

// Controller is the "cronjob" controller.
type Controller struct {
	cronjobs *framework.Informer[*batchv1.CronJob]
	jobs     *framework.Informer[*batchv1.Job]
	clients  *framework.Clients
	recorder framework.Recorder
	clock    clock.WithTicker
	workers  int
	queue    *framework.Queue
}

// New makes the controller.
func New(c *framework.Context) (framework.Runnable, error) {
	clk := c.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	jm := &Controller{cronjobs: c.Factory.CronJobs(), jobs: c.Factory.Jobs(), clients: c.Clients,
		recorder: c.Recorder, clock: clk, workers: c.Workers}
	if jm.workers <= 0 {
		jm.workers = 5
	}
	jm.queue = framework.NewQueue("cronjob", jm.sync)
	jm.jobs.AddIndex(ownerIndex, func(j *batchv1.Job) []string {
		if ref := metav1.GetControllerOfNoCopy(j); ref != nil && ref.Kind == controllerKind.Kind {
			return []string{string(ref.UID)}
		}
		return nil
	})
	jm.cronjobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    jm.queue.EnqueueObject,
		UpdateFunc: jm.updateCronJob,
	})
	jm.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: jm.jobChanged,
		UpdateFunc: func(o, n any) {
			oj, ok1 := o.(*batchv1.Job)
			nj, ok2 := n.(*batchv1.Job)
			if !ok1 || !ok2 || oj.ResourceVersion == nj.ResourceVersion {
				return
			}
			if !ptr.Equal(ownerUID(oj), ownerUID(nj)) {
				jm.jobChanged(o)
			}
			jm.jobChanged(n)
		},
		DeleteFunc: jm.jobChanged,
	})
	return jm, nil
}

func ownerUID(j *batchv1.Job) *string {
	if ref := metav1.GetControllerOfNoCopy(j); ref != nil {
		return ptr.To(string(ref.UID))
	}
	return nil
}

// Run implements framework.Runnable.
func (jm *Controller) Run(ctx context.Context) {
	if j, ok := jm.clock.(interface{ OnJump(func()) }); ok {
		// A test moved the clock: schedules may be due.
		j.OnJump(func() {
			for _, cj := range jm.cronjobs.ListAll() {
				jm.queue.Enqueue(framework.KeyOf(cj))
			}
		})
	}
	jm.queue.Run(ctx, jm.workers, jm.cronjobs.HasSynced, jm.jobs.HasSynced)
}

func (jm *Controller) resolve(cluster, ns string, ref *metav1.OwnerReference) *batchv1.CronJob {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return nil
	}
	cj, err := jm.cronjobs.Get(cluster, ns, ref.Name)
	if err != nil || cj.UID != ref.UID {
		return nil
	}
	return cj
}

func (jm *Controller) jobChanged(obj any) {
	j, ok := framework.ObjectFromEvent(obj).(*batchv1.Job)
	if !ok {
		return
	}
	if cj := jm.resolve(framework.ClusterOf(j), j.Namespace, metav1.GetControllerOf(j)); cj != nil {
		jm.queue.Enqueue(framework.KeyOf(cj))
	}
}

func (jm *Controller) updateCronJob(o, n any) {
	old, ok1 := o.(*batchv1.CronJob)
	cj, ok2 := n.(*batchv1.CronJob)
	if !ok1 || !ok2 {
		return
	}
	if old.Spec.Schedule != cj.Spec.Schedule || !ptr.Equal(old.Spec.TimeZone, cj.Spec.TimeZone) {
		sched, err := Parse(Format(cj))
		if err != nil {
			jm.recorder.Eventf(cj, corev1.EventTypeWarning, "UnParseableCronJobSchedule", "unparseable schedule for cronjob: %s", cj.Spec.Schedule)
			return
		}
		jm.queue.EnqueueAfter(framework.KeyOf(cj), NextRequeue(cj, jm.clock.Now(), sched))
		return
	}
	jm.queue.Enqueue(framework.KeyOf(cj))
}

func (jm *Controller) sync(ctx context.Context, key framework.Key) error {
	cached, err := jm.cronjobs.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var jobs []*batchv1.Job
	for _, j := range jm.jobs.ByIndex(ownerIndex, string(cached.UID)) {
		if j.Namespace == key.Namespace && framework.ClusterOf(j) == key.Cluster {
			jobs = append(jobs, j)
		}
	}
	cj := cached.DeepCopy()
	cleaned := jm.cleanupFinishedJobs(ctx, key, cj, jobs)
	requeue, changed, syncErr := jm.syncCronJob(ctx, key, cj, jobs)
	if syncErr != nil {
		klog.FromContext(ctx).V(2).Info("Error reconciling cronjob", "cronjob", key.String(), "err", syncErr)
	}
	if cleaned || changed {
		c := cj.DeepCopy()
		framework.StripCluster(c)
		if _, err := jm.clients.For(key.Cluster).BatchV1().CronJobs(key.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if requeue != nil {
		jm.queue.EnqueueAfter(key, *requeue)
		return nil
	}
	return syncErr
}

func finishedType(j *batchv1.Job) (batchv1.JobConditionType, bool) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, true
		}
	}
	return "", false
}

func inActive(cj *batchv1.CronJob, j *batchv1.Job) bool {
	for _, r := range cj.Status.Active {
		if r.UID == j.UID {
			return true
		}
	}
	return false
}

func removeActive(cj *batchv1.CronJob, uid string) {
	var keep []corev1.ObjectReference
	for _, r := range cj.Status.Active {
		if string(r.UID) != uid {
			keep = append(keep, r)
		}
	}
	cj.Status.Active = keep
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name,
		UID: j.UID, ResourceVersion: j.ResourceVersion}
}

// syncCronJob brings cj's status up to date with its Jobs and starts the
// Job due now, if any; it answers when to look again and whether the
// status changed.
func (jm *Controller) syncCronJob(ctx context.Context, key framework.Key, cj *batchv1.CronJob, jobs []*batchv1.Job) (*time.Duration, bool, error) {
	now := jm.clock.Now()
	changed := false
	jobClient := jm.clients.For(key.Cluster).BatchV1().Jobs(key.Namespace)
	children := map[string]bool{}
	for _, j := range jobs {
		children[string(j.UID)] = true
		found := inActive(cj, j)
		t, finished := finishedType(j)
		switch {
		case !found && !finished:
			fresh, err := jm.clients.For(key.Cluster).BatchV1().CronJobs(key.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
			if err != nil {
				return nil, changed, err
			}
			if inActive(fresh, j) {
				metav1.SetMetaDataAnnotation(&fresh.ObjectMeta, framework.ClusterAnnotation, key.Cluster)
				*cj = *fresh
				continue
			}
			jm.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case finished:
			if found {
				removeActive(cj, string(j.UID))
				jm.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, t)
				changed = true
			}
			if t == batchv1.JobComplete && j.Status.CompletionTime != nil {
				if cj.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(cj.Status.LastSuccessfulTime.Time) {
					cj.Status.LastSuccessfulTime = j.Status.CompletionTime
					changed = true
				}
			}
		}
	}
	// Active Jobs that went away.
	for _, r := range cj.Status.Active {
		if children[string(r.UID)] {
			continue
		}
		_, err := jobClient.Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			jm.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", r.Name)
			removeActive(cj, string(r.UID))
			changed = true
		case err != nil:
			return nil, changed, err
		}
	}
	if cj.DeletionTimestamp != nil {
		return nil, changed, nil
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			jm.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return nil, changed, nil
		}
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return nil, changed, nil
	}
	if strings.Contains(cj.Spec.Schedule, "TZ") {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "UnsupportedSchedule", "CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	sched, err := Parse(Format(cj))
	if err != nil {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	scheduled, tooMany, err := NextScheduleTime(cj, now, sched)
	if tooMany {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
	}
	if err != nil {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	next := func() *time.Duration { return ptr.To(NextRequeue(cj, now, sched)) }
	if scheduled == nil {
		return next(), changed, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
		return next(), changed, nil
	}
	name := JobName(cj, *scheduled)
	for _, r := range cj.Status.Active {
		if r.Name == name && r.Namespace == cj.Namespace {
			return next(), changed, nil // already started
		}
	}
	if cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*scheduled) {
		return next(), changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0 {
		jm.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
		return next(), changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent {
		for _, r := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			j, err := jobClient.Get(ctx, r.Name, metav1.GetOptions{})
			if err != nil {
				jm.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedGet", "Get job: %v", err)
				return nil, changed, err
			}
			if !jm.deleteJob(ctx, key, cj, j) {
				return nil, changed, fmt.Errorf("could not replace job %s/%s", j.Namespace, j.Name)
			}
			changed = true
		}
	}
	req, err := jobFromTemplate(cj, *scheduled)
	if err != nil {
		return nil, changed, err
	}
	created, err := jobClient.Create(ctx, req, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, changed, err
	case apierrors.IsAlreadyExists(err):
		existing, err := jobClient.Get(ctx, req.Name, metav1.GetOptions{})
		if err != nil {
			return nil, changed, err
		}
		if !metav1.IsControlledBy(existing, cj) || inActive(cj, existing) {
			return nil, changed, nil
		}
		created = existing
	case err != nil:
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, changed, err
	default:
		jm.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", created.Name)
	}
	cj.Status.Active = append(cj.Status.Active, jobRef(created))
	cj.Status.LastScheduleTime = &metav1.Time{Time: *scheduled}
	return next(), true, nil
}

// jobFromTemplate is the Job of cj scheduled at t.
func jobFromTemplate(cj *batchv1.CronJob, t time.Time) (*batchv1.Job, error) {
	loc, err := time.LoadLocation(ptr.Deref(cj.Spec.TimeZone, ""))
	if err != nil {
		return nil, err
	}
	annotations := maps.Clone(cj.Spec.JobTemplate.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = t.In(loc).Format(time.RFC3339)
	labels := maps.Clone(cj.Spec.JobTemplate.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            JobName(cj, t),
			Namespace:       cj.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
	}
	cj.Spec.JobTemplate.Spec.DeepCopyInto(&j.Spec)
	return j, nil
}

// deleteJob deletes a Job of cj (its pods follow, through the garbage
// collector) and drops it from the active list.
func (jm *Controller) deleteJob(ctx context.Context, key framework.Key, cj *batchv1.CronJob, j *batchv1.Job) bool {
	bg := metav1.DeletePropagationBackground
	err := jm.clients.For(key.Cluster).BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		jm.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		return false
	}
	removeActive(cj, string(j.UID))
	jm.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	return true
}

// cleanupFinishedJobs deletes the oldest finished Jobs beyond the history
// limits.
func (jm *Controller) cleanupFinishedJobs(ctx context.Context, key framework.Key, cj *batchv1.CronJob, jobs []*batchv1.Job) bool {
	if cj.Spec.SuccessfulJobsHistoryLimit == nil && cj.Spec.FailedJobsHistoryLimit == nil {
		return false
	}
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		if j.DeletionTimestamp != nil {
			continue
		}
		switch t, _ := finishedType(j); t {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	changed := false
	for _, x := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{succeeded, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if x.limit == nil {
			continue
		}
		for _, j := range OldestBeyond(x.jobs, int(*x.limit)) {
			if jm.deleteJob(ctx, key, cj, j) {
				changed = true
			}
		}
	}
	return changed
}

// OldestBeyond are the jobs to delete to keep limit: the earliest started
// (Jobs never started count as the newest), by name among equals.
func OldestBeyond(jobs []*batchv1.Job, limit int) []*batchv1.Job {
	n := len(jobs) - limit
	if n <= 0 {
		return nil
	}
	js := append([]*batchv1.Job(nil), jobs...)
	sort.Slice(js, func(i, j int) bool {
		a, b := js[i].Status.StartTime, js[j].Status.StartTime
		switch {
		case a == nil && b != nil:
			return false
		case a != nil && b == nil:
			return true
		case a == nil && b == nil, a.Equal(b):
			return js[i].Name < js[j].Name
		}
		return a.Before(b)
	})
	return js[:n]
}
