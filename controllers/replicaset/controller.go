// Package replicaset is the ReplicaSet and ReplicationController
// controller: it keeps spec.replicas pods matching the selector, adopting
// orphans and releasing pods that stop matching, creating in slow-start
// batches and deleting the least valuable pods first, and reports status.
package replicaset

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/claim"
	"github.com/pgkube/pgkube/controllers/framework"
)

// BurstReplicas caps the creations or deletions of one sync.
const BurstReplicas = 500

// Controller is one ReplicaSet or ReplicationController controller.
type Controller struct {
	kind     kind
	pods     *framework.Informer[*corev1.Pod]
	clients  *framework.Clients
	recorder framework.Recorder
	now      func() time.Time
	workers  int
	exp      *Expectations
	queue    *framework.Queue
	ownerIdx string
}

// NewReplicaSet makes the ReplicaSet controller.
func NewReplicaSet(c *framework.Context) (framework.Runnable, error) {
	return newController(c, rsKind{inf: c.Factory.ReplicaSets(), clients: c.Clients}), nil
}

// NewReplicationController makes the ReplicationController controller.
func NewReplicationController(c *framework.Context) (framework.Runnable, error) {
	return newController(c, rcKind{inf: c.Factory.ReplicationControllers(), clients: c.Clients}), nil
}

func newController(c *framework.Context, k kind) *Controller {
	now := time.Now
	if c.Clock != nil {
		now = c.Clock.Now
	}
	rc := &Controller{
		kind: k, pods: c.Factory.Pods(), clients: c.Clients, recorder: c.Recorder,
		now: now, workers: c.Workers, exp: NewExpectations(now),
		ownerIdx: "replicaset:owner:" + k.gvk().Kind,
	}
	if rc.workers <= 0 {
		rc.workers = 5
	}
	rc.queue = framework.NewQueue(k.name(), rc.sync)
	kindName := k.gvk().Kind
	rc.pods.AddIndex(rc.ownerIdx, func(p *corev1.Pod) []string {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
			if ref.Kind == kindName {
				return []string{string(ref.UID)}
			}
			return nil
		}
		return []string{orphanIndexValue(framework.ClusterOf(p), p.Namespace)}
	})
	k.addHandler(rc.queue.Handler())
	rc.pods.AddEventHandler(podHandler{rc})
	return rc
}

func orphanIndexValue(cluster, ns string) string { return "orphan|" + cluster + "|" + ns }

// Run implements framework.Runnable.
func (rc *Controller) Run(ctx context.Context) {
	rc.queue.Run(ctx, rc.workers, rc.kind.hasSynced, rc.pods.HasSynced)
}

// podKey names a pod in expectations.
func podKey(p *corev1.Pod) string { return framework.KeyOf(p).String() }

