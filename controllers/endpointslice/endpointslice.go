// Package endpointslice is the EndpointSlice controller: for every Service
// with a selector it keeps discovery.k8s.io/v1 EndpointSlices, labelled
// with the Service's name and managed-by endpointslice-controller.k8s.io
// and owned by the Service, listing the selected pods as endpoints with
// their addresses (per address type), conditions (ready, serving,
// terminating), node, zone and target reference; pods whose named ports
// resolve differently go to different slices. At most MaxEndpointsPerSlice
// (100, upstream's default) endpoints go in one slice. Services without a
// selector are left alone.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgkube/pgkube/controllers/endpointutil"
	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/written"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

const (
	// ControllerName is the managed-by label's value on the slices this
	// controller writes.
	ControllerName = "endpointslice-controller.k8s.io"
	// MaxEndpointsPerSlice bounds a slice (upstream's default for
	// --max-endpoints-per-slice; not configurable here).
	MaxEndpointsPerSlice = 100

	serviceIndex = "endpointslice:service"
)

// Controller is the "endpointslice" controller.
type Controller struct {
	services *framework.Informer[*corev1.Service]
	pods     *framework.Informer[*corev1.Pod]
	nodes    *framework.Informer[*corev1.Node]
	slices   *framework.Informer[*discoveryv1.EndpointSlice]
	clients  *framework.Clients
	recorder framework.Recorder
	workers  int
	queue    *framework.Queue
	triggers *endpointutil.TriggerTimes
	stale    *written.Tracker
}

func serviceIndexValue(cluster, ns, name string) string { return cluster + "|" + ns + "/" + name }

// serviceOf is the key of the Service a managed slice belongs to.
func serviceOf(s *discoveryv1.EndpointSlice) (framework.Key, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		return framework.Key{}, false
	}
	return framework.Key{Cluster: framework.ClusterOf(s), Namespace: s.Namespace, Name: name}, true
}

// New makes the controller.
func New(c *framework.Context) (framework.Runnable, error) {
	e := &Controller{
		services: c.Factory.Services(), pods: c.Factory.Pods(), nodes: c.Factory.Nodes(),
		slices: c.Factory.EndpointSlices(), clients: c.Clients, recorder: c.Recorder, workers: c.Workers,
		triggers: endpointutil.NewTriggerTimes(), stale: written.New(),
	}
	e.queue = framework.NewQueue("endpointslice", e.sync)
	e.slices.AddIndex(serviceIndex, func(s *discoveryv1.EndpointSlice) []string {
		if k, ok := serviceOf(s); ok {
			return []string{serviceIndexValue(k.Cluster, k.Namespace, k.Name)}
		}
		return nil
	})
	e.services.AddEventHandler(e.queue.Handler())
	e.pods.AddEventHandler(endpointutil.PodHandler(e.services, e.queue.Enqueue))
	e.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Pods on a node not yet known were left out; zones may change.
		AddFunc: func(obj any) { e.enqueueNodePods(obj) },
		UpdateFunc: func(o, n any) {
			on, ok1 := o.(*corev1.Node)
			nn, ok2 := n.(*corev1.Node)
			if ok1 && ok2 && on.Labels[corev1.LabelTopologyZone] != nn.Labels[corev1.LabelTopologyZone] {
				e.enqueueNodePods(n)
			}
		},
	})
	sliceChanged := func(obj any) {
		if s, ok := framework.ObjectFromEvent(obj).(*discoveryv1.EndpointSlice); ok {
			if k, ok := serviceOf(s); ok {
				e.queue.Enqueue(k)
			}
		}
	}
	e.slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sliceChanged,
		UpdateFunc: func(_, n any) { sliceChanged(n) },
		DeleteFunc: func(obj any) {
			if s, ok := framework.ObjectFromEvent(obj).(*discoveryv1.EndpointSlice); ok {
				if k, ok := serviceOf(s); ok {
					e.stale.Gone(k, s)
				}
			}
			sliceChanged(obj)
		},
	})
	return e, nil
}

