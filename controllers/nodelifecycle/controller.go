// Package nodelifecycle is the node lifecycle controller: nodes whose
// heartbeat (their Lease in kube-node-lease, or their Ready condition's
// heartbeat) stops for longer than the grace period get Unknown
// conditions; nodes get the node.kubernetes.io/* taints their conditions
// call for (NoSchedule for every condition, NoExecute for not-ready and
// unreachable), removed when the condition clears; and pods on nodes with
// NoExecute taints are evicted once their tolerations run out, as
// upstream's node lifecycle controller and taint-eviction controller do.
package nodelifecycle

import (
	"context"
	"errors"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/framework"
)

// LeaseNamespace holds the nodes' heartbeat Leases.
const LeaseNamespace = "kube-node-lease"

const podNodeIndex = "nodelifecycle:node"

// Controller is the node lifecycle controller.
type Controller struct {
	nodes    *framework.Informer[*corev1.Node]
	leases   *framework.Informer[*coordinationv1.Lease]
	pods     *framework.Informer[*corev1.Pod]
	client   func(cluster string) kubernetes.Interface
	recorder framework.Recorder
	now      func() time.Time
	grace    time.Duration
	period   time.Duration
	workers  int

	nodeQueue *framework.Queue
	podQueue  *framework.Queue

	mu     sync.Mutex
	probes map[framework.Key]*probe
	// tainted: since when (the controller's clock) each node has had its
	// current NoExecute taints; tolerationSeconds count from then, as
	// upstream's taint manager counts from when it saw the taints.
	tainted map[framework.Key]taintedSince
}

type taintedSince struct {
	taints string
	since  time.Time
}

// probe is what the controller last saw of a node's heartbeats, and when
// (its own clock: the node's clock may differ).
type probe struct {
	leaseRenew metav1.MicroTime
	heartbeat  metav1.Time
	seen       time.Time
	// wasReady: Ready was True at the last sync (nil before the first).
	wasReady *bool
}

// New makes the node lifecycle controller.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	nc := &Controller{
		nodes: c.Factory.Nodes(), leases: c.Factory.Leases(), pods: c.Factory.Pods(),
		client: c.Clients.For, recorder: c.Recorder, now: now,
		grace: c.Options.NodeMonitorGracePeriod, workers: c.Workers,
		probes: map[framework.Key]*probe{}, tainted: map[framework.Key]taintedSince{},
	}
	if nc.grace <= 0 {
		nc.grace = 40 * time.Second
	}
	// Upstream checks every 5s; shorter grace periods (tests) are checked
	// proportionally more often.
	nc.period = min(5*time.Second, max(nc.grace/8, 200*time.Millisecond))
	if nc.workers <= 0 {
		nc.workers = 5
	}
	nc.nodeQueue = framework.NewQueue("node-lifecycle", nc.syncNode)
	nc.podQueue = framework.NewQueue("taint-eviction", nc.syncPod)
	nc.pods.AddIndex(podNodeIndex, func(p *corev1.Pod) []string {
		if p.Spec.NodeName == "" {
			return nil
		}
		return []string{framework.ClusterOf(p) + "|" + p.Spec.NodeName}
	})
	nc.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nc.nodeQueue.EnqueueObject,
		UpdateFunc: func(old, cur any) {
			nc.nodeQueue.EnqueueObject(cur)
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if ok1 && ok2 && !taintsEqual(noExecute(o.Spec.Taints), noExecute(n.Spec.Taints)) {
				if len(noExecute(n.Spec.Taints)) == 0 {
					nc.mu.Lock()
					delete(nc.tainted, framework.KeyOf(n))
					nc.mu.Unlock()
				}
				nc.enqueuePodsOn(framework.ClusterOf(n), n.Name)
			}
		},
		DeleteFunc: func(obj any) {
			if k, ok := framework.KeyFromEvent(obj); ok {
				nc.mu.Lock()
				delete(nc.probes, k)
				delete(nc.tainted, k)
				nc.mu.Unlock()
			}
		},
	})
	nc.leases.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    nc.leaseChanged,
		UpdateFunc: func(_, cur any) { nc.leaseChanged(cur) },
	})
	nc.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nc.podQueue.EnqueueObject,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Pod)
			p, ok2 := cur.(*corev1.Pod)
			if ok1 && ok2 && o.Spec.NodeName == p.Spec.NodeName && tolerationsEqual(o.Spec.Tolerations, p.Spec.Tolerations) {
				return
			}
			nc.podQueue.EnqueueObject(cur)
		},
	})
	return nc, nil
}

