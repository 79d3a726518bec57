// Package job is the Job controller, as upstream's: it runs a Job's pods
// to completion (completions, parallelism; Indexed jobs give each pod an
// index, in an annotation, a label, its hostname and JOB_COMPLETION_INDEX),
// replaces failed pods after an exponential back-off until backoffLimit,
// fails the Job past activeDeadlineSeconds or on a podFailurePolicy FailJob
// rule (Ignore rules do not count failures), deletes the pods of a
// suspended Job, and reports status (active, ready, terminating,
// succeeded, failed, completedIndexes, startTime, completionTime, the
// SuccessCriteriaMet/FailureTarget interim conditions, then Complete or
// Failed). Pods carry the batch.kubernetes.io/job-tracking finalizer until
// the controller has counted them (through status.uncountedTerminatedPods),
// so a pod deleted early is still counted exactly once.
//
// Not done: backoffLimitPerIndex, maxFailedIndexes and the FailIndex
// action; the managedBy field is honoured (other controllers' Jobs are
// left alone).
package job

import (
	"context"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/written"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

const (
	// DefaultBackoff is the delay before the first replacement of a failed
	// pod; it doubles per further failure up to MaxBackoff.
	DefaultBackoff = 10 * time.Second
	// MaxBackoff caps the delay.
	MaxBackoff = 6 * time.Minute
	// BackoffEnv, when set to a duration (e.g. "1s"), replaces
	// DefaultBackoff (and MaxBackoff becomes 36 times it): for tests, which
	// cannot wait minutes for a Job to use up its backoffLimit.
	BackoffEnv = "PGKUBE_JOB_BACKOFF_BASE"

	// MaxUncountedPods bounds status.uncountedTerminatedPods.
	MaxUncountedPods = 500
	// MaxPodCreateDeletePerSync bounds one sync's pod writes.
	MaxPodCreateDeletePerSync = 500
	// SyncBatchPeriod gathers the pod events of a Job into one sync.
	SyncBatchPeriod = time.Second

	ownerIndex = "job:owner"
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the "job" controller.
type Controller struct {
	jobs     *framework.Informer[*batchv1.Job]
	pods     *framework.Informer[*corev1.Pod]
	clients  *framework.Clients
	recorder framework.Recorder
	clock    clock.WithTicker
	workers  int
	queue    *framework.Queue
	orphans  *framework.Queue

	exp        *expectations
	finalizers *uidExpectations
	written    *written.Tracker
	backoffMu  sync.Mutex
	backoffs   map[string]backoffRecord
	// finished are Jobs whose final status was written but not yet seen.
	finished sync.Map // types.UID → struct{}

	// BackoffBase and BackoffMax are the pod-replacement back-off.
	BackoffBase, BackoffMax time.Duration
	// batch is SyncBatchPeriod (shorter in tests).
	batch time.Duration
}

// New makes the controller.
func New(c *framework.Context) (framework.Runnable, error) {
	return newController(c), nil
}

func newController(c *framework.Context) *Controller {
	clk := c.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	jm := &Controller{
		jobs: c.Factory.Jobs(), pods: c.Factory.Pods(), clients: c.Clients, recorder: c.Recorder,
		clock: clk, workers: c.Workers,
		finalizers: newUIDExpectations(), written: written.New(), backoffs: map[string]backoffRecord{},
		BackoffBase: DefaultBackoff, BackoffMax: MaxBackoff, batch: SyncBatchPeriod,
	}
	if d, err := time.ParseDuration(os.Getenv(BackoffEnv)); err == nil && d > 0 {
		jm.BackoffBase, jm.BackoffMax = d, 36*d
	}
	jm.exp = newExpectations(clk.Now)
	if jm.workers <= 0 {
		jm.workers = 5
	}
	jm.queue = framework.NewQueue("job", jm.sync)
	jm.orphans = framework.NewQueue("job-orphan-pod", jm.syncOrphanPod)
	jm.pods.AddIndex(ownerIndex, func(p *corev1.Pod) []string {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
			if ref.Kind == controllerKind.Kind {
				return []string{string(ref.UID)}
			}
			return nil
		}
		return []string{orphanIndexValue(framework.ClusterOf(p), p.Namespace)}
	})
	jm.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { jm.queue.EnqueueObject(obj) },
		UpdateFunc: jm.updateJob,
		DeleteFunc: jm.deleteJob,
	})
	jm.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    jm.addPod,
		UpdateFunc: jm.updatePod,
		DeleteFunc: func(obj any) { jm.deletePod(obj, true) },
	})
	return jm
}

