package disruption

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pgkube/pgkube/controllers/framework"
)

// StalePodDisruptionTimeout is how long a pod may carry a DisruptionTarget
// condition (an eviction that did not end in its deletion, say) before the
// condition is reset to False, as upstream.
const StalePodDisruptionTimeout = 2 * time.Minute

// staleIn reports whether the pod carries a DisruptionTarget condition that
// can go stale, and how long until it is.
func staleIn(p *corev1.Pod, now time.Time) (bool, time.Duration) {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false, 0
	}
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.DisruptionTarget {
			continue
		}
		// The kubelet's conditions are never stale.
		if c.Status != corev1.ConditionTrue || c.Reason == corev1.PodReasonTerminationByKubelet {
			return false, 0
		}
		wait := StalePodDisruptionTimeout - now.Sub(c.LastTransitionTime.Time)
		if wait < 0 {
			wait = 0
		}
		return true, wait
	}
	return false, 0
}

func (dc *Controller) checkStale(p *corev1.Pod) {
	if has, wait := staleIn(p, dc.now()); has {
		dc.stale.EnqueueAfter(framework.KeyOf(p), wait)
	}
}

func (dc *Controller) syncStale(ctx context.Context, key framework.Key) error {
	cached, err := dc.pods.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	has, wait := staleIn(cached, dc.now())
	if !has {
		return nil
	}
	if wait > 0 {
		dc.stale.EnqueueAfter(key, wait)
		return nil
	}
	p := cached.DeepCopy()
	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == corev1.DisruptionTarget {
			*c = corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionFalse,
				LastTransitionTime: metav1.NewTime(dc.now()), ObservedGeneration: c.ObservedGeneration}
		}
	}
	framework.StripCluster(p)
	_, err = dc.client(key.Cluster).CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
