package gc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/framework"
)

// Name is the controller's name in --controllers.
const Name = "garbagecollector"

// ignored are resources the collector never watches, as upstream.
var ignored = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

const ownerIndex = "gc:owner" // "cluster|owner uid" for each ownerReference

var crdResource = apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")

// builtinScope is the scope of the monitors of built-in resources: the
// wildcard view (every cluster) when the server has one, else the manager's
// cluster. The monitors of a cluster's custom resources have the cluster's
// name as their scope.
const builtinScope = ""

// monitor caches the metadata of one resource in one scope.
type monitor struct {
	scope      string
	gvr        schema.GroupVersionResource
	namespaced bool
	inf        *framework.Informer[*metav1.PartialObjectMetadata]
	cancel     context.CancelFunc
}

// kindInfo is what an ownerReference's kind maps to.
type kindInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// Controller is the garbage collector.
type Controller struct {
	clients *framework.Clients
	crds    *framework.Informer[*unstructured.Unstructured]
	workers int
	c       *collector
	queue   workqueue.TypedRateLimitingInterface[item]
	disco   *framework.Queue // clusters whose custom resources to discover

	mu           sync.RWMutex
	ctx          context.Context                                     // monitors run until it ends
	monitors     map[string]map[schema.GroupVersionResource]*monitor // scope → resource
	builtin      map[schema.GroupKind]kindInfo
	custom       map[string]map[schema.GroupKind]kindInfo // cluster → its custom resources
	builtinScope string

	// rediscover asks again for a cluster's resources when an owner's kind
	// is unknown, at most this often per cluster.
	rediscoverMu sync.Mutex
	rediscovered map[string]time.Time
}

// New makes the garbage collector.
func New(c *framework.Context) (framework.Runnable, error) {
	g := &Controller{
		clients: c.Clients, crds: c.Factory.ForResource(crdResource), workers: c.Workers,
		monitors: map[string]map[schema.GroupVersionResource]*monitor{},
		custom:   map[string]map[schema.GroupKind]kindInfo{}, rediscovered: map[string]time.Time{},
	}
	if g.workers <= 0 {
		g.workers = 5
	}
	g.workers *= 4 // upstream runs 20 by default: deletions wait on the API
	rl := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[item](5*time.Millisecond, time.Minute),
		&workqueue.TypedBucketRateLimiter[item]{Limiter: rate.NewLimiter(rate.Limit(100), 500)},
	)
	g.queue = workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[item]{Name: Name})
	g.c = &collector{store: g, mapper: g, api: &dynamicAPI{clients: c.Clients}, enqueue: g.queue.Add,
		enqueueAfter: g.queue.AddAfter, orphanSettle: time.Second, absent: newAbsentOwners()}
	g.disco = framework.NewQueue(Name+"-discovery", func(ctx context.Context, k framework.Key) error {
		return g.discoverCustom(ctx, k.Cluster)
	})
	g.crds.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    g.crdChanged,
		UpdateFunc: func(_, o any) { g.crdChanged(o) },
		DeleteFunc: g.crdChanged,
	})
	return g, nil
}

func (g *Controller) crdChanged(obj any) {
	if k, ok := framework.KeyFromEvent(obj); ok {
		g.disco.EnqueueAfter(framework.Key{Cluster: k.Cluster, Name: "-"}, 500*time.Millisecond)
	}
}

