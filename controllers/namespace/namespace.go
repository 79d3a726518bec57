// Package namespace empties deleted namespaces: when a namespace has a
// deletionTimestamp, every namespaced object in it is deleted (whatever its
// resource, found through discovery), and once none is left the
// "kubernetes" finalizer is removed through the namespace's finalize
// subresource, which lets the API server remove the namespace. Progress
// and trouble show in the namespace's status conditions, as upstream's
// namespace controller.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// finalizerWait is how long to wait before looking again at objects held by
// finalizers.
const finalizerWait = 15 * time.Second

// resyncPeriod: namespaces still terminating are looked at again this often
// even without events (content may change without the namespace changing).
const resyncPeriod = 5 * time.Minute

// Controller is the "namespace" controller.
type Controller struct {
	ctx     *framework.Context
	nss     *framework.Informer[*corev1.Namespace]
	queue   *framework.Queue
	workers int
	// discover lists a cluster's preferred namespaced resources (a test
	// may replace it).
	discover func(cluster string) ([]*metav1.APIResourceList, error)
}

// New is the "namespace" controller.
func New(c *framework.Context) (framework.Runnable, error) {
	n := &Controller{ctx: c, nss: c.Factory.Namespaces(), workers: c.Workers}
	n.discover = func(cluster string) ([]*metav1.APIResourceList, error) {
		return c.Clients.For(cluster).Discovery().ServerPreferredNamespacedResources()
	}
	n.queue = framework.NewQueue("namespace", n.sync)
	enqueue := func(o any) {
		if ns, ok := o.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			n.queue.EnqueueObject(ns)
		}
	}
	n.nss.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
	})
	return n, nil
}

// Run implements framework.Runnable.
func (n *Controller) Run(ctx context.Context) {
	go func() {
		t := time.NewTicker(resyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, ns := range n.nss.ListAll() {
					if ns.DeletionTimestamp != nil {
						n.queue.EnqueueObject(ns)
					}
				}
			}
		}
	}()
	n.queue.Run(ctx, n.workers, n.nss.HasSynced)
}

func (n *Controller) sync(ctx context.Context, k framework.Key) error {
	client := n.ctx.Clients.For(k.Cluster).CoreV1().Namespaces()
	// The API's copy, not the cache's: a stale namespace must not be
	// finalized.
	ns, err := client.Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // gone, or its cluster is
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !hasFinalizer(ns) {
		return nil
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		ns.Status.Phase = corev1.NamespaceTerminating
		if ns, err = client.UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			return ignoreGone(err)
		}
	}
	wait, err := n.deleteContent(ctx, k.Cluster, ns)
	if err != nil {
		return err
	}
	if wait > 0 {
		n.queue.EnqueueAfter(k, wait)
		return nil
	}
	return n.finalize(ctx, k.Cluster, ns)
}

func hasFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
}

