// Package daemonset is the DaemonSet controller: one pod on every node the
// set's pod fits (node selector, required node affinity, taints against
// tolerations, with the tolerations upstream gives every daemon pod),
// created with required node affinity for its node so the scheduler binds
// it there; pods removed from nodes they no longer fit; rolling updates
// (maxUnavailable, maxSurge) or OnDelete; ControllerRevisions labelled
// with controller-revision-hash; status and Events, as upstream's.
package daemonset

import (
	"context"
	"errors"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/claim"
	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/history"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

const (
	podOwnerIndex = "daemonset:owner"
	revOwnerIndex = "daemonset:revision-owner"
)

// Controller is the DaemonSet controller.
type Controller struct {
	sets     *framework.Informer[*appsv1.DaemonSet]
	pods     *framework.Informer[*corev1.Pod]
	nodes    *framework.Informer[*corev1.Node]
	revs     *framework.Informer[*appsv1.ControllerRevision]
	client   func(cluster string) kubernetes.Interface
	recorder framework.Recorder
	now      func() time.Time
	workers  int
	queue    *framework.Queue
	exp      *expectations
	// failedBackoff spaces out replacing failed pods, per set and node.
	failedBackoff *flowcontrol.Backoff
}

// New makes the DaemonSet controller.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	dc := &Controller{
		sets: c.Factory.DaemonSets(), pods: c.Factory.Pods(), nodes: c.Factory.Nodes(), revs: c.Factory.ControllerRevisions(),
		client: c.Clients.For, recorder: c.Recorder, now: now, workers: c.Workers,
		exp:           &expectations{m: map[framework.Key]*expect{}, now: now},
		failedBackoff: flowcontrol.NewBackOff(time.Second, 15*time.Minute),
	}
	if dc.workers <= 0 {
		dc.workers = 2
	}
	dc.queue = framework.NewQueue("daemonset", dc.sync)
	dc.pods.AddIndex(podOwnerIndex, func(p *corev1.Pod) []string { return []string{ownerValue(p)} })
	dc.revs.AddIndex(revOwnerIndex, func(r *appsv1.ControllerRevision) []string { return []string{ownerValue(r)} })
	dc.sets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    dc.queue.EnqueueObject,
		UpdateFunc: func(_, cur any) { dc.queue.EnqueueObject(cur) },
		DeleteFunc: func(obj any) {
			if k, ok := framework.KeyFromEvent(obj); ok {
				dc.exp.forget(k)
			}
		},
	})
	dc.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			if k, ok := dc.ownerKey(p); ok {
				dc.exp.created(k)
				dc.queue.Enqueue(k)
				return
			}
			dc.enqueueSelecting(p)
		},
		UpdateFunc: func(oldObj, curObj any) {
			old, ok1 := oldObj.(*corev1.Pod)
			cur, ok2 := curObj.(*corev1.Pod)
			if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
				return
			}
			if k, ok := dc.ownerKey(old); ok {
				dc.queue.Enqueue(k)
			}
			if k, ok := dc.ownerKey(cur); ok {
				if cur.DeletionTimestamp != nil {
					dc.exp.deleted(k, cur.UID)
				}
				dc.queue.Enqueue(k)
				if set, err := dc.sets.Get(k.Cluster, k.Namespace, k.Name); err == nil && set.Spec.MinReadySeconds > 0 && !isReady(old) && isReady(cur) {
					dc.queue.EnqueueAfter(k, time.Duration(set.Spec.MinReadySeconds)*time.Second+10*time.Millisecond)
				}
				return
			}
			dc.enqueueSelecting(cur)
		},
		DeleteFunc: func(obj any) {
			p, ok := framework.ObjectFromEvent(obj).(*corev1.Pod)
			if !ok {
				return
			}
			if k, ok := dc.ownerKey(p); ok {
				dc.exp.deleted(k, p.UID)
				dc.queue.Enqueue(k)
			}
		},
	})
	dc.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: dc.nodeChanged,
		UpdateFunc: func(oldObj, curObj any) {
			old, ok1 := oldObj.(*corev1.Node)
			cur, ok2 := curObj.(*corev1.Node)
			if ok1 && ok2 && labels.Equals(old.Labels, cur.Labels) && apiequality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) &&
				old.Spec.Unschedulable == cur.Spec.Unschedulable {
				return
			}
			dc.nodeChanged(curObj)
		},
		DeleteFunc: dc.nodeChanged,
	})
	return dc, nil
}

func ownerValue(obj metav1.Object) string {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		return string(ref.UID)
	}
	return orphanValue(framework.ClusterOf(obj), obj.GetNamespace())
}

