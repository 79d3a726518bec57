package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/claim"
	"github.com/pgkube/pgkube/controllers/framework"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"
)

// Labels the API server puts on a Job's pod template when it generates the
// Job's selector (upstream does; a server that does not leaves the Job
// without selector, and the controller then selects by these itself).
const (
	labelControllerUID       = "batch.kubernetes.io/controller-uid"
	labelJobName             = "batch.kubernetes.io/job-name"
	legacyLabelControllerUID = "controller-uid"
	legacyLabelJobName       = "job-name"
)

func hasFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer)
}

func finishedCondition(j *batchv1.Job) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func isFinished(j *batchv1.Job) bool { return finishedCondition(j) != nil }

func managedElsewhere(j *batchv1.Job) bool {
	return j.Spec.ManagedBy != nil && *j.Spec.ManagedBy != batchv1.JobControllerName
}

func suspended(j *batchv1.Job) bool { return j.Spec.Suspend != nil && *j.Spec.Suspend }

func onlyReplaceFailed(j *batchv1.Job) bool {
	return j.Spec.PodReplacementPolicy != nil && *j.Spec.PodReplacementPolicy == batchv1.Failed
}

// selectorOf is the Job's selector; a Job the server gave none (it should
// generate one from the uid) selects the pods labelled with its uid.
func selectorOf(j *batchv1.Job) (labels.Selector, error) {
	if j.Spec.Selector == nil {
		return labels.SelectorFromSet(labels.Set{labelControllerUID: string(j.UID)}), nil
	}
	return metav1.LabelSelectorAsSelector(j.Spec.Selector)
}

// isPodFailed: the pod failed, or (unless pods are replaced only once
// failed) it is being deleted without having succeeded.
func isPodFailed(p *corev1.Pod, j *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailed(j) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func terminatingPods(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n = max(n, cs.RestartCount)
	}
	return n
}

func phaseRank(p corev1.PodPhase) int {
	switch p {
	case corev1.PodPending:
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 3
}

// sortForRemoval orders pods from the first to remove: unscheduled before
// scheduled, pending before unknown before running, not ready before
// ready, ready more recently first, more restarts first, newer first.
func sortForRemoval(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if ra, rb := phaseRank(a.Status.Phase), phaseRank(b.Status.Phase); ra != rb {
			return ra < rb
		}
		if isReady(a) != isReady(b) {
			return !isReady(a)
		}
		if isReady(a) {
			if ta, tb := readySince(a), readySince(b); !ta.Equal(tb) {
				return ta.After(tb)
			}
		}
		if ra, rb := restarts(a), restarts(b); ra != rb {
			return ra > rb
		}
		return a.CreationTimestamp.After(b.CreationTimestamp.Time)
	})
}

// podsForRemoval are the active pods to delete: for an Indexed Job those
// with a bad or repeated index, then the least advanced until at least
// rmAtLeast.
func podsForRemoval(j *batchv1.Job, pods []*corev1.Pod, rmAtLeast int) []*corev1.Pod {
	var rm, left []*corev1.Pod
	if isIndexed(j) {
		rm, left = duplicateIndexPods(j, pods)
	} else {
		left = slices.Clone(pods)
	}
	if len(rm) < rmAtLeast {
		sortForRemoval(left)
		rm = append(rm, left[:min(len(left), rmAtLeast-len(rm))]...)
	}
	return rm
}

// syncCtx is what one sync of a Job works with.
type syncCtx struct {
	job           *batchv1.Job
	pods          []*corev1.Pod
	active        []*corev1.Pod
	ready         int32
	terminating   int32
	succeeded     int32
	failed        int32
	uncountedSucc sets.Set[types.UID]
	uncountedFail sets.Set[types.UID]
	expectedRm    sets.Set[types.UID]
	finished      *batchv1.JobCondition
	prevSucceeded intervals
	succeededIdx  intervals
	backoff       backoffRecord
}

// validPods are the tracked pods not yet counted that pass f.
func (sc *syncCtx) validPods(uncounted sets.Set[types.UID], f func(*corev1.Pod) bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range sc.pods {
		if !hasFinalizer(p) || uncounted.Has(p.UID) || sc.expectedRm.Has(p.UID) {
			continue
		}
		if isIndexed(sc.job) {
			if _, ok := validIndex(sc.job, p); !ok {
				continue
			}
		}
		if f(p) {
			out = append(out, p)
		}
	}
	return out
}

