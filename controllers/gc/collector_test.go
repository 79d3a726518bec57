package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var (
	cmGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	nsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	rsGVR  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	podGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

type objKey struct {
	cluster string
	gvr     schema.GroupVersionResource
	ns      string
	name    string
}

// world is a fake API whose caches are always up to date. Deletes follow
// the API server's rules: finalizers hold an object, propagation policies
// add the collector's finalizers.
type world struct {
	objs    map[objKey]*metav1.PartialObjectMetadata
	n       int
	actions []string
	queue   []item
}

func newWorld() *world { return &world{objs: map[objKey]*metav1.PartialObjectMetadata{}} }

func (w *world) add(cluster string, gvr schema.GroupVersionResource, ns, name string, mutate ...func(*metav1.PartialObjectMetadata)) *metav1.PartialObjectMetadata {
	w.n++
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, UID: types.UID(fmt.Sprintf("uid-%d", w.n)), ResourceVersion: "1",
	}}
	for _, m := range mutate {
		m(o)
	}
	w.objs[objKey{cluster, gvr, ns, name}] = o
	return o
}

func ownedBy(owner *metav1.PartialObjectMetadata, apiVersion, kind string, block bool) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) {
		o.OwnerReferences = append(o.OwnerReferences, metav1.OwnerReference{
			APIVersion: apiVersion, Kind: kind, Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: &block,
		})
	}
}

func withFinalizers(f ...string) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) { o.Finalizers = append(o.Finalizers, f...) }
}

func deleting(o *metav1.PartialObjectMetadata) {
	now := metav1.Now()
	o.DeletionTimestamp = &now
}

func (w *world) itemOf(cluster string, gvr schema.GroupVersionResource, o *metav1.PartialObjectMetadata) item {
	return item{Cluster: cluster, Resource: gvr, Namespace: o.Namespace, Name: o.Name, UID: o.UID}
}

func (w *world) find(cluster string, gvr schema.GroupVersionResource, ns, name string) *metav1.PartialObjectMetadata {
	return w.objs[objKey{cluster, gvr, ns, name}]
}

// store

func (w *world) Get(cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, bool) {
	o, ok := w.objs[objKey{cluster, gvr, ns, name}]
	if !ok {
		return nil, false
	}
	return o.DeepCopy(), true
}

func (w *world) Dependents(cluster string, uid types.UID) []node {
	var out []node
	for k, o := range w.objs {
		if k.cluster != cluster {
			continue
		}
		if _, ok := refTo(o, uid); ok {
			out = append(out, node{item: w.itemOf(k.cluster, k.gvr, o), obj: o.DeepCopy()})
		}
	}
	return out
}

func (w *world) Synced(string) bool { return true }

// mapper

func (w *world) Resource(_, apiVersion, kind string) (schema.GroupVersionResource, bool, error) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return cmGVR, true, nil
	case "v1/Pod":
		return podGVR, true, nil
	case "v1/Namespace":
		return nsGVR, false, nil
	case "apps/v1/ReplicaSet":
		return rsGVR, true, nil
	}
	return schema.GroupVersionResource{}, false, fmt.Errorf("unknown kind %s %s", apiVersion, kind)
}

// api

func (w *world) notFound(name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: "things"}, name)
}

func (w *world) ApiGet(cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error) {
	o, ok := w.objs[objKey{cluster, gvr, ns, name}]
	if !ok {
		return nil, w.notFound(name)
	}
	return o.DeepCopy(), nil
}

type worldAPI struct{ w *world }

func (a worldAPI) Get(_ context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error) {
	return a.w.ApiGet(cluster, gvr, ns, name)
}

