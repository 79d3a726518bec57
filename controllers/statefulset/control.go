package statefulset

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/history"
)

// maxBatch caps the writes of one slow-start batch (Parallel policy).
const maxBatch = 500

// objects is what the update logic reads and writes, for one cluster: the
// API through the controller's clients, or a fake in unit tests.
type objects interface {
	CreatePod(ctx context.Context, pod *corev1.Pod) error
	UpdatePod(ctx context.Context, pod *corev1.Pod) error
	DeletePod(ctx context.Context, pod *corev1.Pod) error
	// GetClaim reads the cache; a NotFound error when absent.
	GetClaim(ns, name string) (*corev1.PersistentVolumeClaim, error)
	CreateClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error
	UpdateClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error

	CreateRevision(ctx context.Context, rev *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error)
	// GetRevision reads the API (after a name collision).
	GetRevision(ctx context.Context, ns, name string) (*appsv1.ControllerRevision, error)
	UpdateRevision(ctx context.Context, rev *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error)
	DeleteRevision(ctx context.Context, rev *appsv1.ControllerRevision) error

	UpdateStatus(ctx context.Context, set *appsv1.StatefulSet, status *appsv1.StatefulSetStatus) error
}

// control runs one sync of one StatefulSet.
type control struct {
	obj      objects
	recorder framework.Recorder
	now      time.Time
}

// syncSet brings set's pods, claims and revisions towards its spec and
// writes its status. revisions are the set's ControllerRevisions (owned or
// just adopted); pods are the pods it owns.
func (c *control) syncSet(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision) (*appsv1.StatefulSetStatus, error) {
	set = set.DeepCopy()
	history.Sort(revisions)
	current, update, collisions, err := c.revisions(ctx, set, revisions)
	if err != nil {
		return nil, err
	}
	status, err := c.update(ctx, set, current, update, collisions, pods)
	if status != nil {
		if serr := c.writeStatus(ctx, set, status); serr != nil && err == nil {
			err = serr
		}
	}
	if herr := c.truncateHistory(ctx, set, pods, revisions, current, update); herr != nil && err == nil {
		err = herr
	}
	return status, err
}

// revisions finds (or makes) the current and update revisions.
func (c *control) revisions(ctx context.Context, set *appsv1.StatefulSet, revisions []*appsv1.ControllerRevision) (current, update *appsv1.ControllerRevision, collisions int32, err error) {
	if set.Status.CollisionCount != nil {
		collisions = *set.Status.CollisionCount
	}
	proposed, err := newRevision(set, nextRevision(revisions), &collisions)
	if err != nil {
		return nil, nil, collisions, err
	}
	var equal []*appsv1.ControllerRevision
	for _, r := range revisions {
		if equalRevision(r, proposed) {
			equal = append(equal, r)
		}
	}
	n := len(revisions)
	switch {
	case len(equal) > 0 && equalRevision(revisions[n-1], equal[len(equal)-1]):
		update = revisions[n-1] // unchanged
	case len(equal) > 0:
		// Back to an earlier template: that revision becomes the newest.
		r := equal[len(equal)-1].DeepCopy()
		r.Revision = proposed.Revision
		framework.StripCluster(r)
		if update, err = c.obj.UpdateRevision(ctx, r); err != nil {
			return nil, nil, collisions, err
		}
	case n > 0 && sameAsLatest(set, proposed, revisions[n-1]):
		update = revisions[n-1]
	default:
		if update, err = c.createRevision(ctx, set, proposed, &collisions); err != nil {
			return nil, nil, collisions, err
		}
	}
	for _, r := range revisions {
		if r.Name == set.Status.CurrentRevision {
			current = r
			break
		}
	}
	if current == nil {
		current = update
	}
	return current, update, collisions, nil
}

// createRevision creates rev, renaming it with a higher collision count
// while another revision holds its name with other data.
func (c *control) createRevision(ctx context.Context, set *appsv1.StatefulSet, rev *appsv1.ControllerRevision, collisions *int32) (*appsv1.ControllerRevision, error) {
	for range 100 {
		r := rev.DeepCopy()
		hash := history.Hash(rev.Data.Raw, collisions)
		r.Name = history.Name(set.Name, hash)
		r.Labels[RevisionHashLabel] = hash
		created, err := c.obj.CreateRevision(ctx, r)
		if !apierrors.IsAlreadyExists(err) {
			return created, err
		}
		existing, err := c.obj.GetRevision(ctx, r.Namespace, r.Name)
		if err != nil {
			return nil, err
		}
		if equalRevision(existing, r) {
			return existing, nil
		}
		*collisions++
	}
	return nil, errors.New("too many ControllerRevision name collisions")
}