func newCondition(t batchv1.JobConditionType, reason, message string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: message,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

func findCondition(cs []batchv1.JobCondition, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// ensureCondition sets a condition (added only when True), and says
// whether anything changed.
func ensureCondition(cs []batchv1.JobCondition, t batchv1.JobConditionType, st corev1.ConditionStatus, reason, message string, now time.Time) ([]batchv1.JobCondition, bool) {
	if c := findCondition(cs, t); c != nil {
		if c.Status != st || c.Reason != reason || c.Message != message {
			*c = *newCondition(t, reason, message, now)
			c.Status = st
			return cs, true
		}
		return cs, false
	}
	if st == corev1.ConditionFalse {
		return cs, false
	}
	c := newCondition(t, reason, message, now)
	c.Status = st
	return append(cs, *c), true
}

func hasTrue(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	if c := findCondition(j.Status.Conditions, t); c != nil && c.Status == corev1.ConditionTrue {
		return c
	}
	return nil
}

func isSuccessCriteria(c *batchv1.JobCondition) bool {
	return c != nil && c.Type == batchv1.JobSuccessCriteriaMet && c.Status == corev1.ConditionTrue
}

// failJobMessage is the message of the first podFailurePolicy FailJob rule
// a failed pod matches.
func failJobMessage(j *batchv1.Job, pods []*corev1.Pod) *string {
	if j.Spec.PodFailurePolicy == nil {
		return nil
	}
	for _, p := range pods {
		if isPodFailed(p, j) {
			if msg, _, _ := matchFailurePolicy(j.Spec.PodFailurePolicy, p); msg != nil {
				return msg
			}
		}
	}
	return nil
}

// pastBackoffLimitOnFailure: with restartPolicy OnFailure, failures are
// container restarts in running pods.
func pastBackoffLimitOnFailure(j *batchv1.Job, pods []*corev1.Pod) bool {
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
			for _, cs := range p.Status.InitContainerStatuses {
				n += cs.RestartCount
			}
			for _, cs := range p.Status.ContainerStatuses {
				n += cs.RestartCount
			}
		}
	}
	if *j.Spec.BackoffLimit == 0 {
		return n > 0
	}
	return n >= *j.Spec.BackoffLimit
}

func (jm *Controller) pastActiveDeadline(j *batchv1.Job) bool {
	if j.Spec.ActiveDeadlineSeconds == nil || j.Status.StartTime == nil || suspended(j) {
		return false
	}
	return jm.clock.Since(j.Status.StartTime.Time) >= time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second
}

func (jm *Controller) cachedJob(k framework.Key) metav1.Object {
	j, err := jm.jobs.Get(k.Cluster, k.Namespace, k.Name)
	if err != nil {
		return nil
	}
	return j
}