// Run implements framework.Runnable.
func (g *Controller) Run(ctx context.Context) {
	defer utilruntime.HandleCrashWithContext(ctx)
	defer g.queue.ShutDown()
	logger := klog.FromContext(ctx).WithValues("controller", Name)
	g.mu.Lock()
	g.ctx = ctx
	g.mu.Unlock()
	// The built-in resources, the same in every cluster.
	for {
		err := g.discoverBuiltin(ctx)
		if err == nil {
			break
		}
		logger.Info("Discovery of the built-in resources failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	// Custom resources of the clusters that have CRDs, before the first
	// decision.
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), g.crds.HasSynced) {
		return
	}
	clusters := map[string]bool{}
	for _, u := range g.crds.ListAll() {
		clusters[framework.ClusterOf(u)] = true
	}
	for cluster := range clusters {
		if err := g.discoverCustom(ctx, cluster); err != nil {
			logger.Info("Discovery of custom resources failed, will retry", "cluster", cluster, "err", err)
			g.disco.EnqueueAfter(framework.Key{Cluster: cluster, Name: "-"}, time.Second)
		}
	}
	go g.disco.Run(ctx, 1)
	if g.clients.Wildcard() && g.clients.DefaultCluster() == framework.RootCluster {
		go g.followClusters(ctx)
	}
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), g.allSynced) {
		return
	}
	logger.Info("Garbage collector synced", "resources", g.monitorCount())
	var wg sync.WaitGroup
	for range g.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for g.next(ctx) {
				}
			}, time.Second)
		}()
	}
	<-ctx.Done()
	g.queue.ShutDown()
	wg.Wait()
}

func (g *Controller) next(ctx context.Context) bool {
	it, quit := g.queue.Get()
	if quit {
		return false
	}
	defer g.queue.Done(it)
	err := g.c.sync(ctx, it)
	if err == nil {
		g.queue.Forget(it)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	klog.FromContext(ctx).V(2).Info("Garbage collector will retry", "item", it.String(), "err", err.Error())
	g.queue.AddRateLimited(it)
	return true
}

// discoverBuiltin finds the resources every cluster serves and watches
// those that can be listed, watched and deleted.
func (g *Controller) discoverBuiltin(ctx context.Context) error {
	cluster := g.clients.DefaultCluster()
	custom, err := g.crdResources(ctx, cluster)
	if err != nil {
		return err
	}
	lists, err := g.clients.For(cluster).Discovery().ServerPreferredResources()
	if len(lists) == 0 && err != nil {
		return err
	}
	kinds, watchable := fromDiscovery(lists, func(gr schema.GroupResource) bool { return !custom[gr] })
	g.mu.Lock()
	g.builtin = kinds
	g.mu.Unlock()
	g.setMonitors(builtinScope, watchable)
	return nil
}

// crdResources are the group/resources the CRDs of cluster define, read
// from the API (the CRD informer may not have synced yet).
func (g *Controller) crdResources(ctx context.Context, cluster string) (map[schema.GroupResource]bool, error) {
	l, err := g.clients.Dynamic(cluster).Resource(crdResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[schema.GroupResource]bool{}
	for _, u := range l.Items {
		if gr, ok := crdGroupResource(&u); ok {
			out[gr] = true
		}
	}
	return out, nil
}

func crdGroupResource(u *unstructured.Unstructured) (schema.GroupResource, bool) {
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
	return schema.GroupResource{Group: group, Resource: plural}, group != "" && plural != ""
}

// fromDiscovery maps kinds to resources and lists the resources to watch,
// keeping those keep accepts.
func fromDiscovery(lists []*metav1.APIResourceList, keep func(schema.GroupResource) bool) (map[schema.GroupKind]kindInfo, map[schema.GroupVersionResource]kindInfo) {
	kinds := map[schema.GroupKind]kindInfo{}
	watchable := map[schema.GroupVersionResource]kindInfo{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !keep(schema.GroupResource{Group: gv.Group, Resource: r.Name}) {
				continue
			}
			gvr := gv.WithResource(r.Name)
			ki := kindInfo{gvr: gvr, namespaced: r.Namespaced}
			kinds[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = ki
			if ignored[gvr.GroupResource()] {
				continue
			}
			if slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") && slices.Contains(r.Verbs, "delete") {
				watchable[gvr] = ki
			}
		}
	}
	return kinds, watchable
}

// discoverCustom finds the custom resources of one cluster (its CRDs'
// resources as discovery serves them) and watches them in that cluster.
func (g *Controller) discoverCustom(ctx context.Context, cluster string) error {
	defined := map[schema.GroupResource]bool{}
	for _, u := range g.crds.List(cluster, "", nil) {
		if gr, ok := crdGroupResource(u); ok {
			defined[gr] = true
		}
	}
	var kinds map[schema.GroupKind]kindInfo
	var watchable map[schema.GroupVersionResource]kindInfo
	if len(defined) > 0 {
		lists, err := g.clients.For(cluster).Discovery().ServerPreferredResources()
		if len(lists) == 0 && err != nil {
			return err
		}
		kinds, watchable = fromDiscovery(lists, func(gr schema.GroupResource) bool { return defined[gr] })
	}
	g.mu.Lock()
	if len(kinds) == 0 {
		delete(g.custom, cluster)
	} else {
		g.custom[cluster] = kinds
	}
	g.mu.Unlock()
	g.setMonitors(cluster, watchable)
	return nil
}

// logicalClusters are the root cluster's tenants.
var logicalClusters = schema.GroupVersionResource{Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"}

// followClusters forgets a tenant once its LogicalCluster is gone: the
// wildcard view sends no deletions for the objects of a removed cluster,
// and its own watches fail from then on.
func (g *Controller) followClusters(ctx context.Context) {
	r := g.clients.Dynamic(framework.RootCluster).Resource(logicalClusters)
	inf := framework.NewInformer[*unstructured.Unstructured](logicalClusters.GroupResource(), &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: r.Watch,
	})
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) {
		if k, ok := framework.KeyFromEvent(o); ok && k.Name != framework.RootCluster {
			g.forgetCluster(k.Name)
		}
	}})
	inf.Run(ctx)
}

