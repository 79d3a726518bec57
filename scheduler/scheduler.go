// Package scheduler is pgkube's scheduler: a client of the API server
// that places pending pods on nodes, one at a time from a queue ordered by
// priority, with upstream kube-scheduler's filters, scores, preemption and
// messages, and binds them through pods/binding.
//
// One scheduler serves every logical cluster: it lists and watches through
// the wildcard view and writes (bindings, status, Events) to each pod's own
// cluster. A tenant's pods use the tenant's nodes when it has any, else the
// nodes of the scheduler's own cluster, which tenants share.
//
// Per-node aggregates (requests, ports, pods per controller) are kept up to
// date as pods come and go, so placing a pod costs O(nodes); a pod is
// assumed onto its node before its binding is written, and bindings,
// status updates and Events are written by other goroutines while the next
// pod is placed.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
)

// Names: the scheduler's own, its Events' source and its Lease.
const (
	DefaultSchedulerName = corev1.DefaultSchedulerName // "default-scheduler"
	LeaseNamespace       = "kube-system"
	LeaseName            = "pgkube-scheduler"
)

// Options configure Run.
type Options struct {
	Config *rest.Config

	LeaderElect   bool
	LeaseDuration time.Duration // default 10s
	RenewDeadline time.Duration // default 7s
	RetryPeriod   time.Duration // default 2s
	Identity      string        // default hostname_random

	// SchedulerName is the spec.schedulerName of the pods to place
	// (pods with none are the default scheduler's).
	SchedulerName string
	// BindWorkers write bindings (and failures' status and Events) at once.
	BindWorkers int
	Log         *slog.Logger
}

func (o *Options) defaults() {
	e := framework.Election{LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		Identity: o.Identity}.WithDefaults()
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod, o.Identity = e.LeaseDuration, e.RenewDeadline, e.RetryPeriod, e.Identity
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.BindWorkers == 0 {
		o.BindWorkers = 64
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Run schedules until ctx ends: at once, or while holding the Lease
// kube-system/pgkube-scheduler of the kubeconfig's cluster. Losing the
// Lease is an error (the process should exit and start again).
func Run(ctx context.Context, o Options) error {
	o.defaults()
	cfg := rest.CopyConfig(o.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 1000, 2000
	}
	cfg.UserAgent = DefaultSchedulerName
	clients, err := framework.NewClients(ctx, cfg)
	if err != nil {
		return err
	}
	log := o.Log
	log.Info("scheduler starting", "identity", o.Identity, "wildcard", clients.Wildcard(), "cluster", clients.DefaultCluster())
	if !o.LeaderElect {
		return runScheduler(ctx, o, clients)
	}
	return framework.RunElected(ctx, clients, framework.Election{Namespace: LeaseNamespace, Name: LeaseName, Identity: o.Identity,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod, Log: log},
		func(ctx context.Context) error { return runScheduler(ctx, o, clients) })
}

// Scheduler places pods.
type Scheduler struct {
	opts     Options
	log      *slog.Logger
	clients  *framework.Clients
	factory  *framework.Factory
	recorder framework.Recorder

	pods       *framework.Informer[*corev1.Pod]
	nodes      *framework.Informer[*corev1.Node]
	namespaces *framework.Informer[*corev1.Namespace]
	pvcs       *framework.Informer[*corev1.PersistentVolumeClaim]
	pvs        *framework.Informer[*corev1.PersistentVolume]
	classes    *framework.Informer[*storagev1.StorageClass]
	pdbs       *framework.Informer[*policyv1.PodDisruptionBudget]

	cache *cache
	queue *queue
	work  chan func(context.Context) // bindings and failure reports

	scheduled, failed atomic.Int64
}

func runScheduler(ctx context.Context, o Options, clients *framework.Clients) error {
	rec := framework.NewEventRecorderFor(ctx, clients, corev1.EventSource{Component: o.SchedulerName})
	defer rec.Shutdown()
	s := New(o, clients, rec)
	return s.Run(ctx)
}

// New makes a scheduler over clients, writing Events with recorder.
func New(o Options, clients *framework.Clients, recorder framework.Recorder) *Scheduler {
	o.defaults()
	f := framework.NewFactory(clients, 0)
	lw := clients.ListWatch()
	s := &Scheduler{
		opts: o, log: o.Log, clients: clients, factory: f, recorder: recorder,
		pods:       f.Pods(),
		nodes:      f.Nodes(),
		namespaces: f.Namespaces(),
		pvcs:       f.PersistentVolumeClaims(),
		pvs:        f.PersistentVolumes(),
		pdbs:       f.PodDisruptionBudgets(),
		classes: framework.NewInformer[*storagev1.StorageClass](storagev1.Resource("storageclasses"),
			framework.ListWatchFuncs(lw.StorageV1().StorageClasses().List, lw.StorageV1().StorageClasses().Watch)),
		cache: newCache(clients.DefaultCluster()),
		queue: newQueue(time.Now),
		work:  make(chan func(context.Context), 4096),
	}
	s.pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.podChanged(nil, o.(*corev1.Pod)) },
		UpdateFunc: func(old, o any) { s.podChanged(old.(*corev1.Pod), o.(*corev1.Pod)) },
		DeleteFunc: s.podDeleted,
	})
	s.nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			s.cache.setNode(o.(*corev1.Node))
			s.queue.moveAll()
		},
		UpdateFunc: func(_, o any) {
			if s.cache.setNode(o.(*corev1.Node)) {
				s.queue.moveAll()
			}
		},
		DeleteFunc: func(o any) {
			if k, ok := framework.KeyFromEvent(o); ok {
				s.cache.deleteNode(k.Cluster, k.Name)
			}
		},
	})
	moveAll := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.queue.moveAll() },
		UpdateFunc: func(any, any) { s.queue.moveAll() },
	}
	s.pvcs.AddEventHandler(moveAll)
	s.pvs.AddEventHandler(moveAll)
	s.classes.AddEventHandler(moveAll)
	return s
}