// truncateHistory deletes the oldest revisions that no pod and neither the
// current nor the update revision use, down to revisionHistoryLimit.
func (c *control) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision, current, update *appsv1.ControllerRevision) error {
	live := map[string]bool{}
	if current != nil {
		live[current.Name] = true
	}
	if update != nil {
		live[update.Name] = true
	}
	for _, p := range pods {
		live[revisionOf(p)] = true
	}
	var old []*appsv1.ControllerRevision
	for _, r := range revisions {
		if !live[r.Name] {
			old = append(old, r)
		}
	}
	limit := 10
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	if limit < 0 || len(old) <= limit {
		return nil
	}
	for _, r := range old[:len(old)-limit] {
		if err := c.obj.DeleteRevision(ctx, r); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// computeStatus counts pods into status.
func computeStatus(status *appsv1.StatefulSetStatus, minReadySeconds int32, current, update string, now time.Time, lists ...[]*corev1.Pod) {
	status.Replicas, status.ReadyReplicas, status.AvailableReplicas = 0, 0, 0
	status.CurrentReplicas, status.UpdatedReplicas = 0, 0
	for _, l := range lists {
		for _, p := range l {
			if p == nil {
				continue
			}
			if isCreated(p) {
				status.Replicas++
			}
			if isRunningAndReady(p) {
				status.ReadyReplicas++
				if isAvailable(p, minReadySeconds, now) {
					status.AvailableReplicas++
				}
			}
			if isCreated(p) && !isTerminating(p) {
				if revisionOf(p) == current {
					status.CurrentReplicas++
				}
				if revisionOf(p) == update {
					status.UpdatedReplicas++
				}
			}
		}
	}
}

// update creates, updates and deletes pods: the replicas [start, end] at
// their revisions, the others (condemned) gone; OrderedReady one at a time
// in ordinal order, each waiting for its predecessors to be Running and
// Ready (and deletions in reverse order), Parallel all at once. Then the
// rolling update, highest ordinal first down to the partition.
func (c *control) update(ctx context.Context, set *appsv1.StatefulSet, currentRev, updateRev *appsv1.ControllerRevision, collisions int32, pods []*corev1.Pod) (*appsv1.StatefulSetStatus, error) {
	currentSet, err := applyRevision(set, currentRev)
	if err != nil {
		return nil, err
	}
	updateSet, err := applyRevision(set, updateRev)
	if err != nil {
		return nil, err
	}
	status := &appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    currentRev.Name,
		UpdateRevision:     updateRev.Name,
		CollisionCount:     &collisions,
		Conditions:         append([]appsv1.StatefulSetCondition(nil), set.Status.Conditions...),
	}
	minReady := set.Spec.MinReadySeconds
	computeStatus(status, minReady, currentRev.Name, updateRev.Name, c.now, pods)

	start, end := startOrdinal(set), endOrdinal(set)
	replicas := make([]*corev1.Pod, max(replicasOf(set), 0))
	var condemned []*corev1.Pod
	for _, p := range pods {
		o := ordinalOf(p)
		switch {
		case o >= start && o <= end:
			replicas[o-start] = p
		case o >= 0:
			condemned = append(condemned, p)
		}
	}
	for o := start; o <= end; o++ {
		if replicas[o-start] == nil {
			replicas[o-start] = newVersionedPod(currentSet, updateSet, currentRev.Name, updateRev.Name, o)
		}
	}
	sort.Slice(condemned, func(i, j int) bool { return ordinalOf(condemned[i]) > ordinalOf(condemned[j]) })

	var firstUnhealthy *corev1.Pod
	for _, p := range replicas {
		if isUnavailable(p, minReady, c.now) {
			firstUnhealthy = p
			break
		}
	}
	if firstUnhealthy == nil {
		for i := len(condemned) - 1; i >= 0; i-- {
			if isUnavailable(condemned[i], minReady, c.now) {
				firstUnhealthy = condemned[i]
				break
			}
		}
	}

	if set.DeletionTimestamp != nil {
		return status, nil
	}
	monotonic := !allowsBurst(set)
	recount := func() {
		computeStatus(status, minReady, currentRev.Name, updateRev.Name, c.now, replicas, condemned)
	}

	if stop, err := runForAll(replicas, monotonic, func(i int) (bool, error) {
		return c.processReplica(ctx, set, updateSet, monotonic, replicas, i)
	}); stop || err != nil {
		recount()
		return status, err
	}
	if stop, err := runForAll(condemned, monotonic, func(i int) (bool, error) {
		return false, c.fixClaims(ctx, updateSet, condemned[i])
	}); stop || err != nil {
		recount()
		return status, err
	}
	if stop, err := runForAll(condemned, monotonic, func(i int) (bool, error) {
		return c.processCondemned(ctx, set, firstUnhealthy, monotonic, condemned, i)
	}); stop || err != nil {
		recount()
		return status, err
	}
	recount()

	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return status, nil
	}
	return status, c.rollingUpdate(ctx, set, replicas, updateRev, status)
}