// sync reconciles one Job, as upstream's syncJob.
func (jm *Controller) sync(ctx context.Context, key framework.Key) error {
	k := key.String()
	shared, err := jm.jobs.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		jm.exp.forget(k)
		jm.finalizers.forget(k)
		jm.removeBackoff(k)
		jm.written.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if managedElsewhere(shared) {
		return nil
	}
	if jm.written.IsStale(key, jm.cachedJob) {
		return fmt.Errorf("job %s: cache has not yet seen the last status written", key)
	}
	job := shared.DeepCopy()
	if isFinished(job) {
		jm.removeBackoff(k)
		jm.finished.Delete(job.UID)
		return nil
	}
	if _, ok := jm.finished.Load(job.UID); ok {
		return nil // finished, but the cache does not show it yet
	}
	if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode != batchv1.NonIndexedCompletion && *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		jm.recorder.Eventf(job, corev1.EventTypeWarning, "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown")
		return nil
	}
	if job.Spec.BackoffLimit == nil {
		job.Spec.BackoffLimit = ptr.To[int32](6)
	}
	if job.Spec.Parallelism == nil {
		job.Spec.Parallelism = ptr.To[int32](1)
	}
	if isIndexed(job) && job.Spec.Completions == nil {
		return nil // invalid; the server refuses it
	}
	if job.Status.UncountedTerminatedPods == nil {
		job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	satisfied := jm.exp.satisfied(k)
	pods, err := jm.podsForJob(ctx, key, job)
	if err != nil {
		return err
	}
	now := jm.clock.Now()
	sc := &syncCtx{
		job: job, pods: pods,
		uncountedSucc: sets.New(job.Status.UncountedTerminatedPods.Succeeded...),
		uncountedFail: sets.New(job.Status.UncountedTerminatedPods.Failed...),
		expectedRm:    jm.finalizers.get(k),
		terminating:   int32(len(terminatingPods(pods))),
	}
	for _, p := range pods {
		if isActive(p) {
			sc.active = append(sc.active, p)
			if isReady(p) {
				sc.ready++
			}
		}
	}
	active := int32(len(sc.active))
	newSucceeded := sc.validPods(sc.uncountedSucc, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	newFailed := sc.validPods(sc.uncountedFail, func(p *corev1.Pod) bool { return isPodFailed(p, job) })
	counted := 0
	for _, p := range newFailed {
		if _, count, _ := matchFailurePolicy(job.Spec.PodFailurePolicy, p); count {
			counted++
		}
	}
	sc.succeeded = job.Status.Succeeded + int32(len(newSucceeded)) + int32(sc.uncountedSucc.Len())
	sc.failed = job.Status.Failed + int32(counted) + int32(sc.uncountedFail.Len())
	if job.Status.StartTime == nil && !suspended(job) {
		job.Status.StartTime = ptr.To(metav1.NewTime(now))
	}
	sc.backoff = nextBackoff(jm.backoffOf(k), newSucceeded, newFailed)

	// Ending: pre-existing interim conditions, then failures, then success.
	sc.finished = hasTrue(job, batchv1.JobSuccessCriteriaMet)
	if sc.finished == nil {
		if ft := hasTrue(job, batchv1.JobFailureTarget); ft != nil {
			sc.finished = newCondition(batchv1.JobFailed, ft.Reason, ft.Message, now)
		} else if msg := failJobMessage(job, pods); msg != nil {
			sc.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, *msg, now)
		}
	}
	if sc.finished == nil {
		switch {
		case sc.failed > *job.Spec.BackoffLimit || pastBackoffLimitOnFailure(job, pods):
			sc.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", now)
		case jm.pastActiveDeadline(job):
			sc.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", now)
		case job.Spec.ActiveDeadlineSeconds != nil && !suspended(job):
			left := time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - jm.clock.Since(job.Status.StartTime.Time)
			jm.queue.EnqueueAfter(key, left)
		}
	}
	if isIndexed(job) {
		sc.prevSucceeded, sc.succeededIdx = succeededIndexes(job, pods)
		sc.succeeded = int32(sc.succeededIdx.total())
		if sc.finished == nil {
			if msg, met := matchSuccessPolicy(job.Spec.SuccessPolicy, *job.Spec.Completions, sc.succeededIdx); met {
				sc.finished = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy, msg, now)
			}
		}
	}

	var manageErr error
	suspendChanged := false
	if sc.finished != nil {
		deletedReady, deleted, err := jm.deleteActivePods(ctx, key, job, sc.active)
		if deleted != active || !satisfied {
			sc.finished = nil // wait for the pods to go
		}
		active -= deleted
		sc.terminating += deleted
		sc.ready -= deletedReady
		manageErr = err
	} else {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			active, manageErr = jm.manage(ctx, key, job, sc)
			managed = true
		}
		var complete bool
		if job.Spec.Completions == nil {
			// A work queue: done when any pod succeeded and none runs.
			complete = sc.succeeded > 0 && active == 0
		} else {
			complete = sc.succeeded >= *job.Spec.Completions && active == 0
		}
		switch {
		case complete:
			sc.finished = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", now)
		case managed && suspended(job):
			var changed bool
			job.Status.Conditions, changed = ensureCondition(job.Status.Conditions, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now)
			if changed {
				suspendChanged = true
				jm.recorder.Eventf(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
				job.Status.StartTime = nil
			}
		case managed:
			var changed bool
			job.Status.Conditions, changed = ensureCondition(job.Status.Conditions, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now)
			if changed {
				suspendChanged = true
				jm.recorder.Eventf(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
				// activeDeadlineSeconds counts from the resumption.
				job.Status.StartTime = ptr.To(metav1.NewTime(now))
			}
		}
	}
	needsFlush := suspendChanged || active != job.Status.Active || !ptr.Equal(&sc.ready, job.Status.Ready) ||
		!ptr.Equal(&sc.terminating, job.Status.Terminating)
	job.Status.Active = active
	job.Status.Ready = ptr.To(sc.ready)
	job.Status.Terminating = ptr.To(sc.terminating)
	if err := jm.track(ctx, key, sc, needsFlush); err != nil {
		return fmt.Errorf("tracking status: %w", err)
	}
	return manageErr
}