func (a worldAPI) Delete(_ context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, opts metav1.DeleteOptions) error {
	w := a.w
	k := objKey{cluster, gvr, ns, name}
	o, ok := w.objs[k]
	if !ok {
		return w.notFound(name)
	}
	if p := opts.Preconditions; p != nil && ((p.UID != nil && *p.UID != o.UID) || (p.ResourceVersion != nil && *p.ResourceVersion != o.ResourceVersion)) {
		return apierrors.NewConflict(gvr.GroupResource(), name, fmt.Errorf("precondition failed"))
	}
	policy := metav1.DeletePropagationBackground
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	}
	w.actions = append(w.actions, fmt.Sprintf("delete %s %s/%s %s", gvr.Resource, ns, name, policy))
	switch policy {
	case metav1.DeletePropagationForeground:
		if !slices.Contains(o.Finalizers, metav1.FinalizerDeleteDependents) {
			o.Finalizers = append(o.Finalizers, metav1.FinalizerDeleteDependents)
		}
	case metav1.DeletePropagationOrphan:
		if !slices.Contains(o.Finalizers, metav1.FinalizerOrphanDependents) {
			o.Finalizers = append(o.Finalizers, metav1.FinalizerOrphanDependents)
		}
	}
	it := w.itemOf(cluster, gvr, o)
	if len(o.Finalizers) == 0 {
		w.gone(k)
		return nil
	}
	deleting(o)
	o.ResourceVersion += "1"
	w.queue = append(w.queue, it) // the update event
	return nil
}

// gone removes an object and queues what the collector's event handler
// would: the object itself and its owners.
func (w *world) gone(k objKey) {
	o := w.objs[k]
	delete(w.objs, k)
	w.queue = append(w.queue, w.itemOf(k.cluster, k.gvr, o))
	for _, r := range o.OwnerReferences {
		gvr, namespaced, err := w.Resource(k.cluster, r.APIVersion, r.Kind)
		if err != nil {
			continue
		}
		ns := k.ns
		if !namespaced {
			ns = ""
		}
		w.queue = append(w.queue, item{Cluster: k.cluster, Resource: gvr, Namespace: ns, Name: r.Name, UID: r.UID})
	}
}

func (a worldAPI) MergePatch(_ context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, patch []byte) error {
	w := a.w
	k := objKey{cluster, gvr, ns, name}
	o, ok := w.objs[k]
	if !ok {
		return w.notFound(name)
	}
	var p metaPatch
	if err := json.Unmarshal(patch, &p); err != nil {
		return err
	}
	if p.Metadata.UID != o.UID || p.Metadata.ResourceVersion != o.ResourceVersion {
		return apierrors.NewConflict(gvr.GroupResource(), name, fmt.Errorf("stale"))
	}
	if p.Metadata.OwnerReferences != nil {
		o.OwnerReferences = *p.Metadata.OwnerReferences
		w.actions = append(w.actions, fmt.Sprintf("patch %s %s/%s ownerReferences %d", gvr.Resource, ns, name, len(o.OwnerReferences)))
	}
	if p.Metadata.Finalizers != nil {
		o.Finalizers = *p.Metadata.Finalizers
		w.actions = append(w.actions, fmt.Sprintf("patch %s %s/%s finalizers %v", gvr.Resource, ns, name, o.Finalizers))
		if o.DeletionTimestamp != nil && len(o.Finalizers) == 0 {
			w.gone(k)
			return nil
		}
	}
	o.ResourceVersion += "1"
	w.queue = append(w.queue, w.itemOf(cluster, gvr, o))
	return nil
}

func (w *world) collector() *collector {
	return &collector{store: w, mapper: w, api: worldAPI{w}, enqueue: func(it item) { w.queue = append(w.queue, it) }, absent: newAbsentOwners()}
}

// drain syncs queued items (and items given) until nothing is queued.
func (w *world) drain(t *testing.T, c *collector, items ...item) {
	t.Helper()
	w.queue = append(w.queue, items...)
	for n := 0; len(w.queue) > 0; n++ {
		if n > 1000 {
			t.Fatalf("queue does not drain: %v", w.queue)
		}
		it := w.queue[0]
		w.queue = w.queue[1:]
		if err := c.sync(context.Background(), it); err != nil {
			t.Fatalf("sync %s: %v", it, err)
		}
	}
}

