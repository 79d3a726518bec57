package framework

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

type runnable interface {
	Run(ctx context.Context)
	HasSynced() bool
	ForgetCluster(cluster string)
}

// Factory makes one informer per resource, shared by every controller:
// each is created on first use and runs from the next Start.
type Factory struct {
	clients *Clients
	resync  time.Duration

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]runnable
	started   map[schema.GroupVersionResource]bool
}

// NewFactory makes a factory whose informers list and watch with
// clients.ListWatch(); resync, if not zero, replays every cached object to
// the handlers that often.
func NewFactory(clients *Clients, resync time.Duration) *Factory {
	return &Factory{clients: clients, resync: resync,
		informers: map[schema.GroupVersionResource]runnable{}, started: map[schema.GroupVersionResource]bool{}}
}

// Start runs the informers not yet running, until ctx ends.
func (f *Factory) Start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r, inf := range f.informers {
		if !f.started[r] {
			f.started[r] = true
			go inf.Run(ctx)
		}
	}
}

// WaitForCacheSync waits until every started informer has synced; false if
// ctx ended first.
func (f *Factory) WaitForCacheSync(ctx context.Context) bool {
	f.mu.Lock()
	var synced []cache.InformerSynced
	for r, inf := range f.informers {
		if f.started[r] {
			synced = append(synced, inf.HasSynced)
		}
	}
	f.mu.Unlock()
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

// ForgetCluster drops a removed cluster's objects from every informer (see
// Informer.ForgetCluster).
func (f *Factory) ForgetCluster(cluster string) {
	f.mu.Lock()
	infs := make([]runnable, 0, len(f.informers))
	for _, inf := range f.informers {
		infs = append(infs, inf)
	}
	f.mu.Unlock()
	for _, inf := range infs {
		inf.ForgetCluster(cluster)
	}
}

// lister is what a typed client of one resource offers informers.
type lister[L runtime.Object] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func (f *Factory) lw() kubernetes.Interface { return f.clients.ListWatch() }

// cluster owns the objects of lists and watches that name none: the
// kubeconfig's, unless they are the wildcard view's.
func (f *Factory) cluster() string {
	if f.clients.Wildcard() {
		return RootCluster // every object is marked
	}
	return f.clients.DefaultCluster()
}

func typed[T metav1.Object, L runtime.Object](f *Factory, gvr schema.GroupVersionResource, l lister[L]) *Informer[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inf, ok := f.informers[gvr]; ok {
		return inf.(*Informer[T])
	}
	inf := NewInformer[T](gvr.GroupResource(), ListWatchFuncs(l.List, l.Watch)).InCluster(f.cluster())
	inf.resync = f.resync
	f.informers[gvr] = inf
	return inf
}

// ForResource is an informer of any resource through the dynamic client.
func (f *Factory) ForResource(gvr schema.GroupVersionResource) *Informer[*unstructured.Unstructured] {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inf, ok := f.informers[gvr]; ok {
		return inf.(*Informer[*unstructured.Unstructured])
	}
	r := f.clients.DynamicListWatch().Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: r.Watch,
	}
	inf := newInformer[*unstructured.Unstructured](gvr.GroupResource(), lw, &unstructured.Unstructured{}).InCluster(f.cluster())
	inf.resync = f.resync
	f.informers[gvr] = inf
	return inf
}

var (
	core   = corev1.SchemeGroupVersion.WithResource
	apps   = appsv1.SchemeGroupVersion.WithResource
	batch  = batchv1.SchemeGroupVersion.WithResource
	coord  = coordinationv1.SchemeGroupVersion.WithResource
	disco  = discoveryv1.SchemeGroupVersion.WithResource
	policy = policyv1.SchemeGroupVersion.WithResource
	stor   = storagev1.SchemeGroupVersion.WithResource
)

// Typed informers: one statement each.