// podsForJob are the Job's pods: those it controls that its selector
// matches, and orphans it adopts (adding the tracking finalizer).
func (jm *Controller) podsForJob(ctx context.Context, key framework.Key, job *batchv1.Job) ([]*corev1.Pod, error) {
	sel, err := selectorOf(job)
	if err != nil {
		return nil, fmt.Errorf("job selector: %w", err)
	}
	var cands []*corev1.Pod
	for _, p := range jm.pods.ByIndex(ownerIndex, string(job.UID)) {
		if p.Namespace == job.Namespace && framework.ClusterOf(p) == key.Cluster {
			cands = append(cands, p)
		}
	}
	if job.Spec.Selector != nil { // only a real selector adopts
		for _, p := range jm.pods.ByIndex(ownerIndex, orphanIndexValue(key.Cluster, key.Namespace)) {
			cands = append(cands, p)
		}
	}
	client := jm.clients.For(key.Cluster).CoreV1().Pods(job.Namespace)
	owned := map[types.UID]bool{}
	for _, p := range cands {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == job.UID {
			owned[p.UID] = true
		}
	}
	pods, err := claim.Objects(ctx, &claim.Controller{
		Object: job, Kind: controllerKind,
		Match: func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
		CanAdopt: claim.RecheckDeletion(job.UID, func(ctx context.Context) (metav1.Object, error) {
			return jm.clients.For(key.Cluster).BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		}),
		Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
			if !owned[o.GetUID()] {
				// Adopting: the pod gets the tracking finalizer too.
				var m map[string]any
				if err := json.Unmarshal(patch, &m); err == nil {
					if md, ok := m["metadata"].(map[string]any); ok {
						md["finalizers"] = []string{batchv1.JobTrackingFinalizer}
						if b, err := json.Marshal(m); err == nil {
							patch = b
						}
					}
				}
			}
			_, err := client.Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}, cands)
	for i, p := range pods {
		if !owned[p.UID] && !hasFinalizer(p) {
			c := p.DeepCopy()
			c.Finalizers = append(c.Finalizers, batchv1.JobTrackingFinalizer)
			pods[i] = c
		}
	}
	return pods, err
}