func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// finalize removes the "kubernetes" finalizer, retrying on conflicts with
// the namespace read again.
func (n *Controller) finalize(ctx context.Context, cluster string, ns *corev1.Namespace) error {
	client := n.ctx.Clients.For(cluster).CoreV1().Namespaces()
	for {
		f := &corev1.Namespace{ObjectMeta: ns.ObjectMeta, Spec: ns.Spec}
		framework.StripCluster(f)
		f.Spec.Finalizers = nil
		for _, x := range ns.Spec.Finalizers {
			if x != corev1.FinalizerKubernetes {
				f.Spec.Finalizers = append(f.Spec.Finalizers, x)
			}
		}
		_, err := client.Finalize(ctx, f, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return ignoreGone(err)
		}
		uid := ns.UID
		if ns, err = client.Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
			return ignoreGone(err)
		}
		if ns.UID != uid {
			return nil // another namespace of that name
		}
		if !hasFinalizer(ns) {
			return nil
		}
	}
}

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// deleteContent deletes everything in the namespace, pods first, and sets
// the namespace's conditions. It returns how long to wait before looking
// again when objects remain that are expected to go (pods terminating
// gracefully, objects held by finalizers), or an error.
func (n *Controller) deleteContent(ctx context.Context, cluster string, ns *corev1.Namespace) (time.Duration, error) {
	var errs []error
	var conds conditions
	lists, err := n.discover(cluster)
	if err != nil {
		errs = append(errs, err)
		conds.discovery(err)
		if len(lists) == 0 && !discovery.IsGroupDiscoveryFailedError(err) {
			// Nothing discovered at all (the cluster may be gone).
			n.writeConditions(ctx, cluster, ns, &conds)
			return 0, err
		}
	}
	deletable := discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"delete"}}, lists)
	gvrs, err := discovery.GroupVersionResources(deletable)
	if err != nil {
		errs = append(errs, err)
		conds.groupVersion(err)
	}
	verbs := map[schema.GroupVersionResource]sets.Set[string]{}
	for _, l := range deletable {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			verbs[gv.WithResource(r.Name)] = sets.New[string](r.Verbs...)
		}
	}
	dyn := n.ctx.Clients.Dynamic(cluster)
	remaining := map[schema.GroupVersionResource]int{}
	finalizers := map[string]int{}
	var wait time.Duration
	one := func(gvr schema.GroupVersionResource) {
		r, err := n.deleteResource(ctx, cluster, dyn, gvr, verbs[gvr], ns)
		if err != nil {
			errs = append(errs, err)
			conds.content(err)
		}
		wait = max(wait, r.wait)
		if r.remaining > 0 {
			remaining[gvr] = r.remaining
			for f, c := range r.finalizers {
				finalizers[f] += c
			}
		}
	}
	// Pods go first and alone: their controllers' objects stay until they
	// are gone, so nothing makes them again while they terminate.
	if _, ok := gvrs[podsGVR]; ok {
		one(podsGVR)
		if remaining[podsGVR] > 0 {
			conds.remaining(remaining, finalizers)
			n.writeConditions(ctx, cluster, ns, &conds)
			return max(wait, time.Second), utilerrors.NewAggregate(errs)
		}
	}
	ordered := make([]schema.GroupVersionResource, 0, len(gvrs))
	for gvr := range gvrs {
		if gvr != podsGVR {
			ordered = append(ordered, gvr)
		}
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].String() < ordered[j].String() })
	for _, gvr := range ordered {
		one(gvr)
	}
	conds.remaining(remaining, finalizers)
	n.writeConditions(ctx, cluster, ns, &conds)
	if err := utilerrors.NewAggregate(errs); err != nil {
		return 0, err
	}
	if len(remaining) > 0 && wait == 0 {
		wait = time.Second
	}
	return wait, nil
}

type resourceResult struct {
	remaining  int
	finalizers map[string]int
	wait       time.Duration
}

// deleteResource deletes one resource's objects in the namespace (a
// collection delete when the resource has one, else one by one) and counts
// what is left.
func (n *Controller) deleteResource(ctx context.Context, cluster string, dyn dynamic.Interface, gvr schema.GroupVersionResource,
	verbs sets.Set[string], ns *corev1.Namespace) (resourceResult, error) {
	var res resourceResult
	client := dyn.Resource(gvr).Namespace(ns.Name)
	grace := time.Duration(0)
	if gvr == podsGVR {
		g, err := n.podGrace(ctx, cluster, ns)
		if err != nil {
			return res, err
		}
		grace = g
	}
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	collectionDone := false
	if verbs.Has("deletecollection") {
		err := client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case err == nil:
			collectionDone = true
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
		default:
			return resourceResult{wait: grace}, fmt.Errorf("delete %s: %w", gvr.GroupResource(), err)
		}
	}
	if !verbs.Has("list") {
		return resourceResult{wait: grace}, nil
	}
	if !collectionDone {
		l, err := client.List(ctx, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return resourceResult{wait: grace}, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
		}
		if l != nil {
			for _, item := range l.Items {
				err := client.Delete(ctx, item.GetName(), opts)
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					return resourceResult{wait: grace}, fmt.Errorf("delete %s %s: %w", gvr.GroupResource(), item.GetName(), err)
				}
			}
		}
	}
	l, err := client.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return resourceResult{wait: grace}, nil
	}
	if err != nil {
		return resourceResult{wait: grace}, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	if len(l.Items) == 0 {
		return resourceResult{}, nil
	}
	res = resourceResult{remaining: len(l.Items), finalizers: map[string]int{}, wait: grace}
	for _, item := range l.Items {
		for _, f := range item.GetFinalizers() {
			res.finalizers[f]++
		}
	}
	if grace > 0 {
		return res, nil
	}
	if len(res.finalizers) > 0 {
		res.wait = finalizerWait
		return res, nil
	}
	// Nothing should hold these: they were made after the delete, or the
	// delete did not take. Try again.
	return res, fmt.Errorf("%d %s remain in namespace %s", len(l.Items), gvr.GroupResource(), ns.Name)
}

