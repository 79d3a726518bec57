package framework

import (
	"context"
	"reflect"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

const (
	clusterIndex   = "pgkube:cluster"   // cluster
	namespaceIndex = "pgkube:namespace" // cluster|namespace
)

// Informer caches one type of object from every cluster the manager serves
// and tells handlers about changes. client-go's SharedIndexInformer keys
// objects by namespace/name only, which would mix clusters up; this one is
// built from the same parts (a reflector feeding a DeltaFIFO, an indexer)
// with keys that include the cluster.
//
// T is a pointer type such as *corev1.Pod. Objects handed out are the
// cache's own: DeepCopy before changing them.
type Informer[T metav1.Object] struct {
	resource schema.GroupResource
	lw       cache.ListerWatcher
	example  runtime.Object
	indexer  cache.Indexer
	resync   time.Duration
	// cluster owns the objects that come without ClusterAnnotation: the
	// one cluster lw serves when it is not the wildcard view.
	cluster string

	mu       sync.RWMutex // handlers; held while they are called
	handlers []cache.ResourceEventHandler

	startMu sync.Mutex
	ctrl    cache.Controller
}

// NewInformer makes an informer over lw, whose lists and watches return
// objects of type T, of resource gr (used in NotFound errors). lw may serve
// one cluster (objects without ClusterAnnotation belong to the default
// cluster) or the wildcard view.
func NewInformer[T metav1.Object](gr schema.GroupResource, lw cache.ListerWatcher) *Informer[T] {
	var zero T
	example := reflect.New(reflect.TypeOf(zero).Elem()).Interface().(runtime.Object)
	return newInformer[T](gr, lw, example)
}

func newInformer[T metav1.Object](gr schema.GroupResource, lw cache.ListerWatcher, example runtime.Object) *Informer[T] {
	i := &Informer[T]{resource: gr, lw: lw, example: example, cluster: RootCluster}
	i.makeIndexer()
	return i
}

func (i *Informer[T]) makeIndexer() {
	i.indexer = cache.NewIndexer(cacheKey(i.cluster), cache.Indexers{
		clusterIndex: func(obj any) ([]string, error) {
			return []string{clusterOr(obj.(metav1.Object), i.cluster)}, nil
		},
		namespaceIndex: func(obj any) ([]string, error) {
			m := obj.(metav1.Object)
			return []string{clusterOr(m, i.cluster) + "|" + m.GetNamespace()}, nil
		},
	})
}

// InCluster says that lw serves one cluster, name, rather than the
// wildcard view: its objects are marked as that cluster's as they arrive.
// Call it before adding indexes or handlers.
func (i *Informer[T]) InCluster(name string) *Informer[T] {
	if name == "" {
		name = RootCluster
	}
	i.cluster = name
	i.makeIndexer()
	return i
}

// Resource is the resource the informer caches.
func (i *Informer[T]) Resource() schema.GroupResource { return i.resource }

// Get is the cached object, or a NotFound error.
func (i *Informer[T]) Get(cluster, ns, name string) (T, error) {
	var zero T
	o, ok, err := i.indexer.GetByKey(Key{Cluster: cluster, Namespace: ns, Name: name}.String())
	if err != nil {
		return zero, err
	}
	if !ok {
		return zero, apierrors.NewNotFound(i.resource, name)
	}
	return o.(T), nil
}

// List is the cached objects of one cluster matching sel (nil: all); ns ""
// is every namespace (and the only choice for cluster-scoped objects).
func (i *Informer[T]) List(cluster, ns string, sel labels.Selector) []T {
	var objs []any
	if ns == "" {
		objs, _ = i.indexer.ByIndex(clusterIndex, cluster)
	} else {
		objs, _ = i.indexer.ByIndex(namespaceIndex, cluster+"|"+ns)
	}
	return filter[T](objs, sel)
}

// ListAll is every cached object of every cluster.
func (i *Informer[T]) ListAll() []T { return filter[T](i.indexer.List(), nil) }

func filter[T metav1.Object](objs []any, sel labels.Selector) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		t := o.(T)
		if sel != nil && !sel.Empty() && !sel.Matches(labels.Set(t.GetLabels())) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// AddIndex adds an index: f gives the values obj is found under with
// ByIndex(name, value). Values are global across clusters; put the cluster
// in them when that matters (UIDs are unique already).
func (i *Informer[T]) AddIndex(name string, f func(T) []string) {
	err := i.indexer.AddIndexers(cache.Indexers{name: func(obj any) ([]string, error) {
		t, ok := obj.(T)
		if !ok {
			return nil, nil
		}
		return f(t), nil
	}})
	if err != nil {
		panic("framework: AddIndex " + name + ": " + err.Error())
	}
}

// ByIndex is the cached objects found under value in index name.
func (i *Informer[T]) ByIndex(name, value string) []T {
	objs, err := i.indexer.ByIndex(name, value)
	if err != nil {
		panic("framework: ByIndex " + name + ": " + err.Error())
	}
	return filter[T](objs, nil)
}

// AddEventHandler adds a handler. Handlers are called one event at a time,
// in order, and must not block (enqueue keys, don't work). A handler added
// after the informer started is first told about every cached object.
func (i *Informer[T]) AddEventHandler(h cache.ResourceEventHandler) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.startMu.Lock()
	running := i.ctrl != nil
	i.startMu.Unlock()
	if running {
		for _, o := range i.indexer.List() {
			h.OnAdd(o, true)
		}
	}
	i.handlers = append(i.handlers, h)
}