// forgetCluster stops watching a removed cluster's custom resources and
// drops what the built-in monitors hold of it.
func (g *Controller) forgetCluster(cluster string) {
	g.setMonitors(cluster, nil)
	g.mu.Lock()
	delete(g.custom, cluster)
	var builtins []*monitor
	for _, m := range g.monitors[builtinScope] {
		builtins = append(builtins, m)
	}
	g.mu.Unlock()
	for _, m := range builtins {
		// Informers that can forget a cluster do (deleting its objects
		// from the cache, which the handlers hear as deletions).
		if f, ok := any(m.inf).(interface{ ForgetCluster(string) }); ok {
			f.ForgetCluster(cluster)
		}
	}
	g.rediscoverMu.Lock()
	delete(g.rediscovered, cluster)
	g.rediscoverMu.Unlock()
}

// maybeRediscover asks for a cluster's custom resources again, when an
// ownerReference names a kind it does not know.
func (g *Controller) maybeRediscover(cluster string) {
	g.rediscoverMu.Lock()
	defer g.rediscoverMu.Unlock()
	if time.Since(g.rediscovered[cluster]) < 10*time.Second {
		return
	}
	g.rediscovered[cluster] = time.Now()
	g.disco.Enqueue(framework.Key{Cluster: cluster, Name: "-"})
}

// setMonitors makes the monitors of scope those of want: new ones start,
// gone ones stop.
func (g *Controller) setMonitors(scope string, want map[schema.GroupVersionResource]kindInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	have := g.monitors[scope]
	if have == nil {
		have = map[schema.GroupVersionResource]*monitor{}
		g.monitors[scope] = have
	}
	for gvr, m := range have {
		if _, ok := want[gvr]; !ok {
			m.cancel()
			delete(have, gvr)
		}
	}
	for gvr, ki := range want {
		if _, ok := have[gvr]; ok {
			continue
		}
		m, err := g.newMonitor(scope, ki)
		if err != nil {
			utilruntime.HandleError(fmt.Errorf("garbage collector: watching %s in %s: %w", gvr, scope, err))
			continue
		}
		have[gvr] = m
		ctx, cancel := context.WithCancel(g.ctx)
		m.cancel = cancel
		go m.inf.Run(ctx)
	}
	if len(have) == 0 {
		delete(g.monitors, scope)
	}
}