// responsible: a pending pod this scheduler places.
func (s *Scheduler) responsible(p *corev1.Pod) bool {
	return (p.Spec.SchedulerName == s.opts.SchedulerName || (p.Spec.SchedulerName == "" && s.opts.SchedulerName == DefaultSchedulerName)) &&
		p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func (s *Scheduler) podChanged(old, p *corev1.Pod) {
	if p.Spec.NodeName != "" {
		s.queue.remove(p.UID)
		if terminal(p) {
			if s.cache.forgetPod(p.UID) {
				s.queue.moveAll()
			}
			return
		}
		s.cache.placedPod(p)
		if old != nil && old.Spec.NodeName != "" && !equalMaps(old.Labels, p.Labels) {
			s.queue.moveAll() // affinity and spreading may differ
		}
		return
	}
	if !s.responsible(p) {
		s.queue.remove(p.UID)
		s.cache.setNominated(&podInfo{uid: p.UID}, "")
		return
	}
	if len(p.Spec.SchedulingGates) > 0 || s.cache.isPlaced(p.UID) {
		return // gated; or assumed, its binding under way
	}
	if nn := p.Status.NominatedNodeName; nn != "" {
		s.cache.setNominated(newPodInfo(p), nn)
	} else {
		s.cache.setNominated(&podInfo{uid: p.UID}, "")
	}
	s.queue.add(p, old == nil || podSpecChanged(old, p))
}

// podSpecChanged: more than the status (and resourceVersion) changed.
func podSpecChanged(old, p *corev1.Pod) bool {
	return !equalMaps(old.Labels, p.Labels) || !equalMaps(old.Annotations, p.Annotations) ||
		!apiequality.Semantic.DeepEqual(&old.Spec, &p.Spec)
}

func (s *Scheduler) podDeleted(o any) {
	m := framework.ObjectFromEvent(o)
	if m == nil {
		return
	}
	s.queue.remove(m.GetUID())
	if s.cache.forgetPod(m.GetUID()) {
		s.queue.moveAll()
	}
}

// Run starts the informers and places pods until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	s.factory.Start(ctx)
	go s.classes.Run(ctx)
	if s.clients.Wildcard() && s.clients.DefaultCluster() == framework.RootCluster {
		go s.followClusters(ctx)
	}
	if !toolscache.WaitForNamedCacheSync("scheduler", ctx.Done(), s.pods.HasSynced, s.nodes.HasSynced,
		s.namespaces.HasSynced, s.pvcs.HasSynced, s.pvs.HasSynced, s.classes.HasSynced, s.pdbs.HasSynced) {
		return nil
	}
	var wg sync.WaitGroup
	for range s.opts.BindWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-s.work:
					f(ctx)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.flushLoop(ctx)
	}()
	go func() {
		<-ctx.Done()
		s.queue.close()
	}()
	s.log.Info("scheduler running")
	for s.scheduleOne(ctx) {
	}
	wg.Wait()
	return nil
}

func (s *Scheduler) flushLoop(ctx context.Context) {
	t := time.NewTicker(queueFlushInterval)
	defer t.Stop()
	u := time.NewTicker(unschedulableInterval)
	defer u.Stop()
	r := time.NewTicker(30 * time.Second)
	defer r.Stop()
	var lastS, lastF int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.queue.flushBackoff()
		case <-u.C:
			s.queue.flushUnschedulable()
		case <-r.C:
			sc, f := s.scheduled.Load(), s.failed.Load()
			if sc != lastS || f != lastF {
				a, b, un := s.queue.lengths()
				s.log.Info("scheduling", "scheduled", sc-lastS, "failedAttempts", f-lastF, "active", a, "backoff", b, "unschedulable", un)
			}
			lastS, lastF = sc, f
		}
	}
}