// HasSynced is true once the first complete list has been cached and
// handed to the handlers.
func (i *Informer[T]) HasSynced() bool {
	i.startMu.Lock()
	c := i.ctrl
	i.startMu.Unlock()
	return c != nil && c.HasSynced()
}

// ForgetCluster drops every cached object of a cluster, telling handlers
// they are deleted: the wildcard view sends no deletions for the objects of
// a logical cluster that is removed.
func (i *Informer[T]) ForgetCluster(cluster string) {
	i.mu.Lock() // excludes process: no event is handled meanwhile
	defer i.mu.Unlock()
	objs, _ := i.indexer.ByIndex(clusterIndex, cluster)
	for _, o := range objs {
		if err := i.indexer.Delete(o); err != nil {
			continue
		}
		for _, h := range i.handlers {
			h.OnDelete(o)
		}
	}
}

// Run fills the cache until ctx ends. Factory.Start calls it; a second call
// does nothing.
func (i *Informer[T]) Run(ctx context.Context) {
	i.startMu.Lock()
	if i.ctrl != nil {
		i.startMu.Unlock()
		return
	}
	fifo := cache.NewDeltaFIFOWithOptions(cache.DeltaFIFOOptions{
		KeyFunction:           cacheKey(i.cluster),
		KnownObjects:          i.indexer,
		EmitDeltaTypeReplaced: true,
	})
	i.ctrl = cache.New(&cache.Config{
		Queue:             fifo,
		ListerWatcher:     noWatchList{i.lw},
		ObjectType:        i.example,
		ObjectDescription: i.resource.String(),
		FullResyncPeriod:  i.resync,
		Process:           i.process,
	})
	c := i.ctrl
	i.startMu.Unlock()
	c.RunWithContext(ctx)
}

func (i *Informer[T]) process(obj any, isInInitialList bool) error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, d := range obj.(cache.Deltas) {
		markCluster(d.Object, i.cluster)
		switch d.Type {
		case cache.Sync, cache.Replaced, cache.Added, cache.Updated:
			old, exists, err := i.indexer.Get(d.Object)
			if err != nil {
				return err
			}
			if exists {
				if err := i.indexer.Update(d.Object); err != nil {
					return err
				}
				for _, h := range i.handlers {
					h.OnUpdate(old, d.Object)
				}
				continue
			}
			if err := i.indexer.Add(d.Object); err != nil {
				return err
			}
			for _, h := range i.handlers {
				h.OnAdd(d.Object, isInInitialList)
			}
		case cache.Deleted:
			if err := i.indexer.Delete(d.Object); err != nil {
				return err
			}
			for _, h := range i.handlers {
				h.OnDelete(d.Object)
			}
		}
	}
	return nil
}

// noWatchList makes reflectors use plain list and watch: the wildcard view
// may not stream initial lists.
type noWatchList struct{ cache.ListerWatcher }

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// ListWatchFuncs makes a ListerWatcher of a typed client's List and Watch,
// e.g. ListWatchFuncs(cs.CoreV1().Pods("").List, cs.CoreV1().Pods("").Watch).
func ListWatchFuncs[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, o)
		},
		WatchFuncWithContext: watchFn,
	}
}