func orphanValue(cluster, ns string) string { return "orphan|" + cluster + "|" + ns }

// ownerKey is the key of the pod's DaemonSet, if it has one.
func (dc *Controller) ownerKey(p *corev1.Pod) (framework.Key, bool) {
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != controllerKind.Kind {
		return framework.Key{}, false
	}
	set, err := dc.sets.Get(framework.ClusterOf(p), p.Namespace, ref.Name)
	if err != nil || set.UID != ref.UID {
		return framework.Key{}, false
	}
	return framework.KeyOf(set), true
}

func (dc *Controller) enqueueSelecting(p *corev1.Pod) {
	if metav1.GetControllerOfNoCopy(p) != nil || len(p.Labels) == 0 || p.DeletionTimestamp != nil {
		return
	}
	for _, set := range dc.sets.List(framework.ClusterOf(p), p.Namespace, nil) {
		sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			dc.queue.Enqueue(framework.KeyOf(set))
		}
	}
}

func (dc *Controller) nodeChanged(obj any) {
	n := framework.ObjectFromEvent(obj)
	if n == nil {
		return
	}
	for _, set := range dc.sets.List(framework.ClusterOf(n), "", nil) {
		dc.queue.Enqueue(framework.KeyOf(set))
	}
}

// Run implements framework.Runnable.
func (dc *Controller) Run(ctx context.Context) {
	dc.queue.Run(ctx, dc.workers, dc.sets.HasSynced, dc.pods.HasSynced, dc.nodes.HasSynced, dc.revs.HasSynced)
}

func (dc *Controller) sync(ctx context.Context, key framework.Key) error {
	cached, err := dc.sets.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		dc.exp.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(cached.Spec.Selector)
	if err != nil || cached.Spec.Selector == nil || sel.Empty() {
		dc.recorder.Eventf(cached, corev1.EventTypeWarning, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is required.")
		return nil
	}
	ds := cached.DeepCopy()
	cs := dc.client(key.Cluster)
	hash, err := dc.syncRevisions(ctx, key, cs, ds, sel)
	if err != nil {
		return err
	}
	pods, err := dc.podsOf(ctx, key, cs, ds, sel)
	if err != nil {
		return err
	}
	now := dc.now()
	states := dc.nodeStates(key.Cluster, ds, pods)
	if ds.DeletionTimestamp == nil && dc.exp.satisfied(key) {
		plan := manage(states, hash, surgeEnabled(ds))
		plan.Delete = append(plan.Delete, strays(pods, states)...)
		dc.backOffFailed(key, &plan, now)
		if plan.empty() && ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
			plan = rollingUpdate(ds, states, hash, now)
		}
		if err := dc.apply(ctx, key, cs, ds, plan, hash); err != nil {
			return err
		}
	}
	if err := dc.cleanupHistory(ctx, cs, key, ds, pods, hash); err != nil {
		klog.FromContext(ctx).V(2).Info("Could not clean up DaemonSet history", "daemonSet", key.String(), "err", err)
	}
	st := computeStatus(ds, states, hash, now)
	if err := dc.updateStatus(ctx, cs, ds, st); err != nil {
		return err
	}
	// Come back when a ready pod becomes available.
	if ds.Spec.MinReadySeconds > 0 {
		var next time.Duration
		for _, p := range pods {
			if d, ok := availableIn(p, ds.Spec.MinReadySeconds, now); ok && (next == 0 || d < next) {
				next = d
			}
		}
		if next > 0 {
			dc.queue.EnqueueAfter(key, next+10*time.Millisecond)
		}
	}
	return nil
}

// backOffFailed keeps failed pods whose node is in back-off out of the
// plan (and comes back when it ends); the others start a longer back-off.
func (dc *Controller) backOffFailed(key framework.Key, plan *Plan, now time.Time) {
	if len(plan.Failed) == 0 {
		return
	}
	skip := map[*corev1.Pod]bool{}
	var failed []*corev1.Pod
	for _, p := range plan.Failed {
		id := key.String() + "|" + p.Spec.NodeName
		if dc.failedBackoff.IsInBackOffSinceUpdate(id, now) {
			skip[p] = true
			dc.queue.EnqueueAfter(key, dc.failedBackoff.Get(id))
			continue
		}
		dc.failedBackoff.Next(id, now)
		failed = append(failed, p)
	}
	plan.Failed = failed
	var del []*corev1.Pod
	for _, p := range plan.Delete {
		if !skip[p] {
			del = append(del, p)
		}
	}
	plan.Delete = del
}

func surgeEnabled(ds *appsv1.DaemonSet) bool {
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		return false
	}
	s, _ := budgets(ds, 1)
	return s > 0
}