func TestBackgroundDeletesOrphanedDependents(t *testing.T) {
	w := newWorld()
	owner := w.add("root", cmGVR, "ns", "owner")
	dep := w.add("root", cmGVR, "ns", "dep", ownedBy(owner, "v1", "ConfigMap", false))
	c := w.collector()
	w.drain(t, c, w.itemOf("root", cmGVR, dep))
	if w.find("root", cmGVR, "ns", "dep") == nil || len(w.actions) != 0 {
		t.Fatalf("dependent of a live owner touched: %v", w.actions)
	}
	ownerItem := w.itemOf("root", cmGVR, owner)
	delete(w.objs, objKey{"root", cmGVR, "ns", "owner"})
	w.drain(t, c, ownerItem)
	if w.find("root", cmGVR, "ns", "dep") != nil {
		t.Fatalf("dependent kept after its owner went: %v", w.actions)
	}
	if !slices.Equal(w.actions, []string{"delete configmaps ns/dep Background"}) {
		t.Fatalf("actions %v", w.actions)
	}
}

func TestOwnerWithAnotherUIDIsGone(t *testing.T) {
	w := newWorld()
	owner := w.add("root", cmGVR, "ns", "owner")
	dep := w.add("root", cmGVR, "ns", "dep", ownedBy(owner, "v1", "ConfigMap", false))
	// The owner is deleted and made again under the same name.
	w.add("root", cmGVR, "ns", "owner")
	w.drain(t, w.collector(), w.itemOf("root", cmGVR, dep))
	if w.find("root", cmGVR, "ns", "dep") != nil {
		t.Fatalf("dependent of a replaced owner kept")
	}
}

func TestOwnersAreLookedUpInTheirCluster(t *testing.T) {
	w := newWorld()
	owner := w.add("a", cmGVR, "ns", "owner")
	// Cluster b's dependent names an owner that only cluster a has.
	dep := w.add("b", cmGVR, "ns", "dep", ownedBy(owner, "v1", "ConfigMap", false))
	keep := w.add("a", cmGVR, "ns", "dep", ownedBy(owner, "v1", "ConfigMap", false))
	c := w.collector()
	w.drain(t, c, w.itemOf("b", cmGVR, dep), w.itemOf("a", cmGVR, keep))
	if w.find("b", cmGVR, "ns", "dep") != nil {
		t.Fatalf("dependent in cluster b kept by an owner in cluster a")
	}
	if w.find("a", cmGVR, "ns", "dep") == nil {
		t.Fatalf("dependent in cluster a deleted")
	}
}

func TestClusterScopedOwner(t *testing.T) {
	w := newWorld()
	ns := w.add("root", nsGVR, "", "team")
	dep := w.add("root", cmGVR, "other", "dep", ownedBy(ns, "v1", "Namespace", false))
	c := w.collector()
	w.drain(t, c, w.itemOf("root", cmGVR, dep))
	if w.find("root", cmGVR, "other", "dep") == nil {
		t.Fatalf("dependent of a live cluster-scoped owner deleted")
	}
	// A cluster-scoped object cannot have a namespaced owner: left alone.
	cm := w.add("root", cmGVR, "x", "cm")
	bad := w.add("root", nsGVR, "", "bad", ownedBy(cm, "v1", "ConfigMap", false))
	delete(w.objs, objKey{"root", cmGVR, "x", "cm"})
	w.drain(t, c, w.itemOf("root", nsGVR, bad))
	if w.find("root", nsGVR, "", "bad") == nil {
		t.Fatalf("cluster-scoped object with a namespaced owner deleted")
	}
}

func TestSolidOwnerKeepsDependentAndDanglingRefsGo(t *testing.T) {
	w := newWorld()
	a := w.add("root", cmGVR, "ns", "a")
	b := w.add("root", cmGVR, "ns", "b")
	dep := w.add("root", cmGVR, "ns", "dep", ownedBy(a, "v1", "ConfigMap", false), ownedBy(b, "v1", "ConfigMap", false))
	delete(w.objs, objKey{"root", cmGVR, "ns", "b"})
	w.drain(t, w.collector(), w.itemOf("root", cmGVR, dep))
	d := w.find("root", cmGVR, "ns", "dep")
	if d == nil || len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != a.UID {
		t.Fatalf("dependent %+v, want kept with only its live owner", d)
	}
}

