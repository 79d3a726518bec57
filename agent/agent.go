// Package agent is pgkube's node agent: a client of the API server that,
// like a kubelet, registers its Node (or, simulated, many Nodes), renews
// their Leases in kube-node-lease, runs the pods bound to them through a
// Runtime and reports their status, and finishes their deletion.
//
// The agent watches pods through the API server's wildcard view when it
// has one, so the pods of every logical cluster bound to its nodes run
// here (tenants share the root cluster's nodes); each pod's status is
// written to its own cluster.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Options configure an agent.
type Options struct {
	Config   *rest.Config
	NodeName string
	// Nodes the agent stands for: one is called NodeName; several (for
	// simulated scale tests) NodeName-0, NodeName-1, ...
	Nodes int
	// NodeIP is the node's InternalIP (one node; default: the host's).
	NodeIP  string
	Runtime Runtime

	Capacity corev1.ResourceList // default DefaultCapacity()
	Reserved corev1.ResourceList // capacity minus Reserved is allocatable
	Labels   map[string]string
	Taints   []corev1.Taint
	Zones    int // several nodes: label them topology.kubernetes.io/zone=zone-(i mod Zones)

	LeaseDuration  time.Duration // default 40s
	RenewInterval  time.Duration // default 10s
	StatusInterval time.Duration // node status refresh, default 1m
	Workers        int           // pods synced at once, default 16
	// Resync: every running pod is synced this often even when nothing
	// told the agent of a change (ConfigMap and Secret volumes, tokens
	// about to expire); 0: never, for runtimes with nothing to refresh.
	Resync time.Duration
	Events bool // record container Events (Pulled, Created, Started, ...)
	Log    *slog.Logger

	// CertDir, if set, is the cluster's certificate directory (that of
	// the API server, see ServingTLS): the agent then serves the API
	// server (logs, exec, attach, port forwarding; see Server) on the
	// node's IP and Port. Unset, it serves nothing and the nodes report
	// port 0.
	CertDir string
	Port    int // the server's port, 0 for any free one

	// EvictionHard: thresholds below which a node's pods are evicted
	// (see eviction.go); none, never.
	EvictionHard     []EvictionThreshold
	EvictionInterval time.Duration // how often memory is checked, default 10s
	// EvictionPressureTransitionPeriod: a node reports pressure until
	// this long after it was last found under a threshold, so that its
	// taint does not come and go with each eviction; default 5m, the
	// kubelet's.
	EvictionPressureTransitionPeriod time.Duration
}

func (o *Options) defaults() {
	if o.Nodes < 1 {
		o.Nodes = 1
	}
	if o.Capacity == nil {
		o.Capacity = DefaultCapacity()
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 40 * time.Second
	}
	if o.RenewInterval == 0 {
		o.RenewInterval = 10 * time.Second
	}
	if o.StatusInterval == 0 {
		o.StatusInterval = time.Minute
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.EvictionInterval == 0 {
		o.EvictionInterval = 10 * time.Second
	}
	if o.EvictionPressureTransitionPeriod == 0 {
		o.EvictionPressureTransitionPeriod = 5 * time.Minute
	}
}

// Agent is a running node agent.
type Agent struct {
	opts           Options
	log            *slog.Logger
	clients        *framework.Clients
	cluster        string // where its Nodes and Leases live
	recorder       *framework.EventRecorder
	bootID         string
	verMu          sync.Mutex
	runtimeVersion string
	rtErr          atomic.Pointer[string]

	nodes  map[string]*nodeState
	pods   *framework.Informer[*corev1.Pod]
	queue  *framework.Queue
	single string           // the node's name when there is one
	port   int32            // where the agent's server listens, 0 for none
	evict  *evictionManager // nil: no eviction thresholds

	mu      sync.Mutex
	keys    map[types.UID]framework.Key
	uids    map[framework.Key]types.UID
	written map[types.UID]*corev1.PodStatus // last status written, not yet seen back
}

type nodeState struct {
	spec     nodeSpec
	recorder *framework.EventRecorder

	mu    sync.Mutex
	node  *corev1.Node
	lease *coordinationv1.Lease
}

// Run registers the nodes and runs their pods until ctx ends.
func Run(ctx context.Context, o Options) error {
	o.defaults()
	if o.NodeName == "" {
		return errors.New("a node name is needed (--node-name)")
	}
	if o.Runtime == nil {
		return errors.New("no runtime")
	}
	cfg := rest.CopyConfig(o.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 1000, 2000
	}
	cfg.UserAgent = "pgkube-agent"
	clients, err := framework.NewClients(ctx, cfg)
	if err != nil {
		return err
	}
	a, err := New(ctx, o, clients)
	if err != nil {
		return err
	}
	defer a.recorder.Shutdown()
	return a.Run(ctx)
}

// New makes an agent over clients.
func New(ctx context.Context, o Options, clients *framework.Clients) (*Agent, error) {
	o.defaults()
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck
	a := &Agent{opts: o, log: o.Log, clients: clients, cluster: clients.DefaultCluster(),
		bootID: hex.EncodeToString(b), nodes: map[string]*nodeState{},
		keys: map[types.UID]framework.Key{}, uids: map[framework.Key]types.UID{}, written: map[types.UID]*corev1.PodStatus{}}
	if u, ok := o.Runtime.(ClientsUser); ok {
		u.UseClients(func(p *corev1.Pod) kubernetes.Interface { return clients.For(framework.ClusterOf(p)) })
	}
	// A runtime that is down (or not installed) leaves the node NotReady
	// saying why; the agent still registers it and keeps asking.
	a.checkRuntime(ctx)
	a.recorder = framework.NewEventRecorderFor(ctx, clients, corev1.EventSource{Component: "kubelet"})
	for _, ns := range nodeSpecs(o.NodeName, o.Nodes, o.NodeIP) {
		a.nodes[ns.Name] = &nodeState{spec: ns, recorder: a.recorder.For(corev1.EventSource{Component: "kubelet", Host: ns.Name})}
	}
	if o.Nodes == 1 {
		a.single = o.NodeName
	}
	a.evict = newEvictionManager(a)
	selector := "spec.nodeName!="
	if a.single != "" {
		selector = "spec.nodeName=" + a.single
	}
	lw := clients.ListWatch().CoreV1().Pods("")
	a.pods = framework.NewInformer[*corev1.Pod](corev1.Resource("pods"), &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtimeObject, error) {
			opts.FieldSelector = selector
			return lw.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watchInterface, error) {
			opts.FieldSelector = selector
			return lw.Watch(ctx, opts)
		},
	})
	a.queue = framework.NewQueue("agent", a.sync)
	a.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    a.enqueue,
		UpdateFunc: func(_, o any) { a.enqueue(o) },
		DeleteFunc: a.enqueue,
	})
	return a, nil
}