// manage creates or deletes pods towards the wanted number of active ones
// and answers how many are active after.
func (jm *Controller) manage(ctx context.Context, key framework.Key, job *batchv1.Job, sc *syncCtx) (int32, error) {
	k := key.String()
	active := int32(len(sc.active))
	parallelism := *job.Spec.Parallelism
	if suspended(job) {
		rm := podsForRemoval(job, sc.active, int(active))
		jm.exp.expectDeletions(k, len(rm))
		ready, removed, err := jm.deleteJobPods(ctx, key, job, rm)
		sc.terminating += removed
		sc.ready -= ready
		return active - removed, err
	}
	var want int32
	if job.Spec.Completions == nil {
		// A work queue: once a pod succeeded, no new ones.
		if sc.succeeded > 0 {
			want = active
		} else {
			want = parallelism
		}
	} else {
		want = max(min(*job.Spec.Completions-sc.succeeded, parallelism), 0)
	}
	rm := podsForRemoval(job, sc.active, int(max(active-want, 0)))
	if len(rm) > MaxPodCreateDeletePerSync {
		rm = rm[:MaxPodCreateDeletePerSync]
	}
	if len(rm) > 0 {
		jm.exp.expectDeletions(k, len(rm))
		ready, removed, err := jm.deleteJobPods(ctx, key, job, rm)
		sc.terminating += removed
		sc.ready -= ready
		return active - removed, err
	}
	var terminating int32
	if onlyReplaceFailed(job) {
		terminating = sc.terminating
	}
	diff := want - terminating - active
	if diff <= 0 {
		return active, nil
	}
	if left := sc.backoff.remaining(jm.clock, jm.BackoffBase, jm.BackoffMax); left > 0 {
		jm.queue.EnqueueAfter(key, max(left, jm.batch))
		return active, nil
	}
	diff = min(diff, MaxPodCreateDeletePerSync)
	var indexes []int
	if isIndexed(job) {
		indexes = firstPendingIndexes(sc, int(diff), int(*job.Spec.Completions))
		diff = int32(len(indexes))
		if diff == 0 {
			return active, nil
		}
	}
	jm.exp.expectCreations(k, int(diff))
	template := job.Spec.Template.DeepCopy()
	if isIndexed(job) {
		addCompletionIndexEnv(template)
	}
	if !slices.Contains(template.Finalizers, batchv1.JobTrackingFinalizer) {
		template.Finalizers = append(template.Finalizers, batchv1.JobTrackingFinalizer)
	}
	if job.Spec.Selector == nil {
		// What the server should have put on the template.
		if template.Labels == nil {
			template.Labels = map[string]string{}
		}
		template.Labels[labelControllerUID] = string(job.UID)
		template.Labels[legacyLabelControllerUID] = string(job.UID)
		template.Labels[labelJobName] = job.Name
		template.Labels[legacyLabelJobName] = job.Name
	}
	client := jm.clients.For(key.Cluster).CoreV1().Pods(job.Namespace)
	var (
		mu      sync.Mutex
		errs    []error
		created int32
	)
	create := func(ix int) {
		pod := podFromTemplate(job, template, ix)
		got, err := client.Create(ctx, pod, metav1.CreateOptions{})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			jm.exp.creationObserved(k) // the informer will not see it
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return
			}
			jm.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			errs = append(errs, err)
			return
		}
		created++
		jm.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", got.Name)
	}
	// Slow start: batches of 1, 2, 4... stop at the first batch with an
	// error (quota, admission) rather than repeat it diff times.
	left := int(diff)
	next := 0
	for batch := 1; left > 0; batch = min(2*batch, left) {
		n := min(batch, left)
		before := len(errs)
		var wg sync.WaitGroup
		for range n {
			ix := noIndex
			if indexes != nil {
				ix = indexes[next]
			}
			next++
			wg.Add(1)
			go func() {
				defer wg.Done()
				create(ix)
			}()
		}
		wg.Wait()
		left -= n
		if len(errs) > before {
			for range left {
				jm.exp.creationObserved(k)
			}
			break
		}
	}
	return active + created, errors.Join(errs...)
}

// podFromTemplate is a new pod of the Job (ix: its completion index, or
// noIndex).
func podFromTemplate(job *batchv1.Job, t *corev1.PodTemplateSpec, ix int) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    job.Name + "-",
			Namespace:       job.Namespace,
			Labels:          maps.Clone(t.Labels),
			Annotations:     maps.Clone(t.Annotations),
			Finalizers:      slices.Clone(t.Finalizers),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
		},
	}
	t.Spec.DeepCopyInto(&p.Spec)
	if ix != noIndex {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Annotations[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(ix)
		p.Labels[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(ix)
		p.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, ix)
		p.GenerateName = indexedGenerateName(job.Name, ix)
	}
	return p
}

// deleteActivePods deletes pods of a Job that is ending (their finalizers
// are removed when they are counted).
func (jm *Controller) deleteActivePods(ctx context.Context, key framework.Key, job *batchv1.Job, pods []*corev1.Pod) (ready, deleted int32, err error) {
	client := jm.clients.For(key.Cluster).CoreV1().Pods(key.Namespace)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := jm.deletePodOf(ctx, client, job, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
				return
			}
			deleted++
			if isReady(p) {
				ready++
			}
		}()
	}
	wg.Wait()
	return ready, deleted, errors.Join(errs...)
}

// deleteJobPods deletes pods a running Job has too many of, first removing
// their finalizer (they are not counted as failures).
func (jm *Controller) deleteJobPods(ctx context.Context, key framework.Key, job *batchv1.Job, pods []*corev1.Pod) (ready, deleted int32, err error) {
	k := key.String()
	client := jm.clients.For(key.Cluster).CoreV1().Pods(key.Namespace)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				jm.exp.deletionObserved(k)
				if !apierrors.IsNotFound(err) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
			if hasFinalizer(p) {
				if err := jm.removeFinalizer(ctx, key.Cluster, p); err != nil {
					fail(fmt.Errorf("removing the tracking finalizer: %w", err))
					return
				}
			}
			if err := jm.deletePodOf(ctx, client, job, p); err != nil {
				fail(err)
				if !apierrors.IsNotFound(err) {
					return
				}
			}
			mu.Lock()
			deleted++
			if isReady(p) {
				ready++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ready, deleted, errors.Join(errs...)
}

// deletePodOf deletes one of job's pods, with the events upstream's pod
// control records.
func (jm *Controller) deletePodOf(ctx context.Context, client corev1client.PodInterface, job *batchv1.Job, p *corev1.Pod) error {
	err := client.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		jm.recorder.Eventf(job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
	default:
		jm.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
	}
	return err
}

// removeFinalizer drops the tracking finalizer from a pod.
func (jm *Controller) removeFinalizer(ctx context.Context, cluster string, p *corev1.Pod) error {
	if !hasFinalizer(p) {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
	}})
	_, err := jm.clients.For(cluster).CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// updateStatus writes the Job's status and answers the Job as written,
