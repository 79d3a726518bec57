package admission

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
)

// ReadCacheTTL bounds how long a cached read is trusted. Writes through
// this process drop what they change at once (Committed); the TTL only
// covers writes made through other API server processes, much as
// upstream's informer-fed plugins lag behind storage.
const ReadCacheTTL = 2 * time.Second

// maxCacheEntries bounds the cache; past it the cache starts over.
const maxCacheEntries = 50000

// ReadCache serves the reads admission makes on every write: LimitRanges,
// ServiceAccounts, PriorityClasses, namespaces (for their labels), and
// the check whether a namespace has ResourceQuotas at all. Without it a
// pod create costs several storage round trips before it is written.
// Only the storage resources named at construction are cached; other
// reads go to the store.
type ReadCache struct {
	store     Reader
	resources []string

	mu    sync.Mutex
	gen   uint64 // bumped by every invalidation, so a read that raced one is not kept
	gets  map[cacheKey]cachedGet
	lists map[cacheKey]cachedList
}

type cacheKey struct {
	cluster string
	key     storage.Key // Name empty for a list
}

type cachedGet struct {
	obj     storage.Object
	missing bool
	at      time.Time
}

type cachedList struct {
	res storage.ListResult
	at  time.Time
}

// NewReadCache caches reads of the given storage resources (e.g.
// "/limitranges", "scheduling.k8s.io/priorityclasses"). Register
// Committed as a storage commit hook.
func NewReadCache(store Reader, resources ...string) *ReadCache {
	return &ReadCache{store: store, resources: resources, gets: map[cacheKey]cachedGet{}, lists: map[cacheKey]cachedList{}}
}

// AdmissionCachedResources are the storage resources the plugins here
// read on every write and may read from a ReadCache.
func AdmissionCachedResources() []string {
	return []string{namespacesKey, serviceAccountsKey, limitRangesKey, resourceQuotasKey, priorityClassesKey}
}

func (c *ReadCache) cached(resource string) bool { return slices.Contains(c.resources, resource) }

// Get reads one object, from the cache when fresh. A missing object is
// remembered too: most pods name the "default" account.
func (c *ReadCache) Get(ctx context.Context, cluster string, key storage.Key) (storage.Object, error) {
	if !c.cached(key.Resource) {
		return c.store.Get(ctx, cluster, key)
	}
	k := cacheKey{cluster, key}
	c.mu.Lock()
	e, ok := c.gets[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && time.Since(e.at) < ReadCacheTTL && !c.overtaken(cluster, key, e) {
		if e.missing {
			return storage.Object{}, storage.ErrNotFound
		}
		return e.obj, nil
	}
	o, err := c.store.Get(ctx, cluster, key)
	missing := errors.Is(err, storage.ErrNotFound)
	if err != nil && !missing {
		return o, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.gets) >= maxCacheEntries {
			clear(c.gets)
		}
		c.gets[k] = cachedGet{obj: o, missing: missing, at: time.Now()}
	}
	c.mu.Unlock()
	return o, err
}

// recentWrites is implemented by *storage.Store: the versions this process
// wrote last, known before their writers are answered.
type recentWrites interface {
	Recent(cluster string, key storage.Key) (storage.Object, bool)
}

// overtaken tells whether this process has written the object since it
// was cached. Committed alone can come too late: storage calls its hooks
// only after the writer has had its answer, so a client's next request
// could otherwise still be served the old state.
func (c *ReadCache) overtaken(cluster string, key storage.Key, e cachedGet) bool {
	r, ok := c.store.(recentWrites)
	if !ok {
		return false
	}
	o, ok := r.Recent(cluster, key)
	return ok && (e.missing || o.RV > e.obj.RV)
}

// List reads every object of a resource in a namespace, from the cache
// when fresh. Lists with selectors, paging or a resourceVersion go to the
// store. The result is shared: callers must not change it.
func (c *ReadCache) List(ctx context.Context, cluster string, opts storage.ListOptions) (storage.ListResult, error) {
	if !c.cached(opts.Resource) || opts.Labels != nil || opts.Fields != nil || opts.AtRV != 0 || opts.Limit != 0 ||
		opts.AfterName != "" || opts.AfterNamespace != "" || opts.Visit != nil {
		return c.store.List(ctx, cluster, opts)
	}
	k := cacheKey{cluster, storage.Key{Resource: opts.Resource, Namespace: opts.Namespace}}
	c.mu.Lock()
	e, ok := c.lists[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && time.Since(e.at) < ReadCacheTTL {
		return e.res, nil
	}
	res, err := c.store.List(ctx, cluster, opts)
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.lists) >= maxCacheEntries {
			clear(c.lists)
		}
		c.lists[k] = cachedList{res: res, at: time.Now()}
	}
	c.mu.Unlock()
	return res, nil
}

// Committed is a storage commit hook: a write drops the object and the
// lists it appears in.
func (c *ReadCache) Committed(cluster string, objs []storage.Object) {
	for _, o := range objs {
		if !c.cached(o.Resource) {
			continue
		}
		c.mu.Lock()
		c.gen++
		delete(c.gets, cacheKey{cluster, o.Key})
		delete(c.lists, cacheKey{cluster, storage.Key{Resource: o.Resource, Namespace: o.Namespace}})
		delete(c.lists, cacheKey{cluster, storage.Key{Resource: o.Resource}})
		c.mu.Unlock()
	}
}