// nodeStates groups the set's pods by node, for every node of the cluster.
func (dc *Controller) nodeStates(cluster string, ds *appsv1.DaemonSet, pods []*corev1.Pod) []NodeState {
	byNode := map[string][]*corev1.Pod{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded) {
			continue
		}
		if n := targetNode(p); n != "" {
			byNode[n] = append(byNode[n], p)
		}
	}
	nodes := dc.nodes.List(cluster, "", nil)
	states := make([]NodeState, 0, len(nodes))
	for _, n := range nodes {
		run, stay := shouldRun(ds, n)
		ps := byNode[n.Name]
		sortPods(ps)
		states = append(states, NodeState{Name: n.Name, Run: run, Stay: stay, Pods: ps})
	}
	return states
}

// strays are unbound pods for nodes that do not exist.
func strays(pods []*corev1.Pod, states []NodeState) []*corev1.Pod {
	known := map[string]bool{}
	for _, s := range states {
		known[s.Name] = true
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName == "" && p.DeletionTimestamp == nil && !known[targetNode(p)] {
			out = append(out, p)
		}
	}
	return out
}

// apply creates and deletes pods in parallel, recording Events.
func (dc *Controller) apply(ctx context.Context, key framework.Key, cs kubernetes.Interface, ds *appsv1.DaemonSet, plan Plan, hash string) error {
	if plan.empty() {
		return nil
	}
	logger := klog.FromContext(ctx)
	uids := make([]types.UID, 0, len(plan.Delete))
	for _, p := range plan.Delete {
		uids = append(uids, p.UID)
	}
	dc.exp.expect(key, len(plan.Create), uids)
	failed := map[types.UID]bool{}
	for _, p := range plan.Failed {
		failed[p.UID] = true
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	owner := ds.DeepCopy()
	framework.StripCluster(owner)
	for _, node := range plan.Create {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := podTemplate(owner, node, hash)
			pod.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, controllerKind)}
			created, err := cs.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				dc.exp.created(key)
				if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return
				}
				dc.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			logger.V(2).Info("Created daemon pod", "daemonSet", key.String(), "pod", created.Name, "node", node)
			dc.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
		}()
	}
	for _, p := range plan.Delete {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if failed[p.UID] {
				dc.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, p.Spec.NodeName)
			}
			err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				dc.exp.deleted(key, p.UID)
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
					return
				}
				dc.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			dc.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func canAdopt(cs kubernetes.Interface, ds *appsv1.DaemonSet) func(context.Context) error {
	return claim.RecheckDeletion(ds.UID, func(ctx context.Context) (metav1.Object, error) {
		return cs.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	})
}

// podsOf are the set's pods, after adopting matching orphans and releasing
// pods it no longer selects.
func (dc *Controller) podsOf(ctx context.Context, key framework.Key, cs kubernetes.Interface, ds *appsv1.DaemonSet, sel labels.Selector) ([]*corev1.Pod, error) {
	var cands []*corev1.Pod
	for _, p := range dc.pods.ByIndex(podOwnerIndex, string(ds.UID)) {
		if framework.ClusterOf(p) == key.Cluster && p.Namespace == ds.Namespace {
			cands = append(cands, p)
		}
	}
	cands = append(cands, dc.pods.ByIndex(podOwnerIndex, orphanValue(key.Cluster, ds.Namespace))...)
	return claim.Objects(ctx, &claim.Controller{
		Object: ds, Kind: controllerKind,
		Match:    func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
		CanAdopt: canAdopt(cs, ds),
		Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
			_, err := cs.CoreV1().Pods(o.GetNamespace()).Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}, cands)
}