func (nc *Controller) leaseChanged(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Namespace != LeaseNamespace {
		return
	}
	nc.nodeQueue.Enqueue(framework.Key{Cluster: framework.ClusterOf(l), Name: l.Name})
}

func (nc *Controller) enqueuePodsOn(cluster, node string) {
	for _, p := range nc.pods.ByIndex(podNodeIndex, cluster+"|"+node) {
		nc.podQueue.Enqueue(framework.KeyOf(p))
	}
}

// Run implements framework.Runnable.
func (nc *Controller) Run(ctx context.Context) {
	synced := []cache.InformerSynced{nc.nodes.HasSynced, nc.leases.HasSynced, nc.pods.HasSynced}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); nc.nodeQueue.Run(ctx, nc.workers, synced...) }()
	go func() { defer wg.Done(); nc.podQueue.Run(ctx, nc.workers, synced...) }()
	if cache.WaitForCacheSync(ctx.Done(), synced...) {
		t := time.NewTicker(nc.period)
		defer t.Stop()
		for {
			for _, n := range nc.nodes.ListAll() {
				nc.nodeQueue.Enqueue(framework.KeyOf(n))
			}
			select {
			case <-ctx.Done():
			case <-t.C:
				continue
			}
			break
		}
	}
	wg.Wait()
}

