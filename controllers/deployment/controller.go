// Package deployment is the Deployment controller: one ReplicaSet per pod
// template, rolled with the RollingUpdate or Recreate strategy, revisions
// and their history, rollback, pause, proportional scaling, progress
// deadlines, and status with upstream's conditions.
package deployment

import (
	"context"
	"fmt"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/claim"
	"github.com/pgkube/pgkube/controllers/framework"
)

var deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

const ownerIndex = "deployment:owner"

// Controller is the Deployment controller.
type Controller struct {
	deployments *framework.Informer[*appsv1.Deployment]
	rss         *framework.Informer[*appsv1.ReplicaSet]
	pods        *framework.Informer[*corev1.Pod]
	clients     *framework.Clients
	recorder    framework.Recorder
	now         func() time.Time
	workers     int
	queue       *framework.Queue
}

// New makes the Deployment controller.
func New(c *framework.Context) (framework.Runnable, error) {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	dc := &Controller{
		deployments: c.Factory.Deployments(), rss: c.Factory.ReplicaSets(), pods: c.Factory.Pods(),
		clients: c.Clients, recorder: c.Recorder, now: now, workers: c.Workers,
	}
	if dc.workers <= 0 {
		dc.workers = 5
	}
	dc.queue = framework.NewQueue("deployment", dc.sync)
	dc.rss.AddIndex(ownerIndex, func(rs *appsv1.ReplicaSet) []string {
		if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
			if ref.Kind == deploymentKind.Kind {
				return []string{string(ref.UID)}
			}
			return nil
		}
		return []string{"orphan|" + framework.ClusterOf(rs) + "|" + rs.Namespace}
	})
	dc.deployments.AddEventHandler(dc.queue.Handler())
	dc.rss.AddEventHandler(rsHandler{dc})
	dc.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: dc.podDeleted})
	return dc, nil
}

// Run implements framework.Runnable.
func (dc *Controller) Run(ctx context.Context) {
	dc.queue.Run(ctx, dc.workers, dc.deployments.HasSynced, dc.rss.HasSynced, dc.pods.HasSynced)
}