func (f *Factory) Pods() *Informer[*corev1.Pod] {
	return typed[*corev1.Pod, *corev1.PodList](f, core("pods"), f.lw().CoreV1().Pods(""))
}
func (f *Factory) ReplicaSets() *Informer[*appsv1.ReplicaSet] {
	return typed[*appsv1.ReplicaSet, *appsv1.ReplicaSetList](f, apps("replicasets"), f.lw().AppsV1().ReplicaSets(""))
}
func (f *Factory) ReplicationControllers() *Informer[*corev1.ReplicationController] {
	return typed[*corev1.ReplicationController, *corev1.ReplicationControllerList](f, core("replicationcontrollers"), f.lw().CoreV1().ReplicationControllers(""))
}
func (f *Factory) Deployments() *Informer[*appsv1.Deployment] {
	return typed[*appsv1.Deployment, *appsv1.DeploymentList](f, apps("deployments"), f.lw().AppsV1().Deployments(""))
}
func (f *Factory) StatefulSets() *Informer[*appsv1.StatefulSet] {
	return typed[*appsv1.StatefulSet, *appsv1.StatefulSetList](f, apps("statefulsets"), f.lw().AppsV1().StatefulSets(""))
}
func (f *Factory) DaemonSets() *Informer[*appsv1.DaemonSet] {
	return typed[*appsv1.DaemonSet, *appsv1.DaemonSetList](f, apps("daemonsets"), f.lw().AppsV1().DaemonSets(""))
}
func (f *Factory) Jobs() *Informer[*batchv1.Job] {
	return typed[*batchv1.Job, *batchv1.JobList](f, batch("jobs"), f.lw().BatchV1().Jobs(""))
}
func (f *Factory) CronJobs() *Informer[*batchv1.CronJob] {
	return typed[*batchv1.CronJob, *batchv1.CronJobList](f, batch("cronjobs"), f.lw().BatchV1().CronJobs(""))
}
func (f *Factory) Services() *Informer[*corev1.Service] {
	return typed[*corev1.Service, *corev1.ServiceList](f, core("services"), f.lw().CoreV1().Services(""))
}
func (f *Factory) Endpoints() *Informer[*corev1.Endpoints] {
	return typed[*corev1.Endpoints, *corev1.EndpointsList](f, core("endpoints"), f.lw().CoreV1().Endpoints(""))
}
func (f *Factory) EndpointSlices() *Informer[*discoveryv1.EndpointSlice] {
	return typed[*discoveryv1.EndpointSlice, *discoveryv1.EndpointSliceList](f, disco("endpointslices"), f.lw().DiscoveryV1().EndpointSlices(""))
}
func (f *Factory) Namespaces() *Informer[*corev1.Namespace] {
	return typed[*corev1.Namespace, *corev1.NamespaceList](f, core("namespaces"), f.lw().CoreV1().Namespaces())
}
func (f *Factory) ServiceAccounts() *Informer[*corev1.ServiceAccount] {
	return typed[*corev1.ServiceAccount, *corev1.ServiceAccountList](f, core("serviceaccounts"), f.lw().CoreV1().ServiceAccounts(""))
}
func (f *Factory) ConfigMaps() *Informer[*corev1.ConfigMap] {
	return typed[*corev1.ConfigMap, *corev1.ConfigMapList](f, core("configmaps"), f.lw().CoreV1().ConfigMaps(""))
}
func (f *Factory) Nodes() *Informer[*corev1.Node] {
	return typed[*corev1.Node, *corev1.NodeList](f, core("nodes"), f.lw().CoreV1().Nodes())
}
func (f *Factory) Leases() *Informer[*coordinationv1.Lease] {
	return typed[*coordinationv1.Lease, *coordinationv1.LeaseList](f, coord("leases"), f.lw().CoordinationV1().Leases(""))
}
func (f *Factory) PersistentVolumes() *Informer[*corev1.PersistentVolume] {
	return typed[*corev1.PersistentVolume, *corev1.PersistentVolumeList](f, core("persistentvolumes"), f.lw().CoreV1().PersistentVolumes())
}
func (f *Factory) PersistentVolumeClaims() *Informer[*corev1.PersistentVolumeClaim] {
	return typed[*corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaimList](f, core("persistentvolumeclaims"), f.lw().CoreV1().PersistentVolumeClaims(""))
}
func (f *Factory) ControllerRevisions() *Informer[*appsv1.ControllerRevision] {
	return typed[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList](f, apps("controllerrevisions"), f.lw().AppsV1().ControllerRevisions(""))
}
func (f *Factory) PodDisruptionBudgets() *Informer[*policyv1.PodDisruptionBudget] {
	return typed[*policyv1.PodDisruptionBudget, *policyv1.PodDisruptionBudgetList](f, policy("poddisruptionbudgets"), f.lw().PolicyV1().PodDisruptionBudgets(""))
}
func (f *Factory) StorageClasses() *Informer[*storagev1.StorageClass] {
	return typed[*storagev1.StorageClass, *storagev1.StorageClassList](f, stor("storageclasses"), f.lw().StorageV1().StorageClasses())
}