// observe updates the node's probe from its Lease and Ready heartbeat and
// says when the controller last saw the node alive.
func (nc *Controller) observe(key framework.Key, node *corev1.Node) time.Time {
	now := nc.now()
	var renew metav1.MicroTime
	if l, err := nc.leases.Get(key.Cluster, LeaseNamespace, node.Name); err == nil && l.Spec.RenewTime != nil {
		renew = *l.Spec.RenewTime
	}
	var hb metav1.Time
	if c := condition(node, corev1.NodeReady); c != nil {
		hb = c.LastHeartbeatTime
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	p := nc.probes[key]
	if p == nil {
		// First sight: the node has a full grace period from now (or from
		// its creation, if younger), as upstream.
		p = &probe{leaseRenew: renew, heartbeat: hb, seen: now}
		if node.CreationTimestamp.Time.After(now) {
			p.seen = node.CreationTimestamp.Time
		}
		nc.probes[key] = p
		return p.seen
	}
	if !renew.Equal(&p.leaseRenew) && renew.After(p.leaseRenew.Time) {
		p.leaseRenew, p.seen = renew, now
	}
	if !hb.Equal(&p.heartbeat) && hb.After(p.heartbeat.Time) {
		p.heartbeat, p.seen = hb, now
	}
	return p.seen
}

// syncNode marks a silent node Unknown and keeps its taints in line with
// its conditions.
func (nc *Controller) syncNode(ctx context.Context, key framework.Key) error {
	node, err := nc.nodes.Get(key.Cluster, "", key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	seen := nc.observe(key, node)
	now := nc.now()
	cs := nc.client(key.Cluster)
	if now.Sub(seen) > nc.grace {
		if err := nc.markUnknown(ctx, cs, node, now); err != nil {
			return err
		}
	} else {
		nc.nodeQueue.EnqueueAfter(key, seen.Add(nc.grace).Sub(now)+10*time.Millisecond)
	}
	if nc.becameNotReady(key, node) {
		if err := nc.markPodsNotReady(ctx, cs, key, node, now); err != nil {
			nc.setWasReady(key, true) // try again
			return err
		}
	}
	return nc.syncTaints(ctx, cs, key, now)
}

// becameNotReady: the node's Ready condition was True at the last sync and
// is not now.
func (nc *Controller) becameNotReady(key framework.Key, node *corev1.Node) bool {
	c := condition(node, corev1.NodeReady)
	ready := c != nil && c.Status == corev1.ConditionTrue
	nc.mu.Lock()
	defer nc.mu.Unlock()
	p := nc.probes[key]
	if p == nil {
		return false
	}
	was := p.wasReady
	p.wasReady = &ready
	return was != nil && *was && !ready
}

func (nc *Controller) setWasReady(key framework.Key, v bool) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if p := nc.probes[key]; p != nil {
		p.wasReady = &v
	}
}

// markPodsNotReady sets the Ready condition of the node's pods to False,
// as upstream does when a node stops being Ready: no agent is left to.
func (nc *Controller) markPodsNotReady(ctx context.Context, cs kubernetes.Interface, key framework.Key, node *corev1.Node, now time.Time) error {
	var errs []error
	for _, cached := range nc.pods.ByIndex(podNodeIndex, key.Cluster+"|"+node.Name) {
		if cached.Status.Phase == corev1.PodSucceeded || cached.Status.Phase == corev1.PodFailed {
			continue
		}
		pod := cached.DeepCopy()
		framework.StripCluster(pod)
		changed := false
		for i := range pod.Status.Conditions {
			c := &pod.Status.Conditions[i]
			if c.Type == corev1.PodReady && c.Status != corev1.ConditionFalse {
				c.Status = corev1.ConditionFalse
				c.LastTransitionTime = metav1.NewTime(now)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		nc.recorder.Eventf(cached, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return errors.Join(errs...)
}

// markUnknown sets the conditions the node's agent reports to Unknown.
func (nc *Controller) markUnknown(ctx context.Context, cs kubernetes.Interface, cached *corev1.Node, now time.Time) error {
	if !needsUnknown(cached) {
		return nil
	}
	klog.FromContext(ctx).Info("Node stopped posting status; marking it Unknown", "node", cached.Name, "cluster", framework.ClusterOf(cached))
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, cached.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !needsUnknown(node) {
			return nil
		}
		setUnknown(node, metav1.NewTime(now))
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		nc.recorder.Eventf(cached, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", cached.Name)
	}
	return err
}

// syncTaints writes the taints the node's conditions call for.
func (nc *Controller) syncTaints(ctx context.Context, cs kubernetes.Interface, key framework.Key, now time.Time) error {
	node, err := nc.nodes.Get(key.Cluster, "", key.Name)
	if err != nil {
		return nil
	}
	if _, changed := reconcileTaints(node.Spec.Taints, wantedTaints(node), now); !changed {
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		fresh, err := cs.CoreV1().Nodes().Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints, changed := reconcileTaints(fresh.Spec.Taints, wantedTaints(fresh), now)
		if !changed {
			return nil
		}
		fresh.Spec.Taints = taints
		_, err = cs.CoreV1().Nodes().Update(ctx, fresh, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// syncPod evicts a pod whose node has NoExecute taints it does not
// tolerate, or tolerates for a time that has run out.
func (nc *Controller) syncPod(ctx context.Context, key framework.Key) error {
	pod, err := nc.pods.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return nil
	}
	node, err := nc.nodes.Get(key.Cluster, "", pod.Spec.NodeName)
	if err != nil {
		return nil
	}
	taints := noExecute(node.Spec.Taints)
	if len(taints) == 0 {
		return nil
	}
	now := nc.now()
	at, evict := evictionTime(pod.Spec.Tolerations, taints, nc.taintedSince(framework.Key{Cluster: key.Cluster, Name: node.Name}, taints, now), now)
	if !evict {
		return nil
	}
	if at.After(now) {
		nc.podQueue.EnqueueAfter(key, at.Sub(now)+10*time.Millisecond)
		return nil
	}
	return nc.evict(ctx, key, pod)
}

// taintedSince is when the controller first saw the node with these
// NoExecute taints.
func (nc *Controller) taintedSince(node framework.Key, taints []corev1.Taint, now time.Time) time.Time {
	sig := ""
	for _, t := range taints {
		sig += t.Key + "=" + t.Value + ":" + string(t.Effect) + ","
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if cur, ok := nc.tainted[node]; ok && cur.taints == sig {
		return cur.since
	}
	nc.tainted[node] = taintedSince{taints: sig, since: now}
	return now
}

func (nc *Controller) evict(ctx context.Context, key framework.Key, cached *corev1.Pod) error {
	cs := nc.client(key.Cluster)
	nc.recorder.Eventf(cached, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", cached.Namespace, cached.Name)
	pod := cached.DeepCopy()
	framework.StripCluster(pod)
	if setCondition(&pod.Status, corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "DeletionByTaintManager", Message: "Taint manager: deleting due to NoExecute taint",
		LastTransitionTime: metav1.NewTime(nc.now()),
	}) {
		if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				return err
			}
			klog.FromContext(ctx).V(2).Info("Could not add the DisruptionTarget condition", "pod", key.String(), "err", err)
		}
	}
	err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cached.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