func orphanIndexValue(cluster, ns string) string { return "orphan|" + cluster + "|" + ns }

// Run implements framework.Runnable.
func (jm *Controller) Run(ctx context.Context) {
	if j, ok := jm.clock.(interface{ OnJump(func()) }); ok {
		// A test moved the clock: deadlines may have passed.
		j.OnJump(func() {
			for _, job := range jm.jobs.ListAll() {
				if !isFinished(job) {
					jm.queue.Enqueue(framework.KeyOf(job))
				}
			}
		})
	}
	go jm.orphans.Run(ctx, 1, jm.jobs.HasSynced, jm.pods.HasSynced)
	jm.queue.Run(ctx, jm.workers, jm.jobs.HasSynced, jm.pods.HasSynced)
}

// resolve is the Job a controller reference names, if it exists with that
// uid.
func (jm *Controller) resolve(cluster, ns string, ref *metav1.OwnerReference) *batchv1.Job {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return nil
	}
	j, err := jm.jobs.Get(cluster, ns, ref.Name)
	if err != nil || j.UID != ref.UID {
		return nil
	}
	return j
}

// selecting are the Jobs of the pod's namespace whose selector matches it.
func (jm *Controller) selecting(p *corev1.Pod) []*batchv1.Job {
	if len(p.Labels) == 0 {
		return nil
	}
	var out []*batchv1.Job
	for _, j := range jm.jobs.List(framework.ClusterOf(p), p.Namespace, nil) {
		if sel, err := selectorOf(j); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, j)
		}
	}
	return out
}

func (jm *Controller) enqueueBatched(j *batchv1.Job) {
	jm.queue.EnqueueAfter(framework.KeyOf(j), jm.batch)
}

func (jm *Controller) enqueueOrphan(p *corev1.Pod) { jm.orphans.Enqueue(framework.KeyOf(p)) }

func (jm *Controller) addPod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if p.DeletionTimestamp != nil {
		jm.deletePod(p, false)
		return
	}
	cluster := framework.ClusterOf(p)
	if ref := metav1.GetControllerOf(p); ref != nil {
		if j := jm.resolve(cluster, p.Namespace, ref); j != nil {
			jm.exp.creationObserved(framework.KeyOf(j).String())
			jm.enqueueBatched(j)
		}
		return
	}
	if hasFinalizer(p) {
		jm.enqueueOrphan(p)
	}
	for _, j := range jm.selecting(p) {
		jm.enqueueBatched(j)
	}
}

func (jm *Controller) updatePod(oldObj, newObj any) {
	o, ok1 := oldObj.(*corev1.Pod)
	p, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 || o.ResourceVersion == p.ResourceVersion {
		return
	}
	if p.DeletionTimestamp != nil {
		jm.deletePod(p, false)
		return
	}
	cluster := framework.ClusterOf(p)
	finalizerGone := !hasFinalizer(p)
	cur, old := metav1.GetControllerOf(p), metav1.GetControllerOf(o)
	refChanged := !reflect.DeepEqual(cur, old)
	if refChanged && old != nil {
		if j := jm.resolve(cluster, o.Namespace, old); j != nil {
			if finalizerGone {
				jm.finalizers.observed(framework.KeyOf(j).String(), p.UID)
			}
			jm.enqueueBatched(j)
		}
	}
	if cur != nil {
		if j := jm.resolve(cluster, p.Namespace, cur); j != nil {
			if finalizerGone {
				jm.finalizers.observed(framework.KeyOf(j).String(), p.UID)
			}
			jm.enqueueBatched(j)
		}
		return
	}
	if hasFinalizer(p) {
		jm.enqueueOrphan(p)
	}
	if refChanged || !reflect.DeepEqual(o.Labels, p.Labels) {
		for _, j := range jm.selecting(p) {
			jm.enqueueBatched(j)
		}
	}
}

