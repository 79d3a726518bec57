// Package statefulset is the StatefulSet controller: pods with stable
// names NAME-0..N-1 and hostnames under the set's service, created in order
// (OrderedReady, each after its predecessors are Running and Ready) or all
// at once (Parallel) and removed in reverse order; PersistentVolumeClaims
// from volumeClaimTemplates that outlive their pods and are reused by their
// replacements (with the Retain/Delete retention policies); rolling updates
// with a partition, or OnDelete; ControllerRevisions for the templates; and
// status, as upstream's controller.
package statefulset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/claim"
	"github.com/pgkube/pgkube/controllers/framework"
)

const (
	podOwnerIndex = "statefulset:owner"
	revOwnerIndex = "statefulset:revision-owner"
)

// Controller is the StatefulSet controller.
type Controller struct {
	sets    *framework.Informer[*appsv1.StatefulSet]
	pods    *framework.Informer[*corev1.Pod]
	claims  *framework.Informer[*corev1.PersistentVolumeClaim]
	revs    *framework.Informer[*appsv1.ControllerRevision]
	clients *framework.Clients
	// client is the client of a cluster (Clients.For; replaced in tests).
	client   func(cluster string) kubernetes.Interface
	recorder framework.Recorder
	now      func() time.Time
	workers  int
	queue    *framework.Queue
}

// New makes the StatefulSet controller.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	sc := &Controller{
		sets: c.Factory.StatefulSets(), pods: c.Factory.Pods(),
		claims: c.Factory.PersistentVolumeClaims(), revs: c.Factory.ControllerRevisions(),
		clients: c.Clients, client: c.Clients.For, recorder: c.Recorder, now: now, workers: c.Workers,
	}
	if sc.workers <= 0 {
		sc.workers = 5
	}
	sc.queue = framework.NewQueue("statefulset", sc.sync)
	sc.pods.AddIndex(podOwnerIndex, func(p *corev1.Pod) []string { return []string{ownerIndexValue(p)} })
	sc.revs.AddIndex(revOwnerIndex, func(r *appsv1.ControllerRevision) []string { return []string{ownerIndexValue(r)} })
	sc.sets.AddEventHandler(sc.queue.Handler())
	sc.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sc.addPod,
		UpdateFunc: sc.updatePod,
		DeleteFunc: sc.deletePod,
	})
	return sc, nil
}

// ownerIndexValue is the uid of obj's StatefulSet controller, or
// "orphan|cluster|ns" for objects without a controller; other controllers'
// objects are under their uid too, and never asked for.
func ownerIndexValue(obj metav1.Object) string {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		return string(ref.UID)
	}
	return orphanValue(framework.ClusterOf(obj), obj.GetNamespace())
}

func orphanValue(cluster, ns string) string { return "orphan|" + cluster + "|" + ns }

// Run implements framework.Runnable.
func (sc *Controller) Run(ctx context.Context) {
	sc.queue.Run(ctx, sc.workers, sc.sets.HasSynced, sc.pods.HasSynced, sc.claims.HasSynced, sc.revs.HasSynced)
}

// Pod events enqueue the pod's StatefulSet, or for orphans every set whose
// selector matches.

func (sc *Controller) resolve(pod *corev1.Pod, ref *metav1.OwnerReference) *appsv1.StatefulSet {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return nil
	}
	set, err := sc.sets.Get(framework.ClusterOf(pod), pod.Namespace, ref.Name)
	if err != nil || set.UID != ref.UID {
		return nil
	}
	return set
}

func (sc *Controller) enqueue(set *appsv1.StatefulSet) { sc.queue.Enqueue(framework.KeyOf(set)) }

func (sc *Controller) enqueueSelecting(pod *corev1.Pod) {
	if len(pod.Labels) == 0 {
		return
	}
	for _, set := range sc.sets.List(framework.ClusterOf(pod), pod.Namespace, nil) {
		sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		sc.enqueue(set)
	}
}

func (sc *Controller) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		sc.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if set := sc.resolve(pod, ref); set != nil {
			sc.enqueue(set)
		}
		return
	}
	sc.enqueueSelecting(pod)
}