// syncRevisions makes sure a ControllerRevision of the current template
// exists and is the newest, and returns its hash.
func (dc *Controller) syncRevisions(ctx context.Context, key framework.Key, cs kubernetes.Interface, ds *appsv1.DaemonSet, sel labels.Selector) (string, error) {
	var revs []*appsv1.ControllerRevision
	for _, r := range dc.revs.ByIndex(revOwnerIndex, string(ds.UID)) {
		if framework.ClusterOf(r) == key.Cluster && r.Namespace == ds.Namespace {
			revs = append(revs, r)
		}
	}
	if ds.DeletionTimestamp == nil {
		var orphans []*appsv1.ControllerRevision
		for _, r := range dc.revs.ByIndex(revOwnerIndex, orphanValue(key.Cluster, ds.Namespace)) {
			if sel.Matches(labels.Set(r.Labels)) {
				orphans = append(orphans, r)
			}
		}
		if len(orphans) > 0 {
			adopted, err := claim.Objects(ctx, &claim.Controller{
				Object: ds, Kind: controllerKind,
				Match:    func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
				CanAdopt: canAdopt(cs, ds),
				Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
					_, err := cs.AppsV1().ControllerRevisions(o.GetNamespace()).Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
					return err
				},
			}, orphans)
			if err != nil {
				return "", err
			}
			revs = append(revs, adopted...)
		}
	}
	history.Sort(revs)
	var maxRev int64
	if len(revs) > 0 {
		maxRev = revs[len(revs)-1].Revision
	}
	want, err := newRevision(ds, maxRev+1)
	if err != nil {
		return "", err
	}
	hash := want.Labels[HashLabel]
	var cur *appsv1.ControllerRevision
	for _, r := range revs {
		if sameData(r, want) || r.Name == want.Name {
			cur = r
		}
	}
	switch {
	case cur != nil && cur.Revision == maxRev:
		return cur.Labels[HashLabel], nil
	case cur != nil:
		r := cur.DeepCopy()
		framework.StripCluster(r)
		r.Revision = maxRev + 1
		if _, err := cs.AppsV1().ControllerRevisions(r.Namespace).Update(ctx, r, metav1.UpdateOptions{}); err != nil {
			return "", err
		}
		if h := cur.Labels[HashLabel]; h != "" {
			return h, nil
		}
		return hash, nil
	}
	_, err = cs.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := cs.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		if gerr != nil {
			return "", gerr
		}
		if ref := metav1.GetControllerOfNoCopy(existing); ref != nil && ref.UID == ds.UID && sameData(existing, want) {
			return hash, nil
		}
		// A hash collision: bump the count, and come back.
		return "", dc.bumpCollisionCount(ctx, cs, ds)
	}
	if err != nil {
		return "", err
	}
	return hash, nil
}

func (dc *Controller) bumpCollisionCount(ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet) error {
	s := ds.DeepCopy()
	framework.StripCluster(s)
	var c int32
	if s.Status.CollisionCount != nil {
		c = *s.Status.CollisionCount
	}
	c++
	s.Status.CollisionCount = &c
	if _, err := cs.AppsV1().DaemonSets(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		return err
	}
	return errors.New("ControllerRevision name collision; collisionCount raised")
}

// cleanupHistory deletes the oldest revisions beyond revisionHistoryLimit
// that no live pod runs.
func (dc *Controller) cleanupHistory(ctx context.Context, cs kubernetes.Interface, key framework.Key, ds *appsv1.DaemonSet, pods []*corev1.Pod, hash string) error {
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	used := map[string]bool{hash: true}
	for _, p := range pods {
		if h := p.Labels[HashLabel]; h != "" {
			used[h] = true
		}
	}
	var old []*appsv1.ControllerRevision
	for _, r := range dc.revs.ByIndex(revOwnerIndex, string(ds.UID)) {
		if framework.ClusterOf(r) == key.Cluster && !used[r.Labels[HashLabel]] {
			old = append(old, r)
		}
	}
	if len(old) <= limit {
		return nil
	}
	history.Sort(old)
	for _, r := range old[:len(old)-limit] {
		err := cs.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &r.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (dc *Controller) updateStatus(ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) error {
	if apiequality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	s := ds.DeepCopy()
	framework.StripCluster(s)
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		s.Status = st
		_, err := cs.AppsV1().DaemonSets(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		fresh, gerr := cs.AppsV1().DaemonSets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if fresh.UID != ds.UID {
			return nil
		}
		st.CollisionCount = fresh.Status.CollisionCount
		s = fresh
		return err
	})
}

// expectations are the pod creations and deletions a set is waiting to
// see in its informer before it acts again (5 minutes at most).
type expectations struct {
	mu  sync.Mutex
	m   map[framework.Key]*expect
	now func() time.Time
}

type expect struct {
	adds int
	dels map[types.UID]bool
	at   time.Time
}

func (e *expectations) expect(k framework.Key, adds int, dels []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expect{adds: adds, dels: map[types.UID]bool{}, at: e.now()}
	for _, u := range dels {
		x.dels[u] = true
	}
	e.m[k] = x
}

func (e *expectations) satisfied(k framework.Key) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[k]
	return x == nil || (x.adds <= 0 && len(x.dels) == 0) || e.now().Sub(x.at) > 5*time.Minute
}

func (e *expectations) created(k framework.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[k]; x != nil && x.adds > 0 {
		x.adds--
	}
}

func (e *expectations) deleted(k framework.Key, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[k]; x != nil {
		delete(x.dels, uid)
	}
}

func (e *expectations) forget(k framework.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, k)
}
