// Package endpoints is the Endpoints controller: for every Service with a
// selector it writes an Endpoints object of the same name listing the
// selected pods' addresses, ready ones under addresses and the others
// under notReadyAddresses (all as ready when the Service publishes
// not-ready addresses), with each service port resolved per pod (a named
// targetPort is looked up in the pod's container ports). Services without
// a selector are left alone: their Endpoints are written by hand.
package endpoints

import (
	"context"
	"fmt"
	"time"

	"github.com/pgkube/pgkube/controllers/endpointutil"
	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/written"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

const (
	// LabelManagedBy marks the Endpoints this controller writes.
	LabelManagedBy = "endpoints.kubernetes.io/managed-by"
	// ControllerName is LabelManagedBy's value.
	ControllerName = "endpoint-controller"
	// MaxCapacity is the most addresses one Endpoints holds; beyond, it is
	// truncated and annotated as over capacity, as upstream.
	MaxCapacity  = 1000
	overCapacity = "truncated"
)

// Controller is the "endpoint" controller.
type Controller struct {
	services  *framework.Informer[*corev1.Service]
	pods      *framework.Informer[*corev1.Pod]
	endpoints *framework.Informer[*corev1.Endpoints]
	clients   *framework.Clients
	recorder  framework.Recorder
	workers   int
	queue     *framework.Queue
	triggers  *endpointutil.TriggerTimes
	stale     *written.Tracker
}

// New makes the controller.
func New(c *framework.Context) (framework.Runnable, error) {
	e := &Controller{
		services: c.Factory.Services(), pods: c.Factory.Pods(), endpoints: c.Factory.Endpoints(),
		clients: c.Clients, recorder: c.Recorder, workers: c.Workers,
		triggers: endpointutil.NewTriggerTimes(), stale: written.New(),
	}
	e.queue = framework.NewQueue("endpoint", e.sync)
	e.services.AddEventHandler(e.queue.Handler())
	e.pods.AddEventHandler(endpointutil.PodHandler(e.services, e.queue.Enqueue))
	e.endpoints.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if m := framework.ObjectFromEvent(obj); m != nil {
				k := framework.KeyOf(m)
				e.stale.Gone(k, m)
				e.queue.Enqueue(k)
			}
		},
	})
	return e, nil
}

// Run implements framework.Runnable.
func (e *Controller) Run(ctx context.Context) {
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), e.services.HasSynced, e.pods.HasSynced, e.endpoints.HasSynced) {
			return
		}
		// Endpoints left behind by Services deleted while no manager ran.
		for _, ep := range e.endpoints.ListAll() {
			if _, ok := ep.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]; ok {
				continue
			}
			e.queue.Enqueue(framework.KeyOf(ep))
		}
	}()
	e.queue.Run(ctx, e.workers, e.services.HasSynced, e.pods.HasSynced, e.endpoints.HasSynced)
}

func (e *Controller) cachedEndpoints(k framework.Key) metav1.Object {
	ep, err := e.endpoints.Get(k.Cluster, k.Namespace, k.Name)
	if err != nil {
		return nil
	}
	return ep
}

func (e *Controller) sync(ctx context.Context, key framework.Key) error {
	logger := klog.FromContext(ctx)
	client := e.clients.For(key.Cluster).CoreV1().Endpoints(key.Namespace)
	svc, err := e.services.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		// The Service is gone: so are its Endpoints.
		e.triggers.Forget(key)
		e.stale.Forget(key)
		if ep, err := e.endpoints.Get(key.Cluster, key.Namespace, key.Name); err == nil {
			if _, ok := ep.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]; ok {
				return nil
			}
			uid := ep.UID
			err := client.Delete(ctx, key.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
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
	cur, err := e.endpoints.Get(key.Cluster, key.Namespace, key.Name)
	create := false
	switch {
	case apierrors.IsNotFound(err):
		create = true
		cur = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	case err != nil:
		return err
	case e.stale.IsStale(key, e.cachedEndpoints):
		return fmt.Errorf("endpoints %s: cache has not yet seen the last write", key)
	}
	pods := endpointutil.PodsOf(e.pods, svc)
	trigger, commit := e.triggers.Compute(key, svc, pods)
	subsets, ready, notReady := Subsets(svc, pods)
	if !create && UpToDate(cur, svc, subsets) {
		commit()
		return nil
	}
	next := cur.DeepCopy()
	framework.StripCluster(next)
	next.Subsets = subsets
	next.Labels = Labels(svc)
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	if !trigger.IsZero() {
		next.Annotations[corev1.EndpointsLastChangeTriggerTime] = trigger.UTC().Format(time.RFC3339Nano)
	} else {
		delete(next.Annotations, corev1.EndpointsLastChangeTriggerTime)
	}
	if Truncate(next) {
		next.Annotations[corev1.EndpointsOverCapacity] = overCapacity
	} else {
		delete(next.Annotations, corev1.EndpointsOverCapacity)
	}
	if len(next.Annotations) == 0 {
		next.Annotations = nil
	}
	logger.V(4).Info("Writing endpoints", "service", key.String(), "ready", ready, "notReady", notReady)
	var written *corev1.Endpoints
	if create {
		written, err = client.Create(ctx, next, metav1.CreateOptions{})
	} else {
		written, err = client.Update(ctx, next, metav1.UpdateOptions{})
	}
	if err != nil {
		if create && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // the namespace is going away
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return err // the cache is behind: try again
		}
		ref := next.DeepCopy() // the event goes to the Service's cluster
		metav1.SetMetaDataAnnotation(&ref.ObjectMeta, framework.ClusterAnnotation, key.Cluster)
		if create {
			e.recorder.Eventf(ref, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %s/%s: %v", svc.Namespace, svc.Name, err)
		} else {
			e.recorder.Eventf(ref, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %s/%s: %v", svc.Namespace, svc.Name, err)
		}
		return err
	}
	e.stale.Wrote(key, written)
	commit()
	return nil
}