func (a *Agent) enqueue(o any) {
	m := framework.ObjectFromEvent(o)
	if m == nil {
		return
	}
	if p, ok := m.(*corev1.Pod); ok && a.nodes[p.Spec.NodeName] == nil {
		return
	}
	a.queue.EnqueueObject(o)
}

func (a *Agent) checkRuntime(ctx context.Context) {
	err := a.opts.Runtime.Ready(ctx)
	if err == nil && a.version() == "" {
		var v string
		if v, err = a.opts.Runtime.Version(ctx); err == nil {
			a.verMu.Lock()
			a.runtimeVersion = v
			a.verMu.Unlock()
		}
	}
	if err != nil {
		s := err.Error()
		if a.rtErr.Load() == nil {
			a.log.Warn("container runtime not ready: the node is NotReady", "runtime", a.opts.Runtime.Name(), "err", s)
		}
		a.rtErr.Store(&s)
		return
	}
	a.rtErr.Store(nil)
}

// version is the runtime's version, "" while it has not answered.
func (a *Agent) version() string {
	a.verMu.Lock()
	defer a.verMu.Unlock()
	return a.runtimeVersion
}

func (a *Agent) runtimeErr() error {
	if s := a.rtErr.Load(); s != nil {
		return errors.New(*s)
	}
	return nil
}

// Run registers the nodes, renews their Leases and runs their pods until
// ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	srv, err := a.newServer()
	if err != nil {
		return err
	}
	if err := a.registerAll(ctx); err != nil {
		return err
	}
	a.log.Info("nodes registered", "nodes", len(a.nodes), "runtime", a.opts.Runtime.Name(), "cluster", a.cluster)
	var wg sync.WaitGroup
	for _, ns := range a.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.heartbeat(ctx, ns)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.pods.Run(ctx)
	}()
	if rn, ok := a.opts.Runtime.(Runner); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rn.Run(ctx)
		}()
	}
	go func() {
		defer wg.Done()
		a.queue.Run(ctx, a.opts.Workers, a.pods.HasSynced)
	}()
	if a.evict != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.evict.run(ctx)
		}()
	}
	if srv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx); err != nil {
				a.log.Error("agent server stopped", "err", err)
			}
		}()
	}
	changes := a.opts.Runtime.Changes()
	var resync <-chan time.Time
	if a.opts.Resync > 0 {
		t := time.NewTicker(a.opts.Resync)
		defer t.Stop()
		resync = t.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-resync:
			for _, p := range a.pods.ListAll() {
				if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
					a.enqueue(p)
				}
			}
		case uid := <-changes:
			a.mu.Lock()
			k, ok := a.keys[uid]
			a.mu.Unlock()
			if ok {
				a.queue.Enqueue(k)
			}
		}
	}
	wg.Wait()
	return nil
}

