// Package ttlafterfinished deletes finished Jobs (Complete or Failed) once
// their ttlSecondsAfterFinished has passed since they finished, with
// foreground propagation so that their pods go first, as upstream's
// TTL-after-finished controller.
package ttlafterfinished

import (
	"context"
	"fmt"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Controller is the "ttl-after-finished" controller.
type Controller struct {
	jobs    *framework.Informer[*batchv1.Job]
	clients *framework.Clients
	clock   clock.WithTicker
	workers int
	queue   *framework.Queue
}

// New makes the controller.
func New(c *framework.Context) (framework.Runnable, error) {
	clk := c.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	tc := &Controller{jobs: c.Factory.Jobs(), clients: c.Clients, clock: clk, workers: c.Workers}
	tc.queue = framework.NewQueue("ttl-after-finished", tc.sync)
	enqueue := func(obj any) {
		if j, ok := obj.(*batchv1.Job); ok && j.DeletionTimestamp == nil && NeedsCleanup(j) {
			tc.queue.EnqueueObject(j)
		}
	}
	tc.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
	})
	return tc, nil
}

// Run implements framework.Runnable.
func (tc *Controller) Run(ctx context.Context) {
	if j, ok := tc.clock.(interface{ OnJump(func()) }); ok {
		j.OnJump(func() {
			for _, job := range tc.jobs.ListAll() {
				if NeedsCleanup(job) {
					tc.queue.Enqueue(framework.KeyOf(job))
				}
			}
		})
	}
	workers := tc.workers
	if workers <= 0 {
		workers = 5
	}
	tc.queue.Run(ctx, workers, tc.jobs.HasSynced)
}

// NeedsCleanup: the Job has a TTL and finished.
func NeedsCleanup(j *batchv1.Job) bool {
	return j.Spec.TTLSecondsAfterFinished != nil && finishTime(j) != nil
}

// finishTime is when the Job's Complete or Failed condition became True.
func finishTime(j *batchv1.Job) *time.Time {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			if c.LastTransitionTime.IsZero() {
				return nil
			}
			t := c.LastTransitionTime.Time
			return &t
		}
	}
	return nil
}

// TimeLeft is how long j still lives at now (≤ 0: expired); ok false when
// it does not need cleaning up.
func TimeLeft(j *batchv1.Job, now time.Time) (time.Duration, bool) {
	if j.DeletionTimestamp != nil || !NeedsCleanup(j) {
		return 0, false
	}
	expire := finishTime(j).Add(time.Duration(*j.Spec.TTLSecondsAfterFinished) * time.Second)
	return expire.Sub(now), true
}

func (tc *Controller) sync(ctx context.Context, key framework.Key) error {
	j, err := tc.jobs.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	left, ok := TimeLeft(j, tc.clock.Now())
	if !ok {
		return nil
	}
	if left > 0 {
		tc.queue.EnqueueAfter(key, left)
		return nil
	}
	// Read it again uncached: the TTL may have been changed.
	client := tc.clients.For(key.Cluster).BatchV1().Jobs(key.Namespace)
	fresh, err := client.Get(ctx, key.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	left, ok = TimeLeft(fresh, tc.clock.Now())
	if !ok {
		return nil
	}
	if left > 0 {
		tc.queue.EnqueueAfter(key, left)
		return nil
	}
	policy := metav1.DeletePropagationForeground
	klog.FromContext(ctx).V(4).Info("Cleaning up Job", "job", key.String())
	err = client.Delete(ctx, fresh.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &fresh.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting expired job %s: %w", key, err)
	}
	return nil
}