// podGrace is how much longer running pods may take to terminate: the
// longest grace period of the namespace's pods, counted from the
// namespace's deletion.
func (n *Controller) podGrace(ctx context.Context, cluster string, ns *corev1.Namespace) (time.Duration, error) {
	pods, err := n.ctx.Clients.For(cluster).CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, ignoreGone(err)
	}
	var longest int64
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if s := p.Spec.TerminationGracePeriodSeconds; s != nil && *s > longest {
			longest = *s
		}
	}
	left := time.Duration(longest)*time.Second - time.Since(ns.DeletionTimestamp.Time)
	if left < 0 {
		return 0, nil
	}
	return left, nil
}

func (n *Controller) writeConditions(ctx context.Context, cluster string, ns *corev1.Namespace, c *conditions) {
	ns = ns.DeepCopy()
	if !c.apply(&ns.Status, metav1.Now()) {
		return
	}
	framework.StripCluster(ns)
	// A conflict or a vanished namespace only means the next sync writes.
	_, _ = n.ctx.Clients.For(cluster).CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
}

// conditions collects the namespace's deletion conditions.
type conditions struct {
	set           []corev1.NamespaceCondition
	contentErrors []string
}

func (c *conditions) add(t corev1.NamespaceConditionType, reason, msg string) {
	c.set = append(c.set, corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg})
}

func (c *conditions) discovery(err error) {
	msg := err.Error()
	var gerr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &gerr) {
		msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(gerr.Groups), err)
	}
	c.add(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", msg)
}

func (c *conditions) groupVersion(err error) {
	c.add(corev1.NamespaceDeletionGVParsingFailure, "GroupVersionParsingFailed", err.Error())
}

func (c *conditions) content(err error) { c.contentErrors = append(c.contentErrors, err.Error()) }

func (c *conditions) remaining(byResource map[schema.GroupVersionResource]int, byFinalizer map[string]int) {
	if len(byResource) > 0 {
		var parts []string
		for gvr, num := range byResource {
			parts = append(parts, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, num))
		}
		sort.Strings(parts)
		c.add(corev1.NamespaceContentRemaining, "SomeResourcesRemain", "Some resources are remaining: "+strings.Join(parts, ", "))
	}
	if len(byFinalizer) > 0 {
		var parts []string
		for f, num := range byFinalizer {
			parts = append(parts, fmt.Sprintf("%s in %d resource instances", f, num))
		}
		sort.Strings(parts)
		c.add(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain",
			"Some content in the namespace has finalizers remaining: "+strings.Join(parts, ", "))
	}
}

// settled is each condition's False form: its reason and message.
var settled = []struct {
	t       corev1.NamespaceConditionType
	reason  string
	message string
}{
	{corev1.NamespaceDeletionDiscoveryFailure, "ResourcesDiscovered", "All resources successfully discovered"},
	{corev1.NamespaceDeletionGVParsingFailure, "ParsedGroupVersions", "All legacy kube types successfully parsed"},
	{corev1.NamespaceDeletionContentFailure, "ContentDeleted", "All content successfully deleted, may be waiting on finalization"},
	{corev1.NamespaceContentRemaining, "ContentRemoved", "All content successfully removed"},
	{corev1.NamespaceFinalizersRemaining, "ContentHasNoFinalizers", "All content-preserving finalizers finished"},
}

// apply sets all five conditions on st (True with the problem, else False
// with its settled form) and tells whether anything changed. Transition
// times move only when a status does.
func (c *conditions) apply(st *corev1.NamespaceStatus, now metav1.Time) bool {
	if len(c.contentErrors) > 0 {
		msgs := append([]string(nil), c.contentErrors...)
		sort.Strings(msgs)
		c.add(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(msgs), strings.Join(msgs, ", ")))
	}
	changed := false
	for _, s := range settled {
		want := corev1.NamespaceCondition{Type: s.t, Status: corev1.ConditionFalse, Reason: s.reason, Message: s.message}
		for _, x := range c.set {
			if x.Type == s.t {
				want = x
				break
			}
		}
		i := -1
		for j := range st.Conditions {
			if st.Conditions[j].Type == s.t {
				i = j
				break
			}
		}
		if i < 0 {
			want.LastTransitionTime = now
			st.Conditions = append(st.Conditions, want)
			changed = true
			continue
		}
		have := &st.Conditions[i]
		if have.Status == want.Status && have.Reason == want.Reason && have.Message == want.Message {
			continue
		}
		if have.Status != want.Status {
			have.LastTransitionTime = now
		}
		have.Status, have.Reason, have.Message = want.Status, want.Reason, want.Message
		changed = true
	}
	return changed
}