// runForAll calls fn for each index: in order, stopping at the first that
// asks to, when monotonic; else in growing parallel batches.
func runForAll(pods []*corev1.Pod, monotonic bool, fn func(i int) (bool, error)) (bool, error) {
	if monotonic {
		for i := range pods {
			if stop, err := fn(i); stop || err != nil {
				return true, err
			}
		}
		return false, nil
	}
	next := 0
	for batch := min(1, len(pods)); batch > 0; batch = min(2*batch, len(pods)-next, maxBatch) {
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for k := next; k < next+batch; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := fn(k); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		next += batch
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		if len(all) > 0 {
			return true, errors.Join(all...)
		}
	}
	return false, nil
}

// processReplica handles the replica at index i; true stops the pass.
func (c *control) processReplica(ctx context.Context, set, updateSet *appsv1.StatefulSet, monotonic bool, replicas []*corev1.Pod, i int) (bool, error) {
	logger := klog.FromContext(ctx)
	pod := replicas[i]
	// A failed or succeeded pod is replaced, whatever made it stop.
	if isTerminalPhase(pod) {
		if pod.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, set, pod); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	if !isCreated(pod) {
		stale, err := c.claimIsStale(set, pod)
		if err != nil || stale {
			return true, err
		}
		if err := c.createPod(ctx, set, pod); err != nil {
			return true, err
		}
		if monotonic {
			return true, nil
		}
	}
	if isPending(pod) {
		if err := c.createClaims(ctx, set, pod); err != nil {
			return true, err
		}
		if err := c.fixClaims(ctx, set, pod); err != nil {
			return true, err
		}
	}
	if monotonic {
		switch {
		case isTerminating(pod):
			logger.V(4).Info("StatefulSet waits for a pod to terminate", "statefulSet", set.Name, "pod", pod.Name)
			return true, nil
		case !isRunningAndReady(pod):
			logger.V(4).Info("StatefulSet waits for a pod to be Running and Ready", "statefulSet", set.Name, "pod", pod.Name)
			return true, nil
		case !isAvailable(pod, set.Spec.MinReadySeconds, c.now):
			logger.V(4).Info("StatefulSet waits for a pod to be available", "statefulSet", set.Name, "pod", pod.Name)
			return true, nil
		}
	}
	match, err := c.claimsMatchPolicy(updateSet, pod)
	if err != nil {
		match = true // not yet fully updated; the next pass fixes it
	}
	if identityMatches(set, pod) && storageMatches(set, pod) && match {
		return false, nil
	}
	return false, c.updatePod(ctx, updateSet, pod.DeepCopy())
}

// processCondemned deletes the condemned pod at index i (ordinals beyond
// the replicas, highest first).
func (c *control) processCondemned(ctx context.Context, set *appsv1.StatefulSet, firstUnhealthy *corev1.Pod, monotonic bool, condemned []*corev1.Pod, i int) (bool, error) {
	pod := condemned[i]
	if isTerminating(pod) {
		return monotonic, nil
	}
	if monotonic && pod != firstUnhealthy &&
		(!isRunningAndReady(pod) || !isAvailable(pod, set.Spec.MinReadySeconds, c.now)) {
		return true, nil // the unhealthy one goes first
	}
	return true, c.deletePod(ctx, set, pod)
}