// marked with its cluster.
func (jm *Controller) updateStatus(ctx context.Context, key framework.Key, job *batchv1.Job) (*batchv1.Job, error) {
	c := job.DeepCopy()
	framework.StripCluster(c)
	out, err := jm.clients.For(key.Cluster).BatchV1().Jobs(key.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
	if err != nil {
		return job, err
	}
	jm.written.Wrote(key, out)
	if out.Status.UncountedTerminatedPods == nil {
		out.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	metav1.SetMetaDataAnnotation(&out.ObjectMeta, framework.ClusterAnnotation, key.Cluster)
	return out, nil
}

// cleanUncounted moves the pods whose finalizer is gone from the uncounted
// lists to the counters.
func cleanUncounted(st *batchv1.JobStatus, withFinalizer sets.Set[types.UID]) bool {
	u := st.UncountedTerminatedPods
	keep := func(uids []types.UID) []types.UID {
		var out []types.UID
		for _, uid := range uids {
			if withFinalizer.Has(uid) {
				out = append(out, uid)
			}
		}
		return out
	}
	changed := false
	if k := keep(u.Succeeded); len(k) != len(u.Succeeded) {
		st.Succeeded += int32(len(u.Succeeded) - len(k))
		u.Succeeded = k
		changed = true
	}
	if k := keep(u.Failed); len(k) != len(u.Failed) {
		st.Failed += int32(len(u.Failed) - len(k))
		u.Failed = k
		changed = true
	}
	return changed
}

// track counts finished pods through status.uncountedTerminatedPods,
// removes their finalizers, and finishes the Job when its ending condition
// holds and no pod is left uncounted or terminating.
func (jm *Controller) track(ctx context.Context, key framework.Key, sc *syncCtx, needsFlush bool) error {
	job := sc.job
	indexed := isIndexed(job)
	if indexed {
		sort.SliceStable(sc.pods, func(i, j int) bool { return completionIndex(sc.pods[i]) < completionIndex(sc.pods[j]) })
	}
	withFinalizer := sets.New[types.UID]()
	for _, p := range sc.pods {
		if hasFinalizer(p) && !sc.expectedRm.Has(p.UID) {
			withFinalizer.Insert(p.UID)
		}
	}
	if cleanUncounted(&job.Status, withFinalizer) {
		needsFlush = true
	}
	u := job.Status.UncountedTerminatedPods
	var toRemove []*corev1.Pod
	var newSucceededIdx []int
	reachedMax := false
	for _, p := range sc.pods {
		if !hasFinalizer(p) || sc.expectedRm.Has(p.UID) {
			continue
		}
		failed := isPodFailed(p, job)
		if job.DeletionTimestamp == nil && sc.finished == nil && p.Status.Phase != corev1.PodSucceeded && !failed {
			continue // still running: keep the finalizer
		}
		toRemove = append(toRemove, p)
		if p.Status.Phase == corev1.PodSucceeded && !sc.uncountedFail.Has(p.UID) {
			if indexed {
				if ix, ok := validIndex(job, p); ok && !sc.prevSucceeded.has(ix) {
					newSucceededIdx = append(newSucceededIdx, ix)
					needsFlush = true
				}
			} else if !sc.uncountedSucc.Has(p.UID) {
				u.Succeeded = append(u.Succeeded, p.UID)
				needsFlush = true
			}
		} else if failed || sc.finished != nil && !isSuccessCriteria(sc.finished) {
			// Once the Job is ending, every pod not succeeded failed.
			_, okIndex := validIndex(job, p)
			if !sc.uncountedFail.Has(p.UID) && (!indexed || okIndex) {
				if _, count, _ := matchFailurePolicy(job.Spec.PodFailurePolicy, p); count {
					u.Failed = append(u.Failed, p.UID)
					needsFlush = true
				}
			}
		}
		if len(newSucceededIdx)+len(u.Succeeded)+len(u.Failed) >= MaxUncountedPods {
			reachedMax = true
			break
		}
	}
	if indexed {
		sc.succeededIdx = sc.succeededIdx.with(newSucceededIdx)
		s := sc.succeededIdx.String()
		if s != job.Status.CompletedIndexes {
			needsFlush = true
		}
		job.Status.Succeeded = int32(sc.succeededIdx.total())
		job.Status.CompletedIndexes = s
	}
	now := jm.clock.Now()
	if sc.finished != nil && sc.finished.Type == batchv1.JobFailureTarget {
		job.Status.Conditions = append(job.Status.Conditions, *sc.finished)
		needsFlush = true
		sc.finished = newCondition(batchv1.JobFailed, sc.finished.Reason, sc.finished.Message, now)
	}
	if isSuccessCriteria(sc.finished) {
		if hasTrue(job, batchv1.JobSuccessCriteriaMet) == nil {
			job.Status.Conditions = append(job.Status.Conditions, *sc.finished)
			needsFlush = true
		}
		sc.finished = newCondition(batchv1.JobComplete, sc.finished.Reason, sc.finished.Message, now)
	}

	// Flush the uncounted pods, then remove their finalizers, then count
	// the pods whose finalizer is gone.
	var err error
	if needsFlush {
		if job, err = jm.updateStatus(ctx, key, job); err != nil {
			return fmt.Errorf("adding uncounted pods to status: %w", err)
		}
		sc.job = job
		jm.setBackoff(key.String(), sc.backoff)
		needsFlush = false
	}
	var rmErr error
	if len(toRemove) > 0 {
		k := key.String()
		uids := make([]types.UID, len(toRemove))
		for i, p := range toRemove {
			uids[i] = p.UID
		}
		jm.finalizers.expect(k, uids)
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, p := range toRemove {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := jm.removeFinalizer(ctx, key.Cluster, p); err != nil {
					jm.finalizers.observed(k, p.UID)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				withFinalizer.Delete(p.UID)
				mu.Unlock()
			}()
		}
		wg.Wait()
		rmErr = errors.Join(errs...)
	}
	if cleanUncounted(&job.Status, withFinalizer) {
		needsFlush = true
	}
	if rmErr != nil {
		if needsFlush {
			if _, err := jm.updateStatus(ctx, key, job); err != nil {
				return fmt.Errorf("removing uncounted pods from status: %w", err)
			}
		}
		return rmErr
	}
	finished := !reachedMax && jm.enactFinished(sc)
	if finished {
		needsFlush = true
	}
	if needsFlush {
		if job, err = jm.updateStatus(ctx, key, sc.job); err != nil {
			return fmt.Errorf("removing uncounted pods from status: %w", err)
		}
		if finished {
			jm.recordFinished(job, sc.finished)
			jm.finished.Store(job.UID, struct{}{})
		}
	}
	return nil
}

// enactFinished sets the Complete or Failed condition once no pod is left
// uncounted or terminating.
func (jm *Controller) enactFinished(sc *syncCtx) bool {
	if sc.finished == nil {
		return false
	}
	job := sc.job
	if u := job.Status.UncountedTerminatedPods; u != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		return false
	}
	if sc.terminating > 0 {
		return false
	}
	f := sc.finished
	job.Status.Conditions, _ = ensureCondition(job.Status.Conditions, f.Type, f.Status, f.Reason, f.Message, jm.clock.Now())
	if f.Type == batchv1.JobComplete {
		job.Status.CompletionTime = &f.LastTransitionTime
	}
	return true
}

func (jm *Controller) recordFinished(job *batchv1.Job, f *batchv1.JobCondition) {
	if f.Type == batchv1.JobComplete {
		if job.Spec.Completions != nil && job.Status.Succeeded > *job.Spec.Completions {
			jm.recorder.Eventf(job, corev1.EventTypeWarning, "TooManySucceededPods", "Too many succeeded pods running after completion count reached")
		}
		jm.recorder.Eventf(job, corev1.EventTypeNormal, "Completed", "Job completed")
		return
	}
	jm.recorder.Eventf(job, corev1.EventTypeWarning, f.Reason, "%s", f.Message)
}