// newMonitor makes the metadata informer of one resource in a scope.
func (g *Controller) newMonitor(scope string, ki kindInfo) (*monitor, error) {
	var cfg *rest.Config
	cluster := scope // whose objects the monitor sees; "" for all
	switch {
	case scope == builtinScope && g.clients.Wildcard():
		cfg = g.clients.Config(framework.RootCluster)
		cfg.Host = strings.TrimSuffix(cfg.Host, "/") + framework.ClusterURLPrefix + "*"
	case scope == builtinScope:
		cluster = g.clients.DefaultCluster()
		cfg = g.clients.Config(cluster)
	default:
		cfg = g.clients.Config(cluster)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r := mc.Resource(ki.gvr)
	// The collector keeps no managed fields (they are most of the
	// metadata), and marks the objects of one cluster's own watch with
	// their cluster, as the wildcard view does.
	mark := func(o runtime.Object) {
		m, ok := o.(metav1.Object)
		if !ok {
			return
		}
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); cluster != "" && a[framework.ClusterAnnotation] != cluster {
			a2 := make(map[string]string, len(a)+1)
			for k, v := range a {
				a2[k] = v
			}
			a2[framework.ClusterAnnotation] = cluster
			m.SetAnnotations(a2)
		}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := r.List(ctx, o)
			if err != nil {
				return nil, err
			}
			for i := range l.Items {
				mark(&l.Items[i])
			}
			return l, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := r.Watch(ctx, o)
			if err != nil {
				return nil, err
			}
			return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
				mark(e.Object)
				return e, true
			}), nil
		},
	}
	inf := framework.NewInformer[*metav1.PartialObjectMetadata](ki.gvr.GroupResource(), lw)
	inf.AddIndex(ownerIndex, func(o *metav1.PartialObjectMetadata) []string {
		refs := o.GetOwnerReferences()
		if len(refs) == 0 {
			return nil
		}
		cluster := framework.ClusterOf(o)
		out := make([]string, len(refs))
		for i, r := range refs {
			out[i] = cluster + "|" + string(r.UID)
		}
		return out
	})
	m := &monitor{scope: scope, gvr: ki.gvr, namespaced: ki.namespaced, inf: inf}
	inf.AddEventHandler(&handler{g: g, gvr: ki.gvr})
	return m, nil
}

func (g *Controller) monitorCount() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := 0
	for _, ms := range g.monitors {
		n += len(ms)
	}
	return n
}

func (g *Controller) allSynced() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, ms := range g.monitors {
		for _, m := range ms {
			if !m.inf.HasSynced() {
				return false
			}
		}
	}
	return true
}

// scopes are the monitor scopes that cover cluster.
func (g *Controller) scopes(cluster string) []map[schema.GroupVersionResource]*monitor {
	var out []map[schema.GroupVersionResource]*monitor
	if ms := g.monitors[cluster]; ms != nil && cluster != builtinScope {
		out = append(out, ms)
	}
	if g.clients.Wildcard() || cluster == g.clients.DefaultCluster() {
		if ms := g.monitors[builtinScope]; ms != nil {
			out = append(out, ms)
		}
	}
	return out
}

// store

// Get implements store.
func (g *Controller) Get(cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, ms := range g.scopes(cluster) {
		if m := ms[gvr]; m != nil {
			if o, err := m.inf.Get(cluster, ns, name); err == nil {
				return o, true
			}
			return nil, false
		}
	}
	return nil, false
}

// Dependents implements store.
func (g *Controller) Dependents(cluster string, uid types.UID) []node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []node
	v := cluster + "|" + string(uid)
	for _, ms := range g.scopes(cluster) {
		for gvr, m := range ms {
			for _, o := range m.inf.ByIndex(ownerIndex, v) {
				out = append(out, node{item: itemOf(o, gvr), obj: o})
			}
		}
	}
	return out
}

// Synced implements store.
func (g *Controller) Synced(cluster string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, ms := range g.scopes(cluster) {
		for _, m := range ms {
			if !m.inf.HasSynced() {
				return false
			}
		}
	}
	return true
}

func itemOf(o metav1.Object, gvr schema.GroupVersionResource) item {
	return item{Cluster: framework.ClusterOf(o), Resource: gvr, Namespace: o.GetNamespace(), Name: o.GetName(), UID: o.GetUID()}
}