// rollingUpdate deletes pods not at the update revision, from the highest
// ordinal down to the partition, while no more than maxUnavailable (1
// unless set) replicas are unavailable.
func (c *control) rollingUpdate(ctx context.Context, set *appsv1.StatefulSet, replicas []*corev1.Pod, updateRev *appsv1.ControllerRevision, status *appsv1.StatefulSetStatus) error {
	partition, maxUnavailable := 0, 1
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.Partition != nil {
			partition = int(*ru.Partition)
		}
		v, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxUnavailable, intstr.FromInt32(1)), len(replicas), false)
		if err != nil {
			return err
		}
		maxUnavailable = max(v, 1)
	}
	minReady := set.Spec.MinReadySeconds
	unavailable, oldUnavailable := 0, 0
	for _, p := range replicas {
		if isUnavailable(p, minReady, c.now) {
			unavailable++
			if allowsBurst(set) && revisionOf(p) != updateRev.Name && !isTerminating(p) {
				oldUnavailable++
			}
		}
	}
	if unavailable >= maxUnavailable && oldUnavailable == 0 {
		return nil
	}
	del := func(p *corev1.Pod) error {
		if err := c.deletePod(ctx, set, p); err != nil {
			return err
		}
		status.CurrentReplicas--
		return nil
	}
	if allowsBurst(set) {
		// Old pods that are unavailable anyway go first; then available
		// ones within what the budget leaves.
		for t := len(replicas) - 1; t >= partition; t-- {
			p := replicas[t]
			if revisionOf(p) != updateRev.Name && !isAvailable(p, minReady, c.now) && !isTerminating(p) {
				if err := del(p); err != nil {
					return err
				}
			}
		}
		budget := maxUnavailable - unavailable
		for t := len(replicas) - 1; t >= partition && budget > 0; t-- {
			p := replicas[t]
			if revisionOf(p) != updateRev.Name && !isUnavailable(p, minReady, c.now) {
				if err := del(p); err != nil {
					return err
				}
				budget--
			}
		}
		return nil
	}
	budget := maxUnavailable - unavailable
	for t := len(replicas) - 1; t >= partition && budget > 0; t-- {
		p := replicas[t]
		if revisionOf(p) != updateRev.Name && !isTerminating(p) {
			if err := del(p); err != nil {
				return err
			}
			budget--
		}
	}
	return nil
}

// writeStatus completes a finished rollout and writes status if it
// differs from the set's.
func (c *control) writeStatus(ctx context.Context, set *appsv1.StatefulSet, status *appsv1.StatefulSetStatus) error {
	want := int32(replicasOf(set))
	if status.UpdatedReplicas == want && status.ReadyReplicas == want && status.Replicas == want {
		status.CurrentReplicas = status.UpdatedReplicas
		status.CurrentRevision = status.UpdateRevision
	}
	if !statusChanged(set, status) {
		return nil
	}
	return c.obj.UpdateStatus(ctx, set, status)
}

func statusChanged(set *appsv1.StatefulSet, st *appsv1.StatefulSetStatus) bool {
	old := &set.Status
	oldCollisions, newCollisions := int32(0), int32(0)
	if old.CollisionCount != nil {
		oldCollisions = *old.CollisionCount
	}
	if st.CollisionCount != nil {
		newCollisions = *st.CollisionCount
	}
	return st.ObservedGeneration > old.ObservedGeneration ||
		st.Replicas != old.Replicas || st.ReadyReplicas != old.ReadyReplicas ||
		st.CurrentReplicas != old.CurrentReplicas || st.UpdatedReplicas != old.UpdatedReplicas ||
		st.AvailableReplicas != old.AvailableReplicas ||
		st.CurrentRevision != old.CurrentRevision || st.UpdateRevision != old.UpdateRevision ||
		oldCollisions != newCollisions ||
		!reflect.DeepEqual(old.Conditions, st.Conditions)
}

// Pods and claims, with their Events.

func (c *control) podEvent(verb string, set *appsv1.StatefulSet, pod *corev1.Pod, err error) {
	title := titleCase(verb)
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "Successful"+title, "%s Pod %s in StatefulSet %s successful", title, pod.Name, set.Name)
		return
	}
	c.recorder.Eventf(set, corev1.EventTypeWarning, "Failed"+title, "%s Pod %s in StatefulSet %s failed error: %s", title, pod.Name, set.Name, err)
}

func (c *control) claimEvent(verb string, set *appsv1.StatefulSet, pod *corev1.Pod, claim *corev1.PersistentVolumeClaim, err error) {
	title := titleCase(verb)
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "Successful"+title, "%s Claim %s Pod %s in StatefulSet %s success", title, claim.Name, pod.Name, set.Name)
		return
	}
	c.recorder.Eventf(set, corev1.EventTypeWarning, "Failed"+title, "%s Claim %s for Pod %s in StatefulSet %s failed error: %s", title, claim.Name, pod.Name, set.Name, err)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

// createPod creates the pod's claims, then the pod.
func (c *control) createPod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	if err := c.createClaims(ctx, set, pod); err != nil {
		c.podEvent("create", set, pod, err)
		return err
	}
	err := c.obj.CreatePod(ctx, pod)
	if apierrors.IsAlreadyExists(err) {
		return err
	}
	if err == nil {
		if ferr := c.fixClaims(ctx, set, pod); ferr != nil {
			c.podEvent("update", set, pod, ferr)
			return ferr
		}
	}
	c.podEvent("create", set, pod, err)
	return err
}