// registerAll registers the nodes, a few at a time.
func (a *Agent) registerAll(ctx context.Context) error {
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(a.nodes))
	var wg sync.WaitGroup
	for _, ns := range a.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for {
				err := a.register(ctx, ns)
				if err == nil || ctx.Err() != nil {
					errs <- err
					return
				}
				a.log.Info("registering node failed; retrying", "node", ns.spec.Name, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// register creates the node or takes over the one there, then writes its
// status.
func (a *Agent) register(ctx context.Context, ns *nodeState) error {
	nodes := a.clients.For(a.cluster).CoreV1().Nodes()
	want := a.nodeObject(ns.spec)
	cur, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, err = nodes.Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur = cur.DeepCopy()
		framework.StripCluster(cur)
		changed := false
		for k, v := range want.Labels {
			if cur.Labels[k] != v {
				if cur.Labels == nil {
					cur.Labels = map[string]string{}
				}
				cur.Labels[k], changed = v, true
			}
		}
		for k, v := range want.Annotations {
			if cur.Annotations[k] != v {
				if cur.Annotations == nil {
					cur.Annotations = map[string]string{}
				}
				cur.Annotations[k], changed = v, true
			}
		}
		if cur.Spec.PodCIDR == "" {
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs, changed = want.Spec.PodCIDR, want.Spec.PodCIDRs, true
		}
		if changed {
			if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
	} else if err != nil {
		return err
	}
	cur = cur.DeepCopy()
	framework.StripCluster(cur)
	cur.Status = a.nodeStatus(ns.spec, &cur.Status)
	cur, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	ns.mu.Lock()
	ns.node = cur
	ns.mu.Unlock()
	return a.renewLease(ctx, ns)
}

// heartbeat renews the node's Lease every RenewInterval and refreshes its
// status every StatusInterval (or when the runtime's readiness changes).
func (a *Agent) heartbeat(ctx context.Context, ns *nodeState) {
	// Spread the nodes' renewals over the interval.
	jitter := time.Duration(ns.spec.index%100) * a.opts.RenewInterval / 100
	select {
	case <-ctx.Done():
		return
	case <-time.After(jitter):
	}
	t := time.NewTicker(a.opts.RenewInterval)
	defer t.Stop()
	lastStatus := time.Now()
	lastErr := a.runtimeErr()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.renewLease(ctx, ns); err != nil && ctx.Err() == nil {
			a.log.Info("lease not renewed", "node", ns.spec.Name, "err", err)
		}
		if ns.spec.index == 0 {
			a.checkRuntime(ctx)
		}
		rtErr := a.runtimeErr()
		if time.Since(lastStatus) >= a.opts.StatusInterval || (rtErr == nil) != (lastErr == nil) {
			if err := a.updateNodeStatus(ctx, ns); err != nil && ctx.Err() == nil {
				a.log.Info("node status not updated", "node", ns.spec.Name, "err", err)
			} else {
				lastStatus, lastErr = time.Now(), rtErr
			}
		}
	}
}

func (a *Agent) updateNodeStatus(ctx context.Context, ns *nodeState) error {
	nodes := a.clients.For(a.cluster).CoreV1().Nodes()
	cur, err := nodes.Get(ctx, ns.spec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return a.register(ctx, ns) // deleted: register again, as a kubelet does
	}
	if err != nil {
		return err
	}
	cur = cur.DeepCopy()
	framework.StripCluster(cur)
	cur.Status = a.nodeStatus(ns.spec, &cur.Status)
	cur, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err == nil {
		ns.mu.Lock()
		ns.node = cur
		ns.mu.Unlock()
	}
	return err
}

// renewLease creates or renews the node's Lease.
func (a *Agent) renewLease(ctx context.Context, ns *nodeState) error {
	leases := a.clients.For(a.cluster).CoordinationV1().Leases(NodeLeaseNamespace)
	ns.mu.Lock()
	node, cur := ns.node, ns.lease
	ns.mu.Unlock()
	if node == nil {
		return errors.New("node not registered")
	}
	want := leaseObject(node, a.opts.LeaseDuration)
	var out *coordinationv1.Lease
	var err error
	if cur == nil {
		cur, err = leases.Get(ctx, node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out, err = leases.Create(ctx, want, metav1.CreateOptions{})
			if err == nil {
				ns.mu.Lock()
				ns.lease = out
				ns.mu.Unlock()
			}
			return err
		}
		if err != nil {
			return err
		}
	}
	l := cur.DeepCopy()
	framework.StripCluster(l)
	l.Spec.HolderIdentity = want.Spec.HolderIdentity
	l.Spec.LeaseDurationSeconds = want.Spec.LeaseDurationSeconds
	l.Spec.RenewTime = want.Spec.RenewTime
	if len(l.OwnerReferences) == 0 || l.OwnerReferences[0].UID != node.UID {
		l.OwnerReferences = want.OwnerReferences
	}
	out, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	ns.mu.Lock()
	if err != nil {
		ns.lease = nil // read it again next time
	} else {
		ns.lease = out
	}
	ns.mu.Unlock()
	return err
}

// sync brings one pod's containers and status in line, as a kubelet's
// pod worker.
func (a *Agent) sync(ctx context.Context, k framework.Key) error {
	pod, err := a.pods.Get(k.Cluster, k.Namespace, k.Name)
	if apierrors.IsNotFound(err) {
		if uid := a.forget(k); uid != "" {
			return a.opts.Runtime.RemovePod(ctx, uid)
		}
		return nil
	}
	if err != nil {
		return err
	}
	ns := a.nodes[pod.Spec.NodeName]
	if ns == nil {
		return nil
	}
	if old := a.remember(k, pod.UID); old != "" {
		a.opts.Runtime.RemovePod(ctx, old) //nolint:errcheck // a pod of the same name before
	}
	node := ns.spec.Node
	if pod.DeletionTimestamp != nil {
		grace := 30 * time.Second
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		rs, done, err := a.opts.Runtime.KillPod(ctx, node, pod, grace)
		if err != nil {
			return err
		}
		a.record(ns, pod, rs.Events)
		if !done {
			// The containers are stopping. (A kubelet reports them
			// meanwhile; pgkube's API server would take a status write to
			// a terminating pod as the end of its deletion, see the
			// report, so the status waits for the end.)
			return nil
		}
		st := apiStatus(pod, &node, rs, true)
		if err := a.writeStatus(ctx, k, pod, &st); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		zero := int64(0)
		uid := pod.UID
		err = a.clients.For(k.Cluster).CoreV1().Pods(k.Namespace).Delete(ctx, k.Name,
			metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil // finished: nothing runs any more
	}
	if a.evict != nil {
		if ev := a.evict.pending(pod.UID); ev != nil {
			return a.evictPod(ctx, k, ns, pod, ev)
		}
	}
	rs, err := a.opts.Runtime.SyncPod(ctx, node, pod)
	if err != nil {
		return err
	}
	a.record(ns, pod, rs.Events)
	st := apiStatus(pod, &node, rs, false)
	return a.writeStatus(ctx, k, pod, &st)
}

// writeStatus writes st unless the pod has it already (or it was just
// written and the informer has not caught up).
func (a *Agent) writeStatus(ctx context.Context, k framework.Key, pod *corev1.Pod, st *corev1.PodStatus) error {
	if statusEqual(st, &pod.Status) {
		a.mu.Lock()
		delete(a.written, pod.UID)
		a.mu.Unlock()
		return nil
	}
	a.mu.Lock()
	last := a.written[pod.UID]
	a.mu.Unlock()
	if last != nil && statusEqual(st, last) {
		return nil
	}
	data, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	_, err = a.clients.For(k.Cluster).CoreV1().Pods(k.Namespace).Patch(ctx, k.Name, types.MergePatchType, data, metav1.PatchOptions{}, "status")
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.written[pod.UID] = st
	a.mu.Unlock()
	return nil
}

func (a *Agent) record(ns *nodeState, pod *corev1.Pod, evs []ContainerEvent) {
	if !a.opts.Events || len(evs) == 0 {
		return
	}
	cluster := framework.ClusterOf(pod)
	for _, e := range evs {
		ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion}
		if e.Container != "" {
			if e.Init {
				ref.FieldPath = "spec.initContainers{" + e.Container + "}"
			} else {
				ref.FieldPath = "spec.containers{" + e.Container + "}"
			}
		}
		ns.recorder.RefEventf(cluster, ref, e.Type, e.Reason, "%s", e.Message)
	}
}

func (a *Agent) remember(k framework.Key, uid types.UID) (replaced types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.uids[k]; ok && old != uid {
		delete(a.keys, old)
		delete(a.written, old)
		replaced = old
	}
	a.uids[k] = uid
	a.keys[uid] = k
	return replaced
}

func (a *Agent) forget(k framework.Key) types.UID {
	a.mu.Lock()
	defer a.mu.Unlock()
	uid := a.uids[k]
	delete(a.uids, k)
	delete(a.keys, uid)
	delete(a.written, uid)
	return uid
}

type (
	runtimeObject  = runtime.Object
	watchInterface = watch.Interface
)