func TestOrphan(t *testing.T) {
	w := newWorld()
	owner := w.add("root", rsGVR, "ns", "rs", withFinalizers(metav1.FinalizerOrphanDependents), deleting)
	other := w.add("root", cmGVR, "ns", "other")
	p1 := w.add("root", podGVR, "ns", "p1", ownedBy(owner, "apps/v1", "ReplicaSet", true))
	w.add("root", podGVR, "ns", "p2", ownedBy(owner, "apps/v1", "ReplicaSet", true), ownedBy(other, "v1", "ConfigMap", false))
	_ = p1
	w.drain(t, w.collector(), w.itemOf("root", rsGVR, owner))
	if w.find("root", rsGVR, "ns", "rs") != nil {
		t.Fatalf("owner kept after orphaning: %v", w.actions)
	}
	p := w.find("root", podGVR, "ns", "p1")
	if p == nil || len(p.OwnerReferences) != 0 {
		t.Fatalf("p1 = %+v, want kept without the reference", p)
	}
	p = w.find("root", podGVR, "ns", "p2")
	if p == nil || len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != other.UID {
		t.Fatalf("p2 = %+v, want kept with its other owner", p)
	}
	// The finalizer goes last.
	if last := w.actions[len(w.actions)-1]; !strings.Contains(last, "finalizers []") {
		t.Fatalf("actions %v", w.actions)
	}
}

// An orphaning waits for the caches to settle: a dependent they show only
// shortly after the delete is orphaned too, not left to be collected.
func TestOrphanWaitsForLateDependents(t *testing.T) {
	w := newWorld()
	owner := w.add("root", rsGVR, "ns", "rs", withFinalizers(metav1.FinalizerOrphanDependents), deleting)
	c := w.collector()
	var later []item
	c.orphanSettle = 50 * time.Millisecond
	c.enqueueAfter = func(it item, d time.Duration) {
		if d <= 0 || d > c.orphanSettle {
			t.Errorf("orphaning put off by %s", d)
		}
		later = append(later, it)
	}
	w.drain(t, c, w.itemOf("root", rsGVR, owner))
	if w.find("root", rsGVR, "ns", "rs") == nil || len(later) != 1 || len(w.actions) != 0 {
		t.Fatalf("orphaning did not wait: later %v, actions %v", later, w.actions)
	}
	w.add("root", podGVR, "ns", "late", ownedBy(owner, "apps/v1", "ReplicaSet", true))
	time.Sleep(c.orphanSettle)
	w.drain(t, c, later...)
	if w.find("root", rsGVR, "ns", "rs") != nil {
		t.Fatalf("owner kept after orphaning: %v", w.actions)
	}
	if p := w.find("root", podGVR, "ns", "late"); p == nil || len(p.OwnerReferences) != 0 {
		t.Fatalf("late dependent = %+v, want kept without the reference", p)
	}
}