// resolve is the controller a pod's controllerRef names, if it exists
// with that uid.
func (rc *Controller) resolve(cluster, ns string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref == nil || ref.Kind != rc.kind.gvk().Kind {
		return nil
	}
	rs, _, err := rc.kind.get(cluster, ns, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// selecting are the controllers of the pod's namespace whose selector
// matches it.
func (rc *Controller) selecting(p *corev1.Pod) []*appsv1.ReplicaSet {
	if len(p.Labels) == 0 {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range rc.kind.list(framework.ClusterOf(p), p.Namespace) {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func (rc *Controller) enqueue(rs *appsv1.ReplicaSet) { rc.queue.Enqueue(framework.KeyOf(rs)) }

// sync reconciles one controller.
func (rc *Controller) sync(ctx context.Context, key framework.Key) error {
	logger := klog.FromContext(ctx)
	cached, obj, err := rc.kind.get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		rc.exp.Forget(key.String())
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := rc.exp.Satisfied(key.String())
	sel, err := metav1.LabelSelectorAsSelector(cached.Spec.Selector)
	if err != nil || cached.Spec.Selector == nil {
		logger.V(2).Info("Invalid selector", "controller", key.String(), "err", err)
		return nil
	}
	rs := cached.DeepCopy()

	// Pods this controller owns and orphans of its namespace.
	cands := rc.pods.ByIndex(rc.ownerIdx, string(rs.UID))
	cands = append(cands, rc.pods.ByIndex(rc.ownerIdx, orphanIndexValue(key.Cluster, key.Namespace))...)
	var activePods, terminating []*corev1.Pod
	for _, p := range cands {
		if p.Namespace != rs.Namespace || framework.ClusterOf(p) != key.Cluster {
			continue
		}
		if IsPodActive(p) {
			activePods = append(activePods, p)
		} else if IsPodTerminating(p) && metav1.IsControlledBy(p, rs) && sel.Matches(labels.Set(p.Labels)) {
			terminating = append(terminating, p)
		}
	}
	claimed, err := claim.Objects(ctx, &claim.Controller{
		Object: rs, Kind: rc.kind.gvk(),
		Match: func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
		CanAdopt: claim.RecheckDeletion(rs.UID, func(ctx context.Context) (metav1.Object, error) {
			return rc.kind.fresh(ctx, key.Cluster, key.Namespace, key.Name)
		}),
		Patch: func(ctx context.Context, o metav1.Object, patch []byte) error {
			_, err := rc.clients.For(key.Cluster).CoreV1().Pods(o.GetNamespace()).Patch(ctx, o.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}, activePods)
	if err != nil {
		return err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = rc.manage(ctx, key, rs, obj, claimed)
	}
	now := rc.now()
	st := computeStatus(rs, claimed, terminating, manageErr, now, rc.kind.terminatingReplicas())
	st.ObservedGeneration = rs.Generation
	updated := rs
	if !statusUnchanged(rs, st) {
		if updated, err = rc.kind.updateStatus(ctx, key.Cluster, rs, st); err != nil {
			return err
		}
	}
	if manageErr != nil {
		return manageErr
	}
	// Come back when a ready pod becomes available.
	if updated.Spec.MinReadySeconds > 0 && updated.Status.ReadyReplicas != updated.Status.AvailableReplicas {
		after := time.Duration(updated.Spec.MinReadySeconds) * time.Second
		if d, ok := nextAvailableIn(claimed, updated.Spec.MinReadySeconds, now); ok {
			after = d + 10*time.Millisecond
		}
		rc.queue.EnqueueAfter(key, after)
	}
	return nil
}

// manage creates or deletes pods to reach spec.replicas.
func (rc *Controller) manage(ctx context.Context, key framework.Key, rs *appsv1.ReplicaSet, obj runtime.Object, pods []*corev1.Pod) error {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	diff := len(pods) - int(want)
	client := rc.clients.For(key.Cluster).CoreV1().Pods(rs.Namespace)
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		rc.exp.ExpectCreations(key.String(), n)
		pod, err := podFromTemplate(rs, rc.kind.gvk().Kind)
		if err != nil {
			for range n {
				rc.exp.CreationObserved(key.String())
			}
			return err
		}
		ok, err := slowStart(n, SlowStartInitialBatch, func() error {
			created, err := client.Create(ctx, pod.DeepCopy(), metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil // the namespace is going away: nothing to do
				}
				rc.recorder.Eventf(obj, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			rc.recorder.Eventf(obj, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
			return nil
		})
		for range n - ok {
			rc.exp.CreationObserved(key.String())
		}
		return err
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := PodsToDelete(pods, rc.relatedPods(key, rs), n, rc.now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = podKey(p)
		}
		rc.exp.ExpectDeletions(key.String(), keys)
		var wg sync.WaitGroup
		errs := make(chan error, len(victims))
		for _, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := client.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil {
					rc.exp.DeletionObserved(key.String(), podKey(p))
					if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
						return // gone already, or replaced
					}
					rc.recorder.Eventf(obj, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs <- err
					return
				}
				rc.recorder.Eventf(obj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return nil
}

// relatedPods are the active pods of every ReplicaSet controlled by the
// same owner as rs (the ReplicaSets of one Deployment), for preferring
// pods doubled up on a node.
func (rc *Controller) relatedPods(key framework.Key, rs *appsv1.ReplicaSet) []*corev1.Pod {
	owner := metav1.GetControllerOfNoCopy(rs)
	siblings := []*appsv1.ReplicaSet{rs}
	if owner != nil {
		siblings = nil
		for _, o := range rc.kind.list(key.Cluster, key.Namespace) {
			if ref := metav1.GetControllerOfNoCopy(o); ref != nil && ref.UID == owner.UID {
				siblings = append(siblings, o)
			}
		}
	}
	seen := map[types.UID]bool{}
	var out []*corev1.Pod
	for _, s := range siblings {
		for _, p := range rc.pods.ByIndex(rc.ownerIdx, string(s.UID)) {
			if !seen[p.UID] {
				seen[p.UID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// podFromTemplate is a pod of rs's template, controlled by rs.
func podFromTemplate(rs *appsv1.ReplicaSet, kind string) (*corev1.Pod, error) {
	t := rs.Spec.Template
	if len(t.Labels) == 0 {
		return nil, fmt.Errorf("unable to create pods, no labels")
	}
	prefix := rs.Name + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) > 0 {
		prefix = rs.Name
	}
	yes := true
	gv := appsv1.SchemeGroupVersion.String()
	if kind == "ReplicationController" {
		gv = "v1"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: prefix,
			Namespace:    rs.Namespace,
			Labels:       copyMap(t.Labels),
			Annotations:  copyMap(t.Annotations),
			Finalizers:   append([]string(nil), t.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gv, Kind: kind, Name: rs.Name, UID: rs.UID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	delete(pod.Annotations, framework.ClusterAnnotation)
	if len(pod.Annotations) == 0 {
		pod.Annotations = nil
	}
	return pod, nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
