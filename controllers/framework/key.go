// Package framework is the machinery shared by pgkube's controllers:
// cluster-aware informers and listers, clients per logical cluster, work
// queues, and an event recorder. Nothing in it is specific to one
// controller.
//
// pgkube hosts many logical clusters, and one controller manager serves all
// of them: objects are cached and queued under keys that include their
// cluster (see Key), and writes go to the cluster an object came from.
package framework

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// ClusterAnnotation names the logical cluster of an object read through
// the API server's wildcard view (/clusters/*/...). The server ignores it
// on writes; controllers drop it anyway (see StripCluster).
const ClusterAnnotation = "pgkube.io/cluster"

// RootCluster is the cluster served without a /clusters/NAME prefix.
const RootCluster = "root"

// Key names an object in one logical cluster. Namespace is empty for
// cluster-scoped objects.
type Key struct{ Cluster, Namespace, Name string }

// String is "cluster|namespace/name", or "cluster|name" without a
// namespace; ParseKey reads it back.
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Cluster + "|" + k.Name
	}
	return k.Cluster + "|" + k.Namespace + "/" + k.Name
}

// ParseKey reads a Key's String form.
func ParseKey(s string) (Key, error) {
	cluster, rest, ok := strings.Cut(s, "|")
	if !ok || cluster == "" {
		return Key{}, fmt.Errorf("key %q has no cluster", s)
	}
	ns, name, ok := strings.Cut(rest, "/")
	if !ok {
		ns, name = "", rest
	}
	if name == "" {
		return Key{}, fmt.Errorf("key %q has no name", s)
	}
	return Key{Cluster: cluster, Namespace: ns, Name: name}, nil
}

// ClusterOf is the logical cluster obj belongs to: its ClusterAnnotation,
// else the default cluster.
func ClusterOf(obj metav1.Object) string {
	if c := obj.GetAnnotations()[ClusterAnnotation]; c != "" {
		return c
	}
	return RootCluster
}

// KeyOf is obj's key.
func KeyOf(obj metav1.Object) Key {
	return Key{Cluster: ClusterOf(obj), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// KeyFromEvent is the key of an object handed to an event handler, which
// may be a cache.DeletedFinalStateUnknown tombstone.
func KeyFromEvent(obj any) (Key, bool) {
	switch o := obj.(type) {
	case cache.DeletedFinalStateUnknown:
		if m, ok := o.Obj.(metav1.Object); ok {
			return KeyOf(m), true
		}
		k, err := ParseKey(o.Key)
		return k, err == nil
	case metav1.Object:
		return KeyOf(o), true
	}
	return Key{}, false
}

// ObjectFromEvent unwraps a tombstone; nil when obj holds no object.
func ObjectFromEvent(obj any) metav1.Object {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, _ := obj.(metav1.Object)
	return m
}

// StripCluster drops the ClusterAnnotation from obj, which must be the
// controller's own copy (DeepCopy what a lister returns first). Call it
// before writing an object read from an informer.
func StripCluster(obj metav1.Object) {
	a := obj.GetAnnotations()
	if _, ok := a[ClusterAnnotation]; !ok {
		return
	}
	delete(a, ClusterAnnotation)
	if len(a) == 0 {
		a = nil
	}
	obj.SetAnnotations(a)
}

// cacheKey is the key objects are stored under in an informer whose
// unmarked objects belong to cluster.
func cacheKey(cluster string) cache.KeyFunc {
	return func(obj any) (string, error) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			return t.Key, nil
		}
		m, ok := obj.(metav1.Object)
		if !ok {
			return "", fmt.Errorf("object of type %T has no metadata", obj)
		}
		return Key{Cluster: clusterOr(m, cluster), Namespace: m.GetNamespace(), Name: m.GetName()}.String(), nil
	}
}

// clusterOr is obj's cluster, or def if it is not marked.
func clusterOr(obj metav1.Object, def string) string {
	if c := obj.GetAnnotations()[ClusterAnnotation]; c != "" {
		return c
	}
	return def
}

// markCluster marks obj, fresh from a list or watch of one cluster, with
// that cluster, as the wildcard view marks objects: ClusterOf then needs no
// context.
func markCluster(obj any, cluster string) {
	m, ok := obj.(metav1.Object)
	if !ok || cluster == RootCluster {
		return
	}
	a := m.GetAnnotations()
	if a[ClusterAnnotation] != "" {
		return
	}
	a2 := make(map[string]string, len(a)+1)
	for k, v := range a {
		a2[k] = v
	}
	a2[ClusterAnnotation] = cluster
	m.SetAnnotations(a2)
}
