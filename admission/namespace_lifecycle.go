package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NamespaceGetter reads a namespace from storage.
type NamespaceGetter interface {
	Get(ctx context.Context, cluster string, key storage.Key) (storage.Object, error)
}

// activeTTL bounds how long an Active namespace is trusted without a read.
// Writes made by this process invalidate at once (Committed); the TTL only
// covers deletions made through other API server processes, much as
// upstream's informer-fed check lags behind storage.
const activeTTL = 2 * time.Second

var namespacesKey = "/namespaces"

// NamespaceLifecycle refuses creates in a namespace that does not exist or is
// terminating, and the deletion of the namespaces the system needs.
type NamespaceLifecycle struct {
	store NamespaceGetter
	mu    sync.Mutex
	// active caches namespaces seen Active: only positive answers, so a
	// namespace created elsewhere is usable at once.
	active map[nsKey]time.Time
}

type nsKey struct{ cluster, name string }

// NewNamespaceLifecycle returns the plugin.
func NewNamespaceLifecycle(store NamespaceGetter) *NamespaceLifecycle {
	return &NamespaceLifecycle{store: store, active: map[nsKey]time.Time{}}
}

// Committed is a storage commit hook: any write to a namespace drops it
// from the cache.
func (p *NamespaceLifecycle) Committed(cluster string, objs []storage.Object) {
	for _, o := range objs {
		if o.Resource == namespacesKey {
			p.mu.Lock()
			delete(p.active, nsKey{cluster, o.Name})
			p.mu.Unlock()
		}
	}
}

// protectedNamespaces cannot be deleted, as upstream.
var protectedNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

func (p *NamespaceLifecycle) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource == "namespaces" && a.Group == "" {
		if a.Operation == Delete && a.Subresource == "" && protectedNamespaces[a.Name] {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, a.Name,
				fmt.Errorf("this namespace may not be deleted"))
		}
		return nil
	}
	if a.Operation != Create || a.Namespace == "" || a.Subresource != "" {
		return nil
	}
	key := nsKey{a.Cluster, a.Namespace}
	p.mu.Lock()
	seen, ok := p.active[key]
	p.mu.Unlock()
	if ok && time.Since(seen) < activeTTL {
		return nil
	}
	obj, err := p.store.Get(ctx, a.Cluster, storage.Key{Resource: namespacesKey, Name: a.Namespace})
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, a.Namespace)
	}
	if err != nil {
		return err
	}
	var ns corev1.Namespace
	if err := json.Unmarshal(obj.Data, &ns); err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		e := apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, a.Name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: "namespace " + a.Namespace + " is being terminated", Field: "metadata.namespace"})
		return e
	}
	p.mu.Lock()
	if len(p.active) > 100000 {
		clear(p.active) // a bound, not an eviction policy: entries are cheap to refill
	}
	p.active[key] = time.Now()
	p.mu.Unlock()
	return nil
}
