// Package disruption is the PodDisruptionBudget controller: it keeps each
// budget's status (expectedPods, desiredHealthy, currentHealthy,
// disruptionsAllowed, observedGeneration, the DisruptionAllowed condition)
// from the pods its selector matches and their controllers' scale, and
// drops disruptedPods entries (written by the eviction subresource) once
// the pod is gone or the entry has expired, as upstream's controller.
package disruption

import (
	"context"
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/pgkube/pgkube/controllers/framework"
)

// DeletionTimeout is how long a pod recorded in disruptedPods is counted
// as going away before the record is dropped (upstream: 2 minutes).
const DeletionTimeout = 2 * time.Minute

// Controller is the PodDisruptionBudget controller.
type Controller struct {
	pdbs     *framework.Informer[*policyv1.PodDisruptionBudget]
	pods     *framework.Informer[*corev1.Pod]
	rcs      *framework.Informer[*corev1.ReplicationController]
	rss      *framework.Informer[*appsv1.ReplicaSet]
	deps     *framework.Informer[*appsv1.Deployment]
	sets     *framework.Informer[*appsv1.StatefulSet]
	client   func(cluster string) kubernetes.Interface
	recorder framework.Recorder
	now      func() time.Time
	workers  int
	queue    *framework.Queue
	// stale resets DisruptionTarget conditions of pods that were not
	// deleted after all.
	stale *framework.Queue
}

// New makes the disruption controller.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	dc := &Controller{
		pdbs: c.Factory.PodDisruptionBudgets(), pods: c.Factory.Pods(),
		rcs: c.Factory.ReplicationControllers(), rss: c.Factory.ReplicaSets(),
		deps: c.Factory.Deployments(), sets: c.Factory.StatefulSets(),
		client: c.Clients.For, recorder: c.Recorder, now: now, workers: c.Workers,
	}
	if dc.workers <= 0 {
		dc.workers = 5
	}
	dc.queue = framework.NewQueue("disruption", dc.sync)
	dc.stale = framework.NewQueue("disruption-recheck", dc.syncStale)
	dc.pdbs.AddEventHandler(dc.queue.Handler())
	podEvent := func(obj any) {
		if p, ok := framework.ObjectFromEvent(obj).(*corev1.Pod); ok {
			dc.enqueueFor(p)
			dc.checkStale(p)
		}
	}
	dc.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: podEvent,
		UpdateFunc: func(oldObj, curObj any) {
			old, ok1 := oldObj.(*corev1.Pod)
			cur, ok2 := curObj.(*corev1.Pod)
			if ok1 && ok2 && old.ResourceVersion == cur.ResourceVersion {
				return
			}
			if ok1 && ok2 && !labels.Equals(old.Labels, cur.Labels) {
				dc.enqueueFor(old)
			}
			podEvent(curObj)
		},
		DeleteFunc: podEvent,
	})
	// A controller's scale changes expectedPods.
	scaleEvent := func(obj any) {
		m := framework.ObjectFromEvent(obj)
		if m == nil {
			return
		}
		for _, pdb := range dc.pdbs.List(framework.ClusterOf(m), m.GetNamespace(), nil) {
			dc.queue.Enqueue(framework.KeyOf(pdb))
		}
	}
	scaleHandler := cache.ResourceEventHandlerFuncs{AddFunc: scaleEvent,
		UpdateFunc: func(_, cur any) { scaleEvent(cur) }, DeleteFunc: scaleEvent}
	dc.rcs.AddEventHandler(scaleHandler)
	dc.rss.AddEventHandler(scaleHandler)
	dc.deps.AddEventHandler(scaleHandler)
	dc.sets.AddEventHandler(scaleHandler)
	return dc, nil
}

// Run implements framework.Runnable.
func (dc *Controller) Run(ctx context.Context) {
	go dc.stale.Run(ctx, 1, dc.pods.HasSynced)
	dc.queue.Run(ctx, dc.workers, dc.pdbs.HasSynced, dc.pods.HasSynced, dc.rcs.HasSynced,
		dc.rss.HasSynced, dc.deps.HasSynced, dc.sets.HasSynced)
}

func (dc *Controller) enqueueFor(pod *corev1.Pod) {
	for _, pdb := range dc.pdbs.List(framework.ClusterOf(pod), pod.Namespace, nil) {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		dc.queue.Enqueue(framework.KeyOf(pdb))
	}
}