func (sc *Controller) updatePod(oldObj, curObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	refChanged := (oldRef == nil) != (curRef == nil) || (oldRef != nil && oldRef.UID != curRef.UID)
	if refChanged && oldRef != nil {
		if set := sc.resolve(old, oldRef); set != nil {
			sc.enqueue(set)
		}
	}
	if curRef != nil {
		set := sc.resolve(cur, curRef)
		if set == nil {
			return
		}
		sc.enqueue(set)
		if !isReady(old) && isReady(cur) && set.Spec.MinReadySeconds > 0 {
			sc.queue.EnqueueAfter(framework.KeyOf(set), time.Duration(set.Spec.MinReadySeconds)*time.Second)
		}
		return
	}
	if refChanged || !labels.Equals(old.Labels, cur.Labels) {
		sc.enqueueSelecting(cur)
	}
}

func (sc *Controller) deletePod(obj any) {
	m := framework.ObjectFromEvent(obj)
	pod, ok := m.(*corev1.Pod)
	if !ok {
		return
	}
	if set := sc.resolve(pod, metav1.GetControllerOfNoCopy(pod)); set != nil {
		sc.enqueue(set)
	}
}

// sync reconciles one StatefulSet.
func (sc *Controller) sync(ctx context.Context, key framework.Key) error {
	logger := klog.FromContext(ctx)
	cached, err := sc.sets.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(cached.Spec.Selector)
	if err != nil || cached.Spec.Selector == nil {
		logger.V(2).Info("StatefulSet has an invalid selector", "statefulSet", key.String(), "err", err)
		return nil
	}
	set := cached.DeepCopy()
	cs := sc.client(key.Cluster)
	revs, err := sc.revisionsOf(ctx, key, cs, set, sel)
	if err != nil {
		return err
	}
	pods, err := sc.podsOf(ctx, key, cs, set, sel)
	if err != nil {
		return err
	}
	now := sc.now()
	ctl := &control{obj: &apiObjects{cluster: key.Cluster, cs: cs, claims: sc.claims}, recorder: sc.recorder, now: now}
	status, err := ctl.syncSet(ctx, set, pods, revs)
	if err != nil {
		return err
	}
	if set.Spec.MinReadySeconds > 0 && status != nil && status.ReadyReplicas != status.AvailableReplicas {
		after := time.Duration(set.Spec.MinReadySeconds) * time.Second
		if d, ok := nextAvailableIn(pods, set.Spec.MinReadySeconds, now); ok {
			after = d + 10*time.Millisecond
		}
		sc.queue.EnqueueAfter(key, after)
	}
	return nil
}

// canAdopt re-reads the set uncached: no adoption by a set that is being
// deleted or was replaced.
func canAdopt(cs kubernetes.Interface, set *appsv1.StatefulSet) func(context.Context) error {
	return claim.RecheckDeletion(set.UID, func(ctx context.Context) (metav1.Object, error) {
		return cs.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	})
}

