// Package gc is the garbage collector: it follows ownerReferences across
// every resource of every logical cluster (built-in ones through the
// wildcard view, custom ones per cluster from discovery) and
//
//   - deletes dependents whose owners are all gone (background deletion;
//     an owner referenced by a uid that does not exist, or whose name now
//     holds another uid, is gone);
//   - for an owner being deleted with the foregroundDeletion finalizer,
//     deletes its dependents and removes the finalizer once no dependent
//     that blocks owner deletion remains (foreground deletion);
//   - for an owner being deleted with the orphan finalizer, removes the
//     ownerReferences to it from its dependents, then the finalizer
//     (orphan deletion);
//
// as upstream's garbage collector does. It keeps only metadata.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// item names one object the collector looks at: its cluster, resource,
// namespace, name and uid (a later object of the same name is another
// item).
type item struct {
	Cluster   string
	Resource  schema.GroupVersionResource
	Namespace string
	Name      string
	UID       types.UID
}

func (i item) String() string {
	return fmt.Sprintf("%s|%s %s/%s (%s)", i.Cluster, i.Resource, i.Namespace, i.Name, i.UID)
}

// node is a cached object and the resource it belongs to.
type node struct {
	item
	obj metav1.Object
}

// store is what the collector knows from its caches.
type store interface {
	// Get is the cached object of a resource.
	Get(cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, bool)
	// Dependents are the cached objects of every resource of cluster with
	// an ownerReference to uid.
	Dependents(cluster string, uid types.UID) []node
	// Synced tells whether the caches of every resource of cluster have
	// their first list: only then may "no dependents" be believed.
	Synced(cluster string) bool
}

// mapper maps an ownerReference's apiVersion and kind to its resource in
// a cluster.
type mapper interface {
	Resource(cluster, apiVersion, kind string) (gvr schema.GroupVersionResource, namespaced bool, err error)
}

// api reads and writes objects of a cluster.
type api interface {
	Get(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error)
	Delete(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, opts metav1.DeleteOptions) error
	// MergePatch applies a JSON merge patch.
	MergePatch(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, patch []byte) error
}

// collector decides; Controller feeds it events and runs its queue.
type collector struct {
	store  store
	mapper mapper
	api    api
	// enqueue asks for another look at an item; enqueueAfter, later.
	enqueue      func(item)
	enqueueAfter func(item, time.Duration)
	// orphanSettle is how long an orphaning waits after the collector
	// first sees it, so that its caches show dependents made just before
	// the delete (which it would otherwise collect as dangling once the
	// owner is gone). Zero in unit tests.
	orphanSettle time.Duration
	firstSeen    sync.Map // item → time.Time: orphanings waiting to settle
	absent       *absentOwners
}

// errNotSynced: a decision waits for the caches.
var errNotSynced = errors.New("caches of the cluster are not synced yet")

// errInvalidOwner: a cluster-scoped object names a namespaced owner, which
// no retry resolves.
var errInvalidOwner = errors.New("a cluster-scoped object cannot have a namespaced owner")

func hasFinalizer(o metav1.Object, f string) bool { return slices.Contains(o.GetFinalizers(), f) }

// deletingDependents: o is being deleted in the foreground.
func deletingDependents(o metav1.Object) bool {
	return o.GetDeletionTimestamp() != nil && hasFinalizer(o, metav1.FinalizerDeleteDependents)
}

func blocks(ref metav1.OwnerReference) bool {
	return ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion
}

func refTo(o metav1.Object, uid types.UID) (metav1.OwnerReference, bool) {
	for _, r := range o.GetOwnerReferences() {
		if r.UID == uid {
			return r, true
		}
	}
	return metav1.OwnerReference{}, false
}

// sync looks at one item.
func (c *collector) sync(ctx context.Context, it item) error {
	obj, ok := c.store.Get(it.Cluster, it.Resource, it.Namespace, it.Name)
	if !ok || obj.GetUID() != it.UID {
		// Gone: its dependents may be garbage now.
		for _, d := range c.store.Dependents(it.Cluster, it.UID) {
			c.enqueue(d.item)
		}
		return nil
	}
	if obj.GetDeletionTimestamp() != nil {
		switch {
		case hasFinalizer(obj, metav1.FinalizerOrphanDependents):
			return c.orphan(ctx, it)
		case hasFinalizer(obj, metav1.FinalizerDeleteDependents):
			return c.deleteDependents(ctx, it)
		}
		return nil // on its way out; its dependents follow once it is gone
	}
	return c.attemptToDelete(ctx, it, obj)
}

