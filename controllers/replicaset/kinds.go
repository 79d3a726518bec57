package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/pgkube/pgkube/controllers/framework"
)

// kind is what differs between ReplicaSets and ReplicationControllers:
// where they are read and how their status is written. Everything else
// works on *appsv1.ReplicaSet (ReplicationControllers converted).
type kind interface {
	gvk() schema.GroupVersionKind
	name() string
	// get is the cached object as a ReplicaSet (the cache's own for
	// ReplicaSets: don't change it) and the object itself, for Events.
	get(cluster, ns, name string) (*appsv1.ReplicaSet, runtime.Object, error)
	list(cluster, ns string) []*appsv1.ReplicaSet
	// fresh reads the object from the API server.
	fresh(ctx context.Context, cluster, ns, name string) (metav1.Object, error)
	updateStatus(ctx context.Context, cluster string, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error)
	addHandler(h cache.ResourceEventHandler)
	hasSynced() bool
	// terminatingReplicas: whether status reports terminatingReplicas.
	terminatingReplicas() bool
}

type rsKind struct {
	inf     *framework.Informer[*appsv1.ReplicaSet]
	clients *framework.Clients
}

func (rsKind) gvk() schema.GroupVersionKind { return appsv1.SchemeGroupVersion.WithKind("ReplicaSet") }
func (rsKind) name() string                 { return "replicaset" }
func (rsKind) terminatingReplicas() bool    { return true }

func (k rsKind) get(cluster, ns, name string) (*appsv1.ReplicaSet, runtime.Object, error) {
	rs, err := k.inf.Get(cluster, ns, name)
	if err != nil {
		return nil, nil, err
	}
	return rs, rs, nil
}

func (k rsKind) list(cluster, ns string) []*appsv1.ReplicaSet { return k.inf.List(cluster, ns, nil) }

func (k rsKind) fresh(ctx context.Context, cluster, ns, name string) (metav1.Object, error) {
	return k.clients.For(cluster).AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (k rsKind) updateStatus(ctx context.Context, cluster string, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	c := k.clients.For(cluster).AppsV1().ReplicaSets(rs.Namespace)
	cp := rs.DeepCopy()
	framework.StripCluster(cp)
	cp.Status = st
	out, err := c.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err == nil {
		return out, nil
	}
	// One retry on the current object (a conflict, usually).
	cur, gerr := c.Get(ctx, rs.Name, metav1.GetOptions{})
	if gerr != nil {
		return nil, err
	}
	if cur.UID != rs.UID {
		return nil, err
	}
	cur.Status = st // observedGeneration stays the generation we acted on
	return c.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
}

func (k rsKind) addHandler(h cache.ResourceEventHandler) { k.inf.AddEventHandler(h) }
func (k rsKind) hasSynced() bool                         { return k.inf.HasSynced() }

type rcKind struct {
	inf     *framework.Informer[*corev1.ReplicationController]
	clients *framework.Clients
}

func (rcKind) gvk() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ReplicationController")
}
func (rcKind) name() string              { return "replicationcontroller" }
func (rcKind) terminatingReplicas() bool { return false }

func (k rcKind) get(cluster, ns, name string) (*appsv1.ReplicaSet, runtime.Object, error) {
	rc, err := k.inf.Get(cluster, ns, name)
	if err != nil {
		return nil, nil, err
	}
	return rcToRS(rc), rc, nil
}

func (k rcKind) list(cluster, ns string) []*appsv1.ReplicaSet {
	rcs := k.inf.List(cluster, ns, nil)
	out := make([]*appsv1.ReplicaSet, len(rcs))
	for i, rc := range rcs {
		out[i] = rcToRS(rc)
	}
	return out
}

func (k rcKind) fresh(ctx context.Context, cluster, ns, name string) (metav1.Object, error) {
	return k.clients.For(cluster).CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
}

func (k rcKind) updateStatus(ctx context.Context, cluster string, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	c := k.clients.For(cluster).CoreV1().ReplicationControllers(rs.Namespace)
	rc, err := k.inf.Get(cluster, rs.Namespace, rs.Name)
	if err != nil {
		return nil, err
	}
	cp := rc.DeepCopy()
	framework.StripCluster(cp)
	cp.Status = rsStatusToRC(st)
	out, err := c.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		cur, gerr := c.Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr != nil || cur.UID != rs.UID {
			return nil, err
		}
		cur.Status = rsStatusToRC(st)
		if out, err = c.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	return rcToRS(out), nil
}

func (k rcKind) addHandler(h cache.ResourceEventHandler) { k.inf.AddEventHandler(h) }
func (k rcKind) hasSynced() bool                         { return k.inf.HasSynced() }
