// Package podgc is the pod garbage collector, as upstream's: it deletes
// the oldest terminated pods over the threshold, pods bound to nodes that
// no longer exist (after a quarantine, checked again against the API),
// terminating pods that were never scheduled, and terminating pods on
// not-ready nodes taken out of service (node.kubernetes.io/out-of-service).
package podgc

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/framework"
)

const (
	// Period is how often the collector looks (upstream 20s).
	Period = 20 * time.Second
	// Quarantine is how long a node must be missing before its pods go.
	Quarantine = 40 * time.Second
	// OutOfServiceTaint marks a node shut down for good.
	OutOfServiceTaint = "node.kubernetes.io/out-of-service"
)

// Controller is the pod garbage collector.
type Controller struct {
	pods      *framework.Informer[*corev1.Pod]
	nodes     *framework.Informer[*corev1.Node]
	client    func(cluster string) kubernetes.Interface
	now       func() time.Time
	threshold int
	period    time.Duration
	// missing: when a node (cluster|name) was first seen missing.
	missing map[string]time.Time
}

// New makes the pod garbage collector.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	th := c.Options.TerminatedPodGCThreshold
	if th == 0 {
		th = 12500
	}
	return &Controller{pods: c.Factory.Pods(), nodes: c.Factory.Nodes(), client: c.Clients.For, now: now,
		threshold: th, period: Period, missing: map[string]time.Time{}}, nil
}

// Run implements framework.Runnable.
func (gc *Controller) Run(ctx context.Context) {
	if !waitSynced(ctx, gc.pods.HasSynced, gc.nodes.HasSynced) {
		return
	}
	t := time.NewTicker(gc.period)
	defer t.Stop()
	for {
		gc.collect(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func waitSynced(ctx context.Context, fs ...func() bool) bool {
	for {
		ok := true
		for _, f := range fs {
			ok = ok && f()
		}
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Decision is what one pass decides to delete.
type Decision struct {
	Terminated   []*corev1.Pod // over the threshold, oldest first
	Orphaned     []*corev1.Pod // on nodes gone past the quarantine
	Unscheduled  []*corev1.Pod // terminating, never bound
	OutOfService []*corev1.Pod // terminating on out-of-service, not-ready nodes
}

// Decide looks at every pod and node; missing records when nodes were
// first seen missing (and is updated).
func Decide(pods []*corev1.Pod, nodes []*corev1.Node, threshold int, missing map[string]time.Time, now time.Time) Decision {
	var d Decision
	nodeOf := map[string]*corev1.Node{}
	for _, n := range nodes {
		nodeOf[framework.ClusterOf(n)+"|"+n.Name] = n
	}
	var terminated []*corev1.Pod
	stillMissing := map[string]bool{}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			terminated = append(terminated, p)
		}
		if p.Spec.NodeName == "" {
			if p.DeletionTimestamp != nil {
				d.Unscheduled = append(d.Unscheduled, p)
			}
			continue
		}
		nk := framework.ClusterOf(p) + "|" + p.Spec.NodeName
		n := nodeOf[nk]
		if n == nil {
			stillMissing[nk] = true
			first, ok := missing[nk]
			if !ok {
				missing[nk] = now
				continue
			}
			if now.Sub(first) >= Quarantine {
				d.Orphaned = append(d.Orphaned, p)
			}
			continue
		}
		if p.DeletionTimestamp != nil && outOfService(n) && !nodeReady(n) {
			d.OutOfService = append(d.OutOfService, p)
		}
	}
	for k := range missing {
		if !stillMissing[k] {
			delete(missing, k)
		}
	}
	if threshold > 0 && len(terminated) > threshold {
		sort.SliceStable(terminated, func(i, j int) bool {
			return terminated[i].CreationTimestamp.Before(&terminated[j].CreationTimestamp)
		})
		d.Terminated = terminated[:len(terminated)-threshold]
	}
	return d
}

func outOfService(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == OutOfServiceTaint && t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (gc *Controller) collect(ctx context.Context) {
	logger := klog.FromContext(ctx)
	d := Decide(gc.pods.ListAll(), gc.nodes.ListAll(), gc.threshold, gc.missing, gc.now())
	for _, p := range d.Terminated {
		gc.delete(ctx, p, false, "")
	}
	for _, p := range d.Orphaned {
		// Ask the API, not the cache, before deleting.
		cs := gc.client(framework.ClusterOf(p))
		if _, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			continue
		}
		logger.Info("Deleting orphaned pod", "pod", framework.KeyOf(p).String(), "node", p.Spec.NodeName)
		gc.delete(ctx, p, true, "PodGC: node no longer exists")
	}
	for _, p := range d.Unscheduled {
		gc.delete(ctx, p, true, "")
	}
	for _, p := range d.OutOfService {
		gc.delete(ctx, p, true, "PodGC: node is out-of-service")
	}
}

// delete removes a pod, at once when force; with a message, a pod not yet
// terminal is first marked Failed with the DisruptionTarget condition.
func (gc *Controller) delete(ctx context.Context, cached *corev1.Pod, force bool, message string) {
	cs := gc.client(framework.ClusterOf(cached))
	if message != "" && cached.Status.Phase != corev1.PodSucceeded && cached.Status.Phase != corev1.PodFailed {
		p := cached.DeepCopy()
		framework.StripCluster(p)
		p.Status.Phase = corev1.PodFailed
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByPodGC",
			Message: message, LastTransitionTime: metav1.NewTime(gc.now()),
		})
		if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			klog.FromContext(ctx).V(2).Info("Could not mark pod failed", "pod", framework.KeyOf(cached).String(), "err", err)
		}
	}
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cached.UID}}
	if force {
		opts.GracePeriodSeconds = new(int64)
	}
	if err := cs.CoreV1().Pods(cached.Namespace).Delete(ctx, cached.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		klog.FromContext(ctx).V(2).Info("Could not delete pod", "pod", framework.KeyOf(cached).String(), "err", err)
	}
}