// async runs f on a worker; it waits when the workers are behind.
func (s *Scheduler) async(ctx context.Context, f func(context.Context)) {
	select {
	case s.work <- f:
	case <-ctx.Done():
	}
}

func (s *Scheduler) nsLabels(cluster, ns string) map[string]string {
	n, err := s.namespaces.Get(cluster, "", ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

func (s *Scheduler) pdbsOf(cluster, ns string) []*policyv1.PodDisruptionBudget {
	return s.pdbs.List(cluster, ns, nil)
}

// scheduleOne tries the next pod; false once the queue is closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	qp := s.queue.pop()
	if qp == nil {
		return false
	}
	k := framework.KeyOf(qp.pod)
	pod, err := s.pods.Get(k.Cluster, k.Namespace, k.Name)
	if err != nil || pod.UID != qp.pod.UID || pod.Spec.NodeName != "" || !s.responsible(pod) || s.cache.isPlaced(pod.UID) {
		s.queue.done(qp, true)
		return true
	}
	pi := newPodInfo(pod)

	s.cache.mu.RLock()
	cy, preMsg := newCycle(s.cache, pi, s.nsLabels, volumes{s})
	node, fe := cy.schedule(preMsg)
	var cand *candidate
	if node == nil && fe != nil {
		cand, fe.postFilterMsg = cy.preempt(fe, s.pdbsOf)
	}
	s.cache.mu.RUnlock()

	switch {
	case node != nil:
		s.cache.assume(pi, node.key)
		s.queue.done(qp, true)
		s.scheduled.Add(1)
		target, vs := node.key.name, cy.volumes
		var n *corev1.Node = node.node
		s.async(ctx, func(ctx context.Context) { s.bind(ctx, pi, target, n, vs) })
	case fe == nil:
		s.failed.Add(1)
		s.queue.done(qp, false)
		s.async(ctx, func(ctx context.Context) {
			s.reportFailure(ctx, pod, corev1.PodReasonSchedulerError, msgNoNodes, nominate{set: true})
		})
	default:
		s.failed.Add(1)
		msg := fe.Error()
		nom := nominate{}
		switch {
		case cand != nil:
			nom = nominate{set: true, node: cand.node.key.name}
			s.cache.setNominated(pi, cand.node.key.name)
		case len(fe.postFilterMsg) > 0 && !notEligible(fe.postFilterMsg):
			nom = nominate{set: true}
			s.cache.setNominated(pi, "")
		}
		s.queue.done(qp, false)
		s.async(ctx, func(ctx context.Context) {
			if cand != nil {
				s.actuatePreemption(ctx, pi, cand)
			}
			s.reportFailure(ctx, pod, corev1.PodReasonUnschedulable, msg, nom)
		})
	}
	return true
}

// notEligible: preemption declined to try, which leaves a nominated node
// as it was.
func notEligible(postFilterMsg string) bool {
	return postFilterMsg == "preemption: not eligible due to preemptionPolicy=Never." ||
		postFilterMsg == "preemption: not eligible due to a terminating pod on the nominated node."
}

// nominate says what to do with status.nominatedNodeName.
type nominate struct {
	set  bool
	node string
}

// bind writes the binding (after what volumes need), then the Scheduled
// Event; a failed binding drops the assumption and tries the pod again.
func (s *Scheduler) bind(ctx context.Context, pi *podInfo, target string, node *corev1.Node, vs *volumeState) {
	pod := pi.pod
	cs := s.clients.For(pi.cluster)
	err := s.bindVolumes(ctx, pi, node, vs)
	if err == nil {
		err = cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: target},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		s.cache.forgetAssumed(pod.UID)
		s.queue.moveAll()
		if ctx.Err() != nil {
			return
		}
		if apierrors.IsNotFound(err) {
			return // deleted meanwhile
		}
		s.log.Info("binding failed", "pod", pi.key.String(), "node", target, "err", err)
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		if !apierrors.IsConflict(err) {
			s.queue.retry(pod)
		} else if cur, gerr := s.pods.Get(pi.cluster, pod.Namespace, pod.Name); gerr == nil && cur.UID == pod.UID && cur.Spec.NodeName == "" {
			s.queue.retry(cur)
		}
		return
	}
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, target)
}