// mapper

// Resource implements mapper.
func (g *Controller) Resource(cluster, apiVersion, kind string) (schema.GroupVersionResource, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: kind}
	g.mu.RLock()
	ki, ok := g.custom[cluster][gk]
	if !ok {
		ki, ok = g.builtin[gk]
	}
	g.mu.RUnlock()
	if !ok {
		g.maybeRediscover(cluster)
		return schema.GroupVersionResource{}, false, fmt.Errorf("no resource of kind %s in cluster %s", gk, cluster)
	}
	return ki.gvr, ki.namespaced, nil
}

// ownerItem is the item of an owner an ownerReference names, if its kind
// is known.
func (g *Controller) ownerItem(cluster, ns string, ref metav1.OwnerReference) (item, bool) {
	gvr, namespaced, err := g.Resource(cluster, ref.APIVersion, ref.Kind)
	if err != nil {
		return item{}, false
	}
	if !namespaced {
		ns = ""
	}
	return item{Cluster: cluster, Resource: gvr, Namespace: ns, Name: ref.Name, UID: ref.UID}, true
}

// handler turns a monitor's events into items to look at.
type handler struct {
	g   *Controller
	gvr schema.GroupVersionResource
}

func (h *handler) OnAdd(obj any, _ bool) {
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	if len(o.OwnerReferences) > 0 || o.DeletionTimestamp != nil {
		h.g.queue.Add(itemOf(o, h.gvr))
	}
}

func (h *handler) OnUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*metav1.PartialObjectMetadata)
	cur, ok2 := newObj.(*metav1.PartialObjectMetadata)
	if !ok1 || !ok2 {
		return
	}
	refsChanged := !equalRefs(old.OwnerReferences, cur.OwnerReferences)
	deletion := (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) || !slices.Equal(old.Finalizers, cur.Finalizers)
	if refsChanged || deletion || old.UID != cur.UID {
		h.g.queue.Add(itemOf(cur, h.gvr))
	}
	if refsChanged {
		// Owners this object stopped blocking may be able to go.
		cluster := framework.ClusterOf(cur)
		for _, r := range old.OwnerReferences {
			if !blocks(r) {
				continue
			}
			if now, ok := refTo(cur, r.UID); ok && blocks(now) {
				continue
			}
			if it, ok := h.g.ownerItem(cluster, cur.Namespace, r); ok {
				h.g.queue.Add(it)
			}
		}
	}
}

func (h *handler) OnDelete(obj any) {
	m := framework.ObjectFromEvent(obj)
	if m == nil {
		return
	}
	// Its dependents may be garbage now; owners waiting for it may go.
	h.g.queue.Add(itemOf(m, h.gvr))
	cluster := framework.ClusterOf(m)
	for _, r := range m.GetOwnerReferences() {
		if it, ok := h.g.ownerItem(cluster, m.GetNamespace(), r); ok {
			h.g.queue.Add(it)
		}
	}
}

func equalRefs(a, b []metav1.OwnerReference) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.OwnerReference) bool {
		return x.UID == y.UID && x.Name == y.Name && x.Kind == y.Kind && x.APIVersion == y.APIVersion &&
			blocks(x) == blocks(y) && (x.Controller != nil && *x.Controller) == (y.Controller != nil && *y.Controller)
	})
}

// dynamicAPI reads and writes through the dynamic client of each cluster.
type dynamicAPI struct{ clients *framework.Clients }

func (d *dynamicAPI) Get(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error) {
	u, err := d.clients.Dynamic(cluster).Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (d *dynamicAPI) Delete(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, opts metav1.DeleteOptions) error {
	return d.clients.Dynamic(cluster).Resource(gvr).Namespace(ns).Delete(ctx, name, opts)
}

func (d *dynamicAPI) MergePatch(ctx context.Context, cluster string, gvr schema.GroupVersionResource, ns, name string, patch []byte) error {
	_, err := d.clients.Dynamic(cluster).Resource(gvr).Namespace(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