// resolve is the Deployment a controllerRef names, if it exists with that
// uid.
func (dc *Controller) resolve(cluster, ns string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref == nil || ref.Kind != deploymentKind.Kind {
		return nil
	}
	d, err := dc.deployments.Get(cluster, ns, ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

// selecting are the Deployments whose selector matches rs.
func (dc *Controller) selecting(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	if len(rs.Labels) == 0 {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range dc.deployments.List(framework.ClusterOf(rs), rs.Namespace, nil) {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (dc *Controller) enqueue(d *appsv1.Deployment) { dc.queue.Enqueue(framework.KeyOf(d)) }

type rsHandler struct{ dc *Controller }

func (h rsHandler) OnAdd(obj any, _ bool) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if rs.DeletionTimestamp != nil {
		h.OnDelete(rs)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := h.dc.resolve(framework.ClusterOf(rs), rs.Namespace, ref); d != nil {
			h.dc.enqueue(d)
		}
		return
	}
	for _, d := range h.dc.selecting(rs) {
		h.dc.enqueue(d)
	}
}

func (h rsHandler) OnUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*appsv1.ReplicaSet)
	cur, ok2 := newObj.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 || (old.ResourceVersion != "" && old.ResourceVersion == cur.ResourceVersion) {
		return
	}
	cluster := framework.ClusterOf(cur)
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	refChanged := !reflect.DeepEqual(oldRef, curRef)
	if refChanged && oldRef != nil {
		if d := h.dc.resolve(cluster, old.Namespace, oldRef); d != nil {
			h.dc.enqueue(d)
		}
	}
	if curRef != nil {
		if d := h.dc.resolve(cluster, cur.Namespace, curRef); d != nil {
			h.dc.enqueue(d)
		}
		return
	}
	if refChanged || !reflect.DeepEqual(old.Labels, cur.Labels) {
		for _, d := range h.dc.selecting(cur) {
			h.dc.enqueue(d)
		}
	}
}

func (h rsHandler) OnDelete(obj any) {
	rs, ok := framework.ObjectFromEvent(obj).(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if d := h.dc.resolve(framework.ClusterOf(rs), rs.Namespace, metav1.GetControllerOfNoCopy(rs)); d != nil {
		h.dc.enqueue(d)
	}
}

// podDeleted wakes a Recreate deployment waiting for its old pods to go.
func (dc *Controller) podDeleted(obj any) {
	p, ok := framework.ObjectFromEvent(obj).(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	cluster := framework.ClusterOf(p)
	rs, err := dc.rss.Get(cluster, p.Namespace, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if d := dc.resolve(cluster, rs.Namespace, metav1.GetControllerOfNoCopy(rs)); d != nil &&
		d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		dc.enqueue(d)
	}
}

// sync reconciles one Deployment.
func (dc *Controller) sync(ctx context.Context, key framework.Key) error {
	cached, err := dc.deployments.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	s := &syncer{dc: dc, ctx: ctx, key: key, d: cached.DeepCopy(), logger: klog.FromContext(ctx).WithValues("deployment", key.String())}
	d := s.d
	if d.Spec.Selector == nil || (len(d.Spec.Selector.MatchLabels) == 0 && len(d.Spec.Selector.MatchExpressions) == 0) {
		dc.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return s.writeStatus()
		}
		return nil
	}
	rsList, err := s.claimReplicaSets()
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return s.statusOnly(rsList)
	}
	if err := s.checkPaused(); err != nil {
		return err
	}
	if d.Spec.Paused {
		return s.scaleOnly(rsList)
	}
	if rollbackTo(d) != nil {
		return s.rollback(rsList)
	}
	scaling, err := s.isScalingEvent(rsList)
	if err != nil {
		return err
	}
	if scaling {
		return s.scaleOnly(rsList)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		return s.recreate(rsList)
	case appsv1.RollingUpdateDeploymentStrategyType, "":
		return s.rolling(rsList)
	}
	return fmt.Errorf("unexpected deployment strategy type: %s", d.Spec.Strategy.Type)
}

// syncer carries one sync of one Deployment. d is the controller's copy,
// with the cluster annotation (for Events); writes strip it.
type syncer struct {
	dc     *Controller
	ctx    context.Context
	key    framework.Key
	d      *appsv1.Deployment
	logger klog.Logger
}

func (s *syncer) client() appsClient {
	return appsClient{s.dc.clients.For(s.key.Cluster).AppsV1().Deployments(s.key.Namespace),
		s.dc.clients.For(s.key.Cluster).AppsV1().ReplicaSets(s.key.Namespace)}
}

func (s *syncer) event(eventType, reason, format string, args ...any) {
	s.dc.recorder.Eventf(s.d, eventType, reason, format, args...)
}

// claimReplicaSets adopts orphan ReplicaSets the selector matches and
// releases ours it no longer matches; it returns ours.
func (s *syncer) claimReplicaSets() ([]*appsv1.ReplicaSet, error) {
	d := s.d
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: invalid selector: %v", s.key, err)
	}
	cands := s.dc.rss.ByIndex(ownerIndex, string(d.UID))
	cands = append(cands, s.dc.rss.ByIndex(ownerIndex, "orphan|"+s.key.Cluster+"|"+s.key.Namespace)...)
	var mine []*appsv1.ReplicaSet
	for _, rs := range cands {
		if rs.Namespace == d.Namespace && framework.ClusterOf(rs) == s.key.Cluster {
			mine = append(mine, rs)
		}
	}
	rsc := s.client().rs
	claimed, err := claim.Objects(s.ctx, &claim.Controller{
		Object: d, Kind: deploymentKind,
		Match: func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
		CanAdopt: claim.RecheckDeletion(d.UID, func(ctx context.Context) (metav1.Object, error) {
			return s.client().d.Get(ctx, d.Name, metav1.GetOptions{})
		}),
		Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
			_, err := rsc.Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}, mine)
	if err != nil {
		return nil, err
	}
	// The syncer changes copies only.
	out := make([]*appsv1.ReplicaSet, len(claimed))
	for i, rs := range claimed {
		out[i] = rs.DeepCopy()
	}
	return out, nil
}

// podsByRS are the pods each of rsList controls, for Recreate.
func (s *syncer) podsByRS(rsList []*appsv1.ReplicaSet) map[types.UID][]*corev1.Pod {
	out := map[types.UID][]*corev1.Pod{}
	uids := map[types.UID]bool{}
	for _, rs := range rsList {
		if rs != nil {
			uids[rs.UID] = true
			out[rs.UID] = nil
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(s.d.Spec.Selector)
	if err != nil {
		return out
	}
	for _, p := range s.dc.pods.List(s.key.Cluster, s.key.Namespace, sel) {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && uids[ref.UID] {
			out[ref.UID] = append(out[ref.UID], p)
		}
	}
	return out
}