func TestForegroundWaitsForBlockingDependents(t *testing.T) {
	w := newWorld()
	owner := w.add("root", cmGVR, "ns", "owner")
	w.add("root", cmGVR, "ns", "blocking", ownedBy(owner, "v1", "ConfigMap", true), withFinalizers("example.com/hold"))
	w.add("root", cmGVR, "ns", "plain", ownedBy(owner, "v1", "ConfigMap", false), withFinalizers("example.com/hold"))
	// kubectl delete --cascade=foreground
	if err := (worldAPI{w}).Delete(context.Background(), "root", cmGVR, "ns", "owner", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	w.actions = nil
	c := w.collector()
	ownerItem := w.itemOf("root", cmGVR, owner)
	w.drain(t, c, ownerItem)
	for _, n := range []string{"blocking", "plain"} {
		d := w.find("root", cmGVR, "ns", n)
		if d == nil || d.DeletionTimestamp == nil {
			t.Fatalf("dependent %s = %+v, want being deleted", n, d)
		}
	}
	if o := w.find("root", cmGVR, "ns", "owner"); o == nil || !slices.Contains(o.Finalizers, metav1.FinalizerDeleteDependents) {
		t.Fatalf("owner gone while a blocking dependent exists")
	}
	// The non-blocking dependent's going does not release the owner.
	w.find("root", cmGVR, "ns", "plain").Finalizers = nil
	delete(w.objs, objKey{"root", cmGVR, "ns", "plain"})
	w.drain(t, c, ownerItem)
	if w.find("root", cmGVR, "ns", "owner") == nil {
		t.Fatalf("owner gone while a blocking dependent exists")
	}
	// The blocking one's going does.
	delete(w.objs, objKey{"root", cmGVR, "ns", "blocking"})
	w.drain(t, c, ownerItem)
	if w.find("root", cmGVR, "ns", "owner") != nil {
		t.Fatalf("owner kept after its blocking dependents went: %v", w.actions)
	}
}

func TestForegroundCascades(t *testing.T) {
	w := newWorld()
	dep := w.add("root", rsGVR, "ns", "rs")
	pod := w.add("root", podGVR, "ns", "pod", ownedBy(dep, "apps/v1", "ReplicaSet", true), withFinalizers("example.com/hold"))
	owner := w.add("root", cmGVR, "ns", "owner", withFinalizers(metav1.FinalizerDeleteDependents), deleting)
	dep.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: owner.UID, BlockOwnerDeletion: ptr(true)}}
	c := w.collector()
	w.drain(t, c, w.itemOf("root", cmGVR, owner))
	// The dependent has dependents of its own: deleted in the foreground.
	if !slices.Contains(w.actions, "delete replicasets ns/rs Foreground") {
		t.Fatalf("actions %v", w.actions)
	}
	if p := w.find("root", podGVR, "ns", "pod"); p == nil || p.DeletionTimestamp == nil {
		t.Fatalf("grand-dependent %+v, want being deleted", p)
	}
	if w.find("root", rsGVR, "ns", "rs") == nil || w.find("root", cmGVR, "ns", "owner") == nil {
		t.Fatalf("owners went before the grand-dependent")
	}
	delete(w.objs, objKey{"root", podGVR, "ns", "pod"})
	w.drain(t, c, w.itemOf("root", podGVR, pod), w.itemOf("root", rsGVR, dep))
	w.drain(t, c, w.itemOf("root", cmGVR, owner))
	if w.find("root", rsGVR, "ns", "rs") != nil || w.find("root", cmGVR, "ns", "owner") != nil {
		t.Fatalf("chain not deleted: %v", w.actions)
	}
}

func TestGarbageWithOrphanFinalizerIsDeletedOrphaning(t *testing.T) {
	w := newWorld()
	owner := w.add("root", cmGVR, "ns", "owner")
	dep := w.add("root", cmGVR, "ns", "dep", ownedBy(owner, "v1", "ConfigMap", false), withFinalizers(metav1.FinalizerOrphanDependents))
	delete(w.objs, objKey{"root", cmGVR, "ns", "owner"})
	c := w.collector()
	w.drain(t, c, w.itemOf("root", cmGVR, dep))
	if !slices.Contains(w.actions, "delete configmaps ns/dep Orphan") {
		t.Fatalf("actions %v", w.actions)
	}
}

func TestUnknownKindIsRetried(t *testing.T) {
	w := newWorld()
	dep := w.add("root", cmGVR, "ns", "dep", func(o *metav1.PartialObjectMetadata) {
		o.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "x"}}
	})
	if err := w.collector().sync(context.Background(), w.itemOf("root", cmGVR, dep)); err == nil {
		t.Fatalf("an owner of unknown kind should be an error (retried)")
	}
	if w.find("root", cmGVR, "ns", "dep") == nil {
		t.Fatalf("dependent of an unknown kind deleted")
	}
}

func ptr[T any](v T) *T { return &v }