// orphan removes the ownerReferences to an owner being deleted with the
// orphan finalizer from its dependents, then the finalizer.
func (c *collector) orphan(ctx context.Context, owner item) error {
	if !c.store.Synced(owner.Cluster) {
		return errNotSynced
	}
	if c.orphanSettle > 0 {
		first, _ := c.firstSeen.LoadOrStore(owner, time.Now())
		if wait := c.orphanSettle - time.Since(first.(time.Time)); wait > 0 {
			c.enqueueAfter(owner, wait)
			return nil
		}
		defer c.firstSeen.Delete(owner)
	}
	deps := c.store.Dependents(owner.Cluster, owner.UID)
	errs := make([]error, len(deps))
	var wg sync.WaitGroup
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.removeOwnerRefs(ctx, d.item, map[types.UID]bool{owner.UID: true})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("orphaning the dependents of %s: %w", owner, err)
	}
	return c.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependents handles an owner being deleted in the foreground: its
// dependents are deleted, and its finalizer goes once none that blocks it
// is left.
func (c *collector) deleteDependents(ctx context.Context, owner item) error {
	deps := c.store.Dependents(owner.Cluster, owner.UID)
	blocking := 0
	for _, d := range deps {
		if r, ok := refTo(d.obj, owner.UID); ok && blocks(r) {
			blocking++
		}
		if !deletingDependents(d.obj) {
			c.enqueue(d.item)
		}
	}
	if blocking > 0 {
		return nil // each dependent's deletion brings the owner back here
	}
	if !c.store.Synced(owner.Cluster) {
		return errNotSynced
	}
	return c.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

// owners are an object's ownerReferences sorted by their owners' state.
type owners struct {
	solid    []metav1.OwnerReference // exist, not being deleted in the foreground
	dangling []metav1.OwnerReference // gone (or replaced)
	waiting  []metav1.OwnerReference // being deleted in the foreground
}

// classify looks the owners up: in the caches, and in the API when the
// cache does not have them (a cache may lag behind a new owner; an owner
// is believed gone only on the API's word).
func (c *collector) classify(ctx context.Context, cluster, ns string, refs []metav1.OwnerReference) (owners, error) {
	var o owners
	for _, ref := range refs {
		gvr, namespaced, err := c.mapper.Resource(cluster, ref.APIVersion, ref.Kind)
		if err != nil {
			return o, err
		}
		if namespaced && ns == "" {
			return o, errInvalidOwner
		}
		ownerNS := ""
		if namespaced {
			ownerNS = ns
		}
		if c.absent.has(cluster, ownerNS, ref.UID) {
			o.dangling = append(o.dangling, ref)
			continue
		}
		owner, ok := c.store.Get(cluster, gvr, ownerNS, ref.Name)
		if !ok || owner.GetUID() != ref.UID {
			owner, err = c.api.Get(ctx, cluster, gvr, ownerNS, ref.Name)
			if apierrors.IsNotFound(err) || (err == nil && owner.GetUID() != ref.UID) {
				c.absent.add(cluster, ownerNS, ref.UID)
				o.dangling = append(o.dangling, ref)
				continue
			}
			if err != nil {
				return o, err
			}
		}
		if deletingDependents(owner) {
			o.waiting = append(o.waiting, ref)
		} else {
			o.solid = append(o.solid, ref)
		}
	}
	return o, nil
}

// attemptToDelete deletes an object whose owners are all gone or being
// deleted in the foreground, and drops references to such owners from
// objects that keep another owner.
func (c *collector) attemptToDelete(ctx context.Context, it item, cached metav1.Object) error {
	logger := klog.FromContext(ctx)
	if len(cached.GetOwnerReferences()) == 0 {
		return nil
	}
	o, err := c.classify(ctx, it.Cluster, it.Namespace, cached.GetOwnerReferences())
	if errors.Is(err, errInvalidOwner) {
		logger.V(2).Info("Garbage collector ignores an object with an invalid owner", "item", it.String())
		return nil
	}
	if err != nil {
		return err
	}
	if len(o.dangling) == 0 && len(o.waiting) == 0 {
		return nil // every owner is there
	}
	// Decide on the object as it is now.
	latest, err := c.api.Get(ctx, it.Cluster, it.Resource, it.Namespace, it.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if latest.GetUID() != it.UID || latest.GetDeletionTimestamp() != nil {
		return nil // replaced, or being deleted: its events bring it back
	}
	if len(latest.GetOwnerReferences()) == 0 {
		return nil
	}
	if o, err = c.classify(ctx, it.Cluster, it.Namespace, latest.GetOwnerReferences()); err != nil {
		if errors.Is(err, errInvalidOwner) {
			return nil
		}
		return err
	}
	switch {
	case len(o.solid) > 0:
		if len(o.dangling) == 0 && len(o.waiting) == 0 {
			return nil
		}
		// Kept by another owner: forget the ones that are going.
		drop := map[types.UID]bool{}
		for _, r := range append(o.dangling, o.waiting...) {
			drop[r.UID] = true
		}
		logger.V(2).Info("Garbage collector removes references to owners that are going", "item", it.String())
		return c.removeOwnerRefs(ctx, it, drop)
	case len(o.waiting) > 0 && len(c.store.Dependents(it.Cluster, it.UID)) > 0:
		// An owner waits for us and we have dependents of our own: go in
		// the foreground too. A dependent that also waits for its own
		// dependents could make a cycle: stop blocking our owners then.
		for _, d := range c.store.Dependents(it.Cluster, it.UID) {
			if deletingDependents(d.obj) {
				if err := c.unblockOwnerRefs(ctx, it); err != nil {
					return err
				}
				break
			}
		}
		return c.delete(ctx, it, latest, metav1.DeletePropagationForeground)
	default:
		policy := metav1.DeletePropagationBackground
		switch {
		case hasFinalizer(latest, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case hasFinalizer(latest, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		logger.V(2).Info("Garbage collector deletes an object whose owners are gone", "item", it.String(), "propagationPolicy", policy)
		return c.delete(ctx, it, latest, policy)
	}
}

func (c *collector) delete(ctx context.Context, it item, latest metav1.Object, policy metav1.DeletionPropagation) error {
	uid, rv := latest.GetUID(), latest.GetResourceVersion()
	err := c.api.Delete(ctx, it.Cluster, it.Resource, it.Namespace, it.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		PropagationPolicy: &policy,
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// metaPatch is a JSON merge patch of metadata, conditioned on the uid and
// resourceVersion it was computed from.
type metaPatch struct {
	Metadata struct {
		UID             types.UID                `json:"uid"`
		ResourceVersion string                   `json:"resourceVersion"`
		OwnerReferences *[]metav1.OwnerReference `json:"ownerReferences,omitempty"`
		Finalizers      *[]string                `json:"finalizers,omitempty"`
	} `json:"metadata"`
}

// update reads the object, lets change edit its ownerReferences or
// finalizers, and writes them back with a merge patch, retrying on
// conflicts. change returns false when there is nothing to do.
func (c *collector) update(ctx context.Context, it item, change func(refs *[]metav1.OwnerReference, finalizers *[]string) (refsChanged, finsChanged bool)) error {
	for attempt := 0; ; attempt++ {
		cur, err := c.api.Get(ctx, it.Cluster, it.Resource, it.Namespace, it.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.GetUID() != it.UID {
			return nil
		}
		refs := slices.Clone(cur.GetOwnerReferences())
		fins := slices.Clone(cur.GetFinalizers())
		refsChanged, finsChanged := change(&refs, &fins)
		if !refsChanged && !finsChanged {
			return nil
		}
		var p metaPatch
		p.Metadata.UID, p.Metadata.ResourceVersion = cur.GetUID(), cur.GetResourceVersion()
		if refsChanged {
			if refs == nil {
				refs = []metav1.OwnerReference{}
			}
			p.Metadata.OwnerReferences = &refs
		}
		if finsChanged {
			if fins == nil {
				fins = []string{}
			}
			p.Metadata.Finalizers = &fins
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		err = c.api.MergePatch(ctx, it.Cluster, it.Resource, it.Namespace, it.Name, b)
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err) && attempt < 5:
			continue
		}
		return err
	}
}

func (c *collector) removeOwnerRefs(ctx context.Context, it item, drop map[types.UID]bool) error {
	return c.update(ctx, it, func(refs *[]metav1.OwnerReference, _ *[]string) (bool, bool) {
		n := len(*refs)
		*refs = slices.DeleteFunc(*refs, func(r metav1.OwnerReference) bool { return drop[r.UID] })
		return len(*refs) != n, false
	})
}

func (c *collector) unblockOwnerRefs(ctx context.Context, it item) error {
	return c.update(ctx, it, func(refs *[]metav1.OwnerReference, _ *[]string) (bool, bool) {
		changed := false
		for i := range *refs {
			if blocks((*refs)[i]) {
				no := false
				(*refs)[i].BlockOwnerDeletion = &no
				changed = true
			}
		}
		return changed, false
	})
}

func (c *collector) removeFinalizer(ctx context.Context, it item, f string) error {
	return c.update(ctx, it, func(_ *[]metav1.OwnerReference, fins *[]string) (bool, bool) {
		n := len(*fins)
		*fins = slices.DeleteFunc(*fins, func(s string) bool { return s == f })
		return false, len(*fins) != n
	})
}

// absentOwners remembers owners the API said are gone (uids are never
// reused), so that many dependents of one deleted owner cost one lookup.
type absentOwners struct {
	mu   sync.Mutex
	uids map[string]struct{}
}

const maxAbsent = 10000

func newAbsentOwners() *absentOwners { return &absentOwners{uids: map[string]struct{}{}} }

func absentKey(cluster, ns string, uid types.UID) string {
	return cluster + "|" + ns + "|" + string(uid)
}

func (a *absentOwners) has(cluster, ns string, uid types.UID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.uids[absentKey(cluster, ns, uid)]
	return ok
}

func (a *absentOwners) add(cluster, ns string, uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.uids) >= maxAbsent {
		clear(a.uids)
	}
	a.uids[absentKey(cluster, ns, uid)] = struct{}{}
}