// revisionsOf are the set's ControllerRevisions, adopting orphans its
// selector matches.
func (sc *Controller) revisionsOf(ctx context.Context, key framework.Key, cs kubernetes.Interface, set *appsv1.StatefulSet, sel labels.Selector) ([]*appsv1.ControllerRevision, error) {
	var owned, orphans []*appsv1.ControllerRevision
	for _, r := range sc.revs.ByIndex(revOwnerIndex, string(set.UID)) {
		if framework.ClusterOf(r) == key.Cluster && r.Namespace == set.Namespace && sel.Matches(labels.Set(r.Labels)) {
			owned = append(owned, r)
		}
	}
	for _, r := range sc.revs.ByIndex(revOwnerIndex, orphanValue(key.Cluster, set.Namespace)) {
		if sel.Matches(labels.Set(r.Labels)) {
			orphans = append(orphans, r)
		}
	}
	if len(orphans) == 0 {
		return owned, nil
	}
	if set.DeletionTimestamp != nil {
		return owned, nil
	}
	if err := canAdopt(cs, set)(ctx); err != nil {
		return nil, fmt.Errorf("can't adopt ControllerRevisions: %w", err)
	}
	for _, r := range orphans {
		adopted, err := cs.AppsV1().ControllerRevisions(r.Namespace).Patch(ctx, r.Name, types.StrategicMergePatchType,
			claim.AdoptPatch(set, controllerKind, r.UID), metav1.PatchOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		owned = append(owned, adopted)
	}
	return owned, nil
}

// podsOf are the pods the set owns after adopting orphans its selector
// matches (and whose names make them its members) and releasing those that
// stopped matching.
func (sc *Controller) podsOf(ctx context.Context, key framework.Key, cs kubernetes.Interface, set *appsv1.StatefulSet, sel labels.Selector) ([]*corev1.Pod, error) {
	var cands []*corev1.Pod
	for _, p := range sc.pods.ByIndex(podOwnerIndex, string(set.UID)) {
		if framework.ClusterOf(p) == key.Cluster && p.Namespace == set.Namespace {
			cands = append(cands, p)
		}
	}
	cands = append(cands, sc.pods.ByIndex(podOwnerIndex, orphanValue(key.Cluster, set.Namespace))...)
	return claim.Objects(ctx, &claim.Controller{
		Object: set, Kind: controllerKind,
		Match: func(o metav1.Object) bool {
			return sel.Matches(labels.Set(o.GetLabels())) && isMemberOf(set, o.(*corev1.Pod))
		},
		CanAdopt: canAdopt(cs, set),
		Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
			_, err := cs.CoreV1().Pods(o.GetNamespace()).Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}, cands)
}

// apiObjects are the objects of one cluster, written through its client.
type apiObjects struct {
	cluster string
	cs      kubernetes.Interface
	claims  *framework.Informer[*corev1.PersistentVolumeClaim]
}

func (o *apiObjects) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	_, err := o.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

func (o *apiObjects) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	_, err := o.cs.CoreV1().Pods(pod.Namespace).Update(ctx, pod, metav1.UpdateOptions{})
	return err
}

func (o *apiObjects) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	var pre *metav1.Preconditions
	if pod.UID != "" {
		pre = &metav1.Preconditions{UID: &pod.UID}
	}
	return o.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: pre})
}

func (o *apiObjects) GetClaim(ns, name string) (*corev1.PersistentVolumeClaim, error) {
	return o.claims.Get(o.cluster, ns, name)
}

func (o *apiObjects) CreateClaim(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	_, err := o.cs.CoreV1().PersistentVolumeClaims(c.Namespace).Create(ctx, c, metav1.CreateOptions{})
	return err
}

func (o *apiObjects) UpdateClaim(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	_, err := o.cs.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{})
	return err
}

func (o *apiObjects) CreateRevision(ctx context.Context, r *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	return o.cs.AppsV1().ControllerRevisions(r.Namespace).Create(ctx, r, metav1.CreateOptions{})
}

func (o *apiObjects) GetRevision(ctx context.Context, ns, name string) (*appsv1.ControllerRevision, error) {
	return o.cs.AppsV1().ControllerRevisions(ns).Get(ctx, name, metav1.GetOptions{})
}

func (o *apiObjects) UpdateRevision(ctx context.Context, r *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	want := r.Revision
	var out *appsv1.ControllerRevision
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		updated, err := o.cs.AppsV1().ControllerRevisions(r.Namespace).Update(ctx, r, metav1.UpdateOptions{})
		if err == nil {
			out = updated
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh, gerr := o.cs.AppsV1().ControllerRevisions(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		r = fresh
		r.Revision = want
		return err
	})
	return out, err
}

func (o *apiObjects) DeleteRevision(ctx context.Context, r *appsv1.ControllerRevision) error {
	return o.cs.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &r.UID}})
}

// UpdateStatus writes status, reading the set again after a conflict.
func (o *apiObjects) UpdateStatus(ctx context.Context, set *appsv1.StatefulSet, status *appsv1.StatefulSetStatus) error {
	s := set.DeepCopy()
	framework.StripCluster(s)
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		s.Status = *status
		_, err := o.cs.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh, gerr := o.cs.AppsV1().StatefulSets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if fresh.UID != set.UID {
			return nil // replaced: its own sync takes over
		}
		s = fresh
		return err
	})
}