func (dc *Controller) sync(ctx context.Context, key framework.Key) error {
	cached, err := dc.pdbs.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pdb := cached.DeepCopy()
	var pods []*corev1.Pod
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err == nil {
		pods = dc.pods.List(key.Cluster, key.Namespace, sel)
	}
	if err == nil && len(pods) == 0 {
		dc.recorder.Eventf(cached, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	var expected, desired int32
	if err == nil {
		expected, desired, err = dc.expectedAndDesired(key.Cluster, pdb, pods)
		if err != nil {
			dc.recorder.Eventf(cached, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed",
				"Failed to calculate the number of expected pods: %v", err)
		}
	}
	now := dc.now()
	if err != nil {
		failSafe(pdb, err)
	} else {
		recheck := computeStatus(pdb, pods, expected, desired, now)
		if recheck != nil {
			dc.queue.EnqueueAfter(key, recheck.Sub(now)+time.Second)
		}
	}
	if apiequality.Semantic.DeepEqual(cached.Status, pdb.Status) {
		return nil
	}
	framework.StripCluster(pdb)
	_, uerr := dc.client(key.Cluster).PolicyV1().PodDisruptionBudgets(key.Namespace).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	if apierrors.IsNotFound(uerr) {
		return nil
	}
	return uerr
}

// failSafe is the status of a budget that could not be computed: no
// disruptions allowed, the condition saying why.
func failSafe(pdb *policyv1.PodDisruptionBudget, err error) {
	pdb.Status.DisruptionsAllowed = 0
	pdb.Status.ObservedGeneration = pdb.Generation
	meta.SetStatusCondition(&pdb.Status.Conditions, metav1.Condition{Type: policyv1.DisruptionAllowedCondition,
		Status: metav1.ConditionFalse, Reason: policyv1.SyncFailedReason, Message: err.Error(),
		ObservedGeneration: pdb.Generation})
}

// computeStatus fills pdb.Status from its pods (already listed by its
// selector); it returns when a disruptedPods entry expires, if one will.
func computeStatus(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, expected, desired int32, now time.Time) *time.Time {
	disrupted, recheck := disruptedPods(pdb.Status.DisruptedPods, pods, now)
	var healthy int32
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := disrupted[p.Name]; ok {
			continue
		}
		if podReady(p) {
			healthy++
		}
	}
	allowed := healthy - desired
	if expected <= 0 || allowed < 0 {
		allowed = 0
	}
	pdb.Status.CurrentHealthy = healthy
	pdb.Status.DesiredHealthy = desired
	pdb.Status.ExpectedPods = expected
	pdb.Status.DisruptionsAllowed = allowed
	pdb.Status.DisruptedPods = disrupted
	pdb.Status.ObservedGeneration = pdb.Generation
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.InsufficientPodsReason, ObservedGeneration: pdb.Generation}
	if allowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	meta.SetStatusCondition(&pdb.Status.Conditions, cond)
	return recheck
}

// disruptedPods keeps the entries whose pod still exists, is not being
// deleted yet and whose entry has not expired.
func disruptedPods(in map[string]metav1.Time, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, *time.Time) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]metav1.Time{}
	var recheck *time.Time
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		t, ok := in[p.Name]
		if !ok {
			continue
		}
		expires := t.Add(DeletionTimeout)
		if !expires.After(now) {
			continue
		}
		out[p.Name] = t
		if recheck == nil || expires.Before(*recheck) {
			recheck = &expires
		}
	}
	if len(out) == 0 {
		return nil, recheck
	}
	return out, recheck
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// expectedAndDesired is upstream's getExpectedPodCount: minAvailable as a
// number counts the pods; maxUnavailable and percentages need the scale of
// the pods' controllers.
func (dc *Controller) expectedAndDesired(cluster string, pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (int32, int32, error) {
	if pdb.Spec.MaxUnavailable != nil {
		expected, err := dc.expectedScale(cluster, pods)
		if err != nil {
			return 0, 0, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, err
		}
		desired := expected - int32(maxUnavailable)
		if desired < 0 {
			desired = 0
		}
		return expected, desired, nil
	}
	if pdb.Spec.MinAvailable != nil {
		if pdb.Spec.MinAvailable.Type == intstr.Int {
			return int32(len(pods)), pdb.Spec.MinAvailable.IntVal, nil
		}
		expected, err := dc.expectedScale(cluster, pods)
		if err != nil {
			return 0, 0, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, err
		}
		return expected, int32(minAvailable), nil
	}
	return int32(len(pods)), 0, nil
}

// expectedScale sums the scale of the pods' controllers, each once.
func (dc *Controller) expectedScale(cluster string, pods []*corev1.Pod) (int32, error) {
	seen := map[types.UID]bool{}
	var total int64
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			return 0, fmt.Errorf("found no controller ref for pod %q", p.Name)
		}
		uid, scale, ok := dc.scaleOf(cluster, p.Namespace, ref)
		if !ok {
			return 0, fmt.Errorf("found no controllers for pod %q", p.Name)
		}
		if seen[uid] {
			continue
		}
		seen[uid] = true
		total += int64(scale)
	}
	if total > math.MaxInt32 {
		total = math.MaxInt32
	}
	return int32(total), nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// scaleOf finds the controller a pod's reference names and its scale: a
// ReplicaSet owned by a Deployment counts as the Deployment.
func (dc *Controller) scaleOf(cluster, ns string, ref *metav1.OwnerReference) (types.UID, int32, bool) {
	switch ref.Kind {
	case "ReplicationController":
		if rc, err := dc.rcs.Get(cluster, ns, ref.Name); err == nil && rc.UID == ref.UID {
			return rc.UID, replicas(rc.Spec.Replicas), true
		}
	case "ReplicaSet":
		rs, err := dc.rss.Get(cluster, ns, ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false
		}
		if dref := metav1.GetControllerOfNoCopy(rs); dref != nil && dref.Kind == "Deployment" {
			if d, err := dc.deps.Get(cluster, ns, dref.Name); err == nil && d.UID == dref.UID {
				return d.UID, replicas(d.Spec.Replicas), true
			}
			return "", 0, false
		}
		return rs.UID, replicas(rs.Spec.Replicas), true
	case "StatefulSet":
		if s, err := dc.sets.Get(cluster, ns, ref.Name); err == nil && s.UID == ref.UID {
			return s.UID, replicas(s.Spec.Replicas), true
		}
	}
	return "", 0, false
}