// updatePod restores the pod's identity and storage and its claims'
// owners.
func (c *control) updatePod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	changed := false
	if !identityMatches(set, pod) {
		setIdentity(set, pod)
		changed = true
	}
	if !storageMatches(set, pod) {
		setStorage(set, pod)
		changed = true
		if err := c.createClaims(ctx, set, pod); err != nil {
			c.podEvent("update", set, pod, err)
			return err
		}
	}
	if ok, err := c.claimsMatchPolicy(set, pod); err != nil {
		c.podEvent("update", set, pod, err)
		return err
	} else if !ok {
		if err := c.fixClaims(ctx, set, pod); err != nil {
			c.podEvent("update", set, pod, err)
			return err
		}
	}
	if !changed {
		return nil
	}
	framework.StripCluster(pod)
	err := c.obj.UpdatePod(ctx, pod)
	c.podEvent("update", set, pod, err)
	return err
}

func (c *control) deletePod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	err := c.obj.DeletePod(ctx, pod)
	if err != nil && !apierrors.IsNotFound(err) {
		c.podEvent("delete", set, pod, err)
		return err
	}
	c.podEvent("delete", set, pod, nil)
	return nil
}

// createClaims creates the pod's missing claims; a claim being deleted is
// an error (the pod must wait for its replacement).
func (c *control) createClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	var errs []error
	claims := claimsFor(set, pod)
	for i := range set.Spec.VolumeClaimTemplates {
		claim := claims[set.Spec.VolumeClaimTemplates[i].Name]
		existing, err := c.obj.GetClaim(claim.Namespace, claim.Name)
		switch {
		case apierrors.IsNotFound(err):
			err := c.obj.CreateClaim(ctx, claim)
			if err != nil {
				errs = append(errs, fmt.Errorf("failed to create PVC %s: %w", claim.Name, err))
			}
			if err == nil || !apierrors.IsAlreadyExists(err) {
				c.claimEvent("create", set, pod, claim, err)
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("failed to retrieve PVC %s: %w", claim.Name, err))
			c.claimEvent("create", set, pod, claim, err)
		case existing.DeletionTimestamp != nil:
			errs = append(errs, fmt.Errorf("pvc %s is being deleted", claim.Name))
		}
	}
	return errors.Join(errs...)
}

// claimIsStale: with WhenScaled=Delete, a claim still owned by an earlier
// pod of this ordinal is about to be deleted; the pod waits.
func (c *control) claimIsStale(set *appsv1.StatefulSet, pod *corev1.Pod) (bool, error) {
	if retentionPolicy(set).WhenScaled == appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		return false, nil
	}
	for _, claim := range claimsFor(set, pod) {
		existing, err := c.obj.GetClaim(claim.Namespace, claim.Name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, err
		case staleRef(existing, pod, podKind):
			return true, nil
		}
	}
	return false, nil
}

func (c *control) claimsMatchPolicy(set *appsv1.StatefulSet, pod *corev1.Pod) (bool, error) {
	o := ordinalOf(pod)
	for i := range set.Spec.VolumeClaimTemplates {
		name := claimName(set, &set.Spec.VolumeClaimTemplates[i], o)
		claim, err := c.obj.GetClaim(set.Namespace, name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, fmt.Errorf("could not retrieve claim %s for %s when checking PVC deletion policy: %w", name, pod.Name, err)
		case !claimOwnersUpToDate(claim, set, pod):
			return false, nil
		}
	}
	return true, nil
}

// fixClaims sets the ownerReferences of the pod's claims as the retention
// policy asks.
func (c *control) fixClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	o := ordinalOf(pod)
	for i := range set.Spec.VolumeClaimTemplates {
		name := claimName(set, &set.Spec.VolumeClaimTemplates[i], o)
		claim, err := c.obj.GetClaim(set.Namespace, name)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("could not retrieve claim %s for %s when checking PVC deletion policy: %w", name, pod.Name, err)
		}
		if claimOwnersUpToDate(claim, set, pod) {
			continue
		}
		if foreignController(claim, set, pod) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, "ConflictingController",
				"PersistentVolumeClaim %s has a conflicting OwnerReference that acts as a managing controller, the retention policy is ignored for this claim", name)
		}
		claim = claim.DeepCopy()
		fixClaimOwners(claim, set, pod)
		framework.StripCluster(claim)
		if err := c.obj.UpdateClaim(ctx, claim); err != nil {
			return fmt.Errorf("could not update claim %s for delete policy ownerRefs: %w", name, err)
		}
	}
	return nil
}