// deletePod handles a pod deleted (final) or being deleted.
func (jm *Controller) deletePod(obj any, final bool) {
	p, ok := framework.ObjectFromEvent(obj).(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		if hasFinalizer(p) {
			jm.enqueueOrphan(p)
		}
		return
	}
	j := jm.resolve(framework.ClusterOf(p), p.Namespace, ref)
	if j == nil || isFinished(j) {
		if hasFinalizer(p) {
			jm.enqueueOrphan(p)
		}
		return
	}
	k := framework.KeyOf(j).String()
	jm.exp.deletionObserved(k)
	if final || !hasFinalizer(p) {
		jm.finalizers.observed(k, p.UID)
	}
	jm.enqueueBatched(j)
}

func (jm *Controller) updateJob(oldObj, newObj any) {
	o, ok1 := oldObj.(*batchv1.Job)
	j, ok2 := newObj.(*batchv1.Job)
	if !ok1 || !ok2 {
		return
	}
	key := framework.KeyOf(j)
	if isFinished(j) {
		jm.finished.Delete(j.UID)
		jm.orphanPodsOf(j)
		return
	}
	if j.Generation == o.Generation {
		jm.enqueueBatched(j)
	} else {
		jm.queue.Enqueue(key)
	}
	if j.Status.StartTime != nil && j.Spec.ActiveDeadlineSeconds != nil {
		if o.Spec.ActiveDeadlineSeconds == nil || *o.Spec.ActiveDeadlineSeconds != *j.Spec.ActiveDeadlineSeconds {
			left := time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second - jm.clock.Since(j.Status.StartTime.Time)
			jm.queue.EnqueueAfter(key, left)
		}
	}
}

func (jm *Controller) deleteJob(obj any) {
	jm.queue.EnqueueObject(obj)
	j, ok := framework.ObjectFromEvent(obj).(*batchv1.Job)
	if !ok {
		return
	}
	jm.finished.Delete(j.UID)
	jm.orphanPodsOf(j)
	k := framework.KeyOf(j).String()
	jm.exp.forget(k)
	jm.removeBackoff(k)
}

// orphanPodsOf queues the pods of a finished or deleted Job that still
// carry the tracking finalizer, for its removal.
func (jm *Controller) orphanPodsOf(j *batchv1.Job) {
	for _, p := range jm.pods.ByIndex(ownerIndex, string(j.UID)) {
		if hasFinalizer(p) {
			jm.enqueueOrphan(p)
		}
	}
	sel, err := selectorOf(j)
	if err != nil || sel.Empty() {
		return
	}
	for _, p := range jm.pods.List(framework.ClusterOf(j), j.Namespace, sel) {
		if hasFinalizer(p) && metav1.GetControllerOfNoCopy(p) == nil {
			jm.enqueueOrphan(p)
		}
	}
}

// syncOrphanPod removes the tracking finalizer from a pod no running Job
// controls.
func (jm *Controller) syncOrphanPod(ctx context.Context, key framework.Key) error {
	p, err := jm.pods.Get(key.Cluster, key.Namespace, key.Name)
	if err != nil {
		return nil // gone
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		if ref.Kind != controllerKind.Kind || ref.APIVersion != batchv1.SchemeGroupVersion.String() {
			return nil // not a Job's: not ours to touch
		}
		if j := jm.resolve(key.Cluster, p.Namespace, ref); j != nil {
			if managedElsewhere(j) || !isFinished(j) {
				return nil
			}
		}
	}
	return jm.removeFinalizer(ctx, key.Cluster, p)
}

func (jm *Controller) backoffOf(k string) backoffRecord {
	jm.backoffMu.Lock()
	defer jm.backoffMu.Unlock()
	return jm.backoffs[k]
}

func (jm *Controller) setBackoff(k string, r backoffRecord) {
	jm.backoffMu.Lock()
	defer jm.backoffMu.Unlock()
	jm.backoffs[k] = r
}

func (jm *Controller) removeBackoff(k string) {
	jm.backoffMu.Lock()
	defer jm.backoffMu.Unlock()
	delete(jm.backoffs, k)
}