// enqueueNodePods enqueues the Services of the pods on a node.
func (e *Controller) enqueueNodePods(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	cluster := framework.ClusterOf(n)
	for _, p := range e.pods.List(cluster, "", nil) {
		if p.Spec.NodeName != n.Name {
			continue
		}
		for _, svc := range e.services.List(cluster, p.Namespace, nil) {
			if endpointutil.Selects(svc, p.Labels) {
				e.queue.Enqueue(framework.KeyOf(svc))
			}
		}
	}
}

// Run implements framework.Runnable.
func (e *Controller) Run(ctx context.Context) {
	e.queue.Run(ctx, e.workers, e.services.HasSynced, e.pods.HasSynced, e.nodes.HasSynced, e.slices.HasSynced)
}

func (e *Controller) cachedSlice(k framework.Key) metav1.Object {
	s, err := e.slices.Get(k.Cluster, k.Namespace, k.Name)
	if err != nil {
		return nil
	}
	return s
}

func (e *Controller) sync(ctx context.Context, key framework.Key) error {
	logger := klog.FromContext(ctx)
	client := e.clients.For(key.Cluster).DiscoveryV1().EndpointSlices(key.Namespace)
	existing := e.slices.ByIndex(serviceIndex, serviceIndexValue(key.Cluster, key.Namespace, key.Name))
	svc, err := e.services.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		// The garbage collector removes slices with their Service; they
		// go here too, so that they do not outlive it without one.
		e.triggers.Forget(key)
		e.stale.Forget(key)
		for _, s := range existing {
			uid := s.UID
			err := client.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	if e.stale.IsStale(key, e.cachedSlice) {
		return fmt.Errorf("endpointslices of %s: cache has not yet seen the last writes", key)
	}
	pods := endpointutil.PodsOf(e.pods, svc)
	trigger, commit := e.triggers.Compute(key, svc, pods)
	desired := Compute(svc, pods, func(name string) (*corev1.Node, bool) {
		n, err := e.nodes.Get(key.Cluster, "", name)
		return n, err == nil
	})
	plan := Reconcile(svc, existing, desired, MaxEndpointsPerSlice)

	var errs []error
	stamp := func(s *discoveryv1.EndpointSlice) {
		framework.StripCluster(s)
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		if !trigger.IsZero() {
			s.Annotations[corev1.EndpointsLastChangeTriggerTime] = trigger.UTC().Format(time.RFC3339Nano)
		} else {
			delete(s.Annotations, corev1.EndpointsLastChangeTriggerTime)
		}
		if len(s.Annotations) == 0 {
			s.Annotations = nil
		}
	}
	if svc.DeletionTimestamp == nil {
		for _, s := range plan.Create {
			stamp(s)
			created, err := client.Create(ctx, s, metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil
				}
				errs = append(errs, fmt.Errorf("creating an EndpointSlice for %s: %w", key, err))
				continue
			}
			e.stale.Wrote(key, created)
		}
	}
	for _, s := range plan.Update {
		stamp(s)
		updated, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("updating EndpointSlice %s of %s: %w", s.Name, key, err))
			continue
		}
		e.stale.Wrote(key, updated)
	}
	for _, s := range plan.Delete {
		uid := s.UID
		err := client.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting EndpointSlice %s of %s: %w", s.Name, key, err))
			continue
		}
		e.stale.Deleted(key, s)
	}
	if n := len(plan.Create) + len(plan.Update) + len(plan.Delete); n > 0 {
		logger.V(4).Info("Wrote EndpointSlices", "service", key.String(), "created", len(plan.Create), "updated", len(plan.Update), "deleted", len(plan.Delete))
	}
	if len(errs) == 0 {
		commit()
	}
	if len(errs) > 0 {
		e.recorder.Eventf(svc.DeepCopy(), corev1.EventTypeWarning, "FailedToUpdateEndpointSlices", "Error updating Endpoint Slices for Service %s/%s: %v", svc.Namespace, svc.Name, errs[0])
		return errors.Join(errs...)
	}
	if len(desired.Skipped) > 0 {
		return fmt.Errorf("pods of %s on nodes not yet known: %v", key, desired.Skipped)
	}
	return nil
}