// reportFailure records a FailedScheduling Event and sets the pod's
// PodScheduled condition to False with reason and message (and its
// nominated node), as upstream; an unchanged condition is not written
// again.
func (s *Scheduler) reportFailure(ctx context.Context, pod *corev1.Pod, reason, msg string, nom nominate) {
	if len(msg) > 1024 {
		msg = msg[:1024-4] + " ..."
	}
	s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "%s", msg)
	cur, err := s.pods.Get(framework.ClusterOf(pod), pod.Namespace, pod.Name)
	if err != nil || cur.UID != pod.UID || cur.Spec.NodeName != "" {
		return
	}
	var old *corev1.PodCondition
	for i := range cur.Status.Conditions {
		if cur.Status.Conditions[i].Type == corev1.PodScheduled {
			old = &cur.Status.Conditions[i]
		}
	}
	condChanged := old == nil || old.Status != corev1.ConditionFalse || old.Reason != reason || old.Message != msg
	nomChanged := nom.set && cur.Status.NominatedNodeName != nom.node
	if !condChanged && !nomChanged {
		return
	}
	cond := map[string]any{"type": string(corev1.PodScheduled), "status": string(corev1.ConditionFalse),
		"reason": reason, "message": msg, "lastProbeTime": nil}
	if old == nil || old.Status != corev1.ConditionFalse {
		cond["lastTransitionTime"] = metav1.Now().UTC().Format(time.RFC3339)
	}
	st := map[string]any{"conditions": []any{cond}}
	if nomChanged {
		if nom.node == "" {
			st["nominatedNodeName"] = nil
		} else {
			st["nominatedNodeName"] = nom.node
		}
	}
	if err := patchStatus(ctx, s.clients, framework.ClusterOf(pod), pod, st); err != nil && !apierrors.IsNotFound(err) {
		s.log.Info("pod status not updated", "pod", framework.KeyOf(pod).String(), "err", err)
	}
}

// actuatePreemption evicts the victims: each gets the DisruptionTarget
// condition, is deleted and has a Preempted Event; lower-priority pods
// nominated to the node lose their nomination.
func (s *Scheduler) actuatePreemption(ctx context.Context, pi *podInfo, c *candidate) {
	node := c.node.key.name
	for _, v := range c.victims {
		vp := v.pod
		cl := framework.ClusterOf(vp)
		cond := map[string]any{"type": string(corev1.DisruptionTarget), "status": string(corev1.ConditionTrue),
			"reason": corev1.PodReasonPreemptionByScheduler, "lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339),
			"message": fmt.Sprintf("%s: preempting to accommodate a higher priority pod", s.opts.SchedulerName)}
		if err := patchStatus(ctx, s.clients, cl, vp, map[string]any{"conditions": []any{cond}}); err != nil {
			if !apierrors.IsNotFound(err) {
				s.log.Info("preemption: victim's condition not set", "victim", v.key.String(), "err", err)
			}
			continue
		}
		uid := vp.UID
		err := s.clients.For(cl).CoreV1().Pods(vp.Namespace).Delete(ctx, vp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			s.log.Info("preemption: victim not deleted", "victim", v.key.String(), "err", err)
			continue
		}
		s.recorder.Eventf(vp, corev1.EventTypeNormal, "Preempted", "Preempted by pod %v on node %v", pi.uid, node)
	}
	// Lower-priority pods nominated to the node must look elsewhere.
	s.cache.mu.RLock()
	var lower []*podInfo
	for _, n := range s.cache.nominated {
		if n.node == c.node.key && n.priority < pi.priority && n.uid != pi.uid {
			lower = append(lower, n)
		}
	}
	s.cache.mu.RUnlock()
	for _, n := range lower {
		s.cache.setNominated(n, "")
		if err := patchStatus(ctx, s.clients, n.cluster, n.pod, map[string]any{"nominatedNodeName": nil}); err != nil && !apierrors.IsNotFound(err) {
			s.log.Info("nominated node not cleared", "pod", n.key.String(), "err", err)
		}
	}
}

// followClusters forgets what the informers hold of a tenant once its
// LogicalCluster is gone (the wildcard view sends no deletions then).
func (s *Scheduler) followClusters(ctx context.Context) {
	gvr := schema.GroupVersionResource{Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"}
	r := s.clients.Dynamic(framework.RootCluster).Resource(gvr)
	inf := framework.NewInformer[*unstructured.Unstructured](gvr.GroupResource(), &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: r.Watch,
	})
	inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) {
		k, ok := framework.KeyFromEvent(o)
		if !ok || k.Name == framework.RootCluster {
			return
		}
		s.factory.ForgetCluster(k.Name)
		s.classes.ForgetCluster(k.Name)
		s.cache.clusterForgotten(k.Name)
		s.clients.Forget(k.Name)
		s.queue.moveAll()
	}})
	inf.Run(ctx)
}
