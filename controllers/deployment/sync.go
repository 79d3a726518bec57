package deployment

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	typedapps "k8s.io/client-go/kubernetes/typed/apps/v1"

	"github.com/pgkube/pgkube/controllers/framework"
)

type appsClient struct {
	d  typedapps.DeploymentInterface
	rs typedapps.ReplicaSetInterface
}

// writeStatus writes d's status; d takes the new resourceVersion so that
// later writes of the same sync don't conflict with this one.
func (s *syncer) writeStatus() error {
	cp := s.d.DeepCopy()
	framework.StripCluster(cp)
	out, err := s.client().d.UpdateStatus(s.ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	s.d.ResourceVersion = out.ResourceVersion
	return nil
}

// setRevision records the revision in the deployment's annotation. A
// metadata patch, not a status write: status writes keep annotations.
func (s *syncer) setRevision(rev string) error {
	if s.d.Annotations[RevisionAnnotation] == rev {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": s.d.ResourceVersion,
		"annotations":     map[string]string{RevisionAnnotation: rev},
	}})
	out, err := s.client().d.Patch(s.ctx, s.d.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return err
	}
	if s.d.Annotations == nil {
		s.d.Annotations = map[string]string{}
	}
	s.d.Annotations[RevisionAnnotation] = rev
	s.d.ResourceVersion = out.ResourceVersion
	return nil
}

// updateRS writes a ReplicaSet's spec and metadata.
func (s *syncer) updateRS(rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	cp := rs.DeepCopy()
	framework.StripCluster(cp)
	return s.client().rs.Update(s.ctx, cp, metav1.UpdateOptions{})
}

// allReplicaSets finds the new ReplicaSet (creating it when create is set
// and it is missing) and brings its revision and annotations up to date.
func (s *syncer) allReplicaSets(rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	newRS := findNewRS(s.d, rsList)
	olds := oldRSs(rsList, newRS)
	newRS, err := s.newReplicaSet(newRS, olds, create)
	if err != nil {
		return nil, nil, err
	}
	// Later steps of this sync see what was written.
	for i := range rsList {
		if newRS != nil && rsList[i].UID == newRS.UID {
			rsList[i] = newRS
		}
	}
	return newRS, olds, nil
}

func (s *syncer) newReplicaSet(existing *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	d := s.d
	newRevision := maxRevision(olds) + 1
	if existing != nil {
		cp := existing.DeepCopy()
		changed := setRSAnnotations(d, cp, newRevision, true)
		if changed || cp.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			cp.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			return s.updateRS(cp)
		}
		if err := s.setRevision(cp.Annotations[RevisionAnnotation]); err != nil {
			return nil, err
		}
		if hasProgressDeadline(d) && getCondition(&d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", cp.Name), s.dc.now()))
			if err := s.writeStatus(); err != nil {
				return nil, err
			}
		}
		return cp, nil
	}
	if !create {
		return nil, nil
	}

	tmpl := *d.Spec.Template.DeepCopy()
	hash := TemplateHash(&tmpl, d.Status.CollisionCount)
	tmpl.Labels = withLabel(tmpl.Labels, podTemplateHashLabel, hash)
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[podTemplateHashLabel] = hash
	yes := true
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: replicaSetName(d.Name, hash), Namespace: d.Namespace,
			Labels: tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: deploymentKind.GroupVersion().String(), Kind: deploymentKind.Kind,
				Name: d.Name, UID: d.UID, Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	n, err := newRSReplicas(d, append(append([]*appsv1.ReplicaSet(nil), olds...), rs), rs)
	if err != nil {
		return nil, err
	}
	rs.Spec.Replicas = &n
	setRSAnnotations(d, rs, newRevision, false)
	delete(rs.Annotations, framework.ClusterAnnotation)

	exists := false
	created, err := s.client().rs.Create(s.ctx, rs, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		exists = true
		cur, gerr := s.dc.rss.Get(s.key.Cluster, d.Namespace, rs.Name)
		if gerr != nil {
			return nil, gerr
		}
		if ref := metav1.GetControllerOfNoCopy(cur); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &cur.Spec.Template) {
			created, err = cur.DeepCopy(), nil
			break
		}
		// Someone else's ReplicaSet has the name: a hash collision. Count
		// it so that the next hash differs.
		cc := int32(0)
		if d.Status.CollisionCount != nil {
			cc = *d.Status.CollisionCount
		}
		cc++
		d.Status.CollisionCount = &cc
		if werr := s.writeStatus(); werr != nil {
			return nil, werr
		}
		return nil, err
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, s.dc.now()))
			_ = s.writeStatus()
		}
		s.event(corev1.EventTypeWarning, ReasonFailedRSCreate, "%s", msg)
		return nil, err
	}
	if !exists && n > 0 {
		s.event(corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	if err := s.setRevision(strconv.FormatInt(newRevision, 10)); err != nil {
		return nil, err
	}
	if !exists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSet,
			fmt.Sprintf("Created new replica set %q", created.Name), s.dc.now()))
		if err := s.writeStatus(); err != nil {
			return nil, err
		}
	}
	return created, nil
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// scaleRS sets a ReplicaSet's size and replicas annotations. Without
// force it does nothing when the size is right.
func (s *syncer) scaleRS(rs *appsv1.ReplicaSet, size int32, force bool) (bool, *appsv1.ReplicaSet, error) {
	cur := replicas(rs.Spec.Replicas)
	if !force && cur == size {
		return false, rs, nil
	}
	want, maxR := specReplicas(s.d), specReplicas(s.d)+MaxSurge(s.d)
	resize := cur != size
	if !resize && !replicasAnnotationsStale(rs, want, maxR) {
		return false, rs, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, want, maxR)
	out, err := s.updateRS(cp)
	if err != nil {
		return false, rs, err
	}
	if resize {
		dir := "down"
		if cur < size {
			dir = "up"
		}
		s.event(corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, out.Name, cur, size)
	}
	return resize, out, nil
}

// scale handles a change of spec.replicas (or a paused deployment):
// with one active ReplicaSet it takes the whole size, otherwise the
// change is spread over the active ones in proportion to their sizes.
func (s *syncer) scale(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) error {
	d := s.d
	if one := activeOrLatest(newRS, olds); one != nil {
		if replicas(one.Spec.Replicas) == specReplicas(d) {
			return nil
		}
		_, _, err := s.scaleRS(one, specReplicas(d), false)
		return err
	}
	if saturated(d, newRS) {
		for _, old := range active(olds) {
			if _, _, err := s.scaleRS(old, 0, false); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRolling(d) {
		return nil
	}
	all := active(append(append([]*appsv1.ReplicaSet(nil), olds...), newRS))
	sizes := proportionalSizes(d, all)
	for _, rs := range all {
		if _, _, err := s.scaleRS(rs, sizes[rs.Name], true); err != nil {
			return err
		}
	}
	return nil
}

// proportionalSizes spreads the difference between the allowed total
// (replicas + surge) and the current total over the active ReplicaSets,
// larger ones first; rounding leftovers go to the first. all is sorted in
// place.
func proportionalSizes(d *appsv1.Deployment, all []*appsv1.ReplicaSet) map[string]int32 {
	total := sumSpecReplicas(all)
	allowed := int32(0)
	if specReplicas(d) > 0 {
		allowed = specReplicas(d) + MaxSurge(d)
	}
	toAdd := allowed - total
	switch {
	case toAdd > 0:
		bySize(all, true)
	case toAdd < 0:
		bySize(all, false)
	}
	sizes := map[string]int32{}
	added := int32(0)
	for _, rs := range all {
		sizes[rs.Name] = replicas(rs.Spec.Replicas)
		if toAdd != 0 {
			p := proportion(rs, d, toAdd, added)
			sizes[rs.Name] += p
			added += p
		}
	}
	if toAdd != 0 && len(all) > 0 {
		first := all[0].Name
		sizes[first] = max(sizes[first]+toAdd-added, 0)
	}
	return sizes
}

// cleanup deletes the oldest old ReplicaSets beyond revisionHistoryLimit
// that have no pods.
func (s *syncer) cleanup(olds []*appsv1.ReplicaSet) error {
	d := s.d
	if !hasHistoryLimit(d) {
		return nil
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range olds {
		if rs != nil && rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	extra := int32(len(alive)) - *d.Spec.RevisionHistoryLimit
	if extra <= 0 {
		return nil
	}
	byRevision(alive)
	for _, rs := range alive[:extra] {
		if rs.Status.Replicas != 0 || replicas(rs.Spec.Replicas) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		uid := rs.UID
		err := s.client().rs.Delete(s.ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// statusOnly: a deployment being deleted only reports.
func (s *syncer) statusOnly(rsList []*appsv1.ReplicaSet) error {
	newRS, olds, err := s.allReplicaSets(rsList, false)
	if err != nil {
		return err
	}
	return s.syncStatus(append(olds, newRS), newRS)
}

// scaleOnly handles scaling events and paused deployments.
func (s *syncer) scaleOnly(rsList []*appsv1.ReplicaSet) error {
	newRS, olds, err := s.allReplicaSets(rsList, false)
	if err != nil {
		return err
	}
	if err := s.scale(newRS, olds); err != nil {
		return err
	}
	if s.d.Spec.Paused && rollbackTo(s.d) == nil {
		if err := s.cleanup(olds); err != nil {
			return err
		}
	}
	return s.syncStatus(append(olds, newRS), newRS)
}

// syncStatus writes the counts and the Available condition.
func (s *syncer) syncStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := computeStatus(all, newRS, s.d, s.dc.now())
	if equality.Semantic.DeepEqual(s.d.Status, st) {
		return nil
	}
	s.d.Status = st
	return s.writeStatus()
}

// syncRolloutStatus also estimates progress (the Progressing condition)
// and comes back when a stuck rollout's deadline passes.
func (s *syncer) syncRolloutStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	now := s.dc.now()
	st := rolloutStatus(all, newRS, s.d, now)
	if equality.Semantic.DeepEqual(s.d.Status, st) {
		if after, ok := stuckRecheck(s.d, &st, now); ok {
			s.dc.queue.EnqueueAfter(s.key, max(after, 100*time.Millisecond))
		}
		return nil
	}
	s.d.Status = st
	return s.writeStatus()
}

// checkPaused records pausing and resuming in the Progressing condition
// (Unknown), so that a resumed deployment is not judged on time spent
// paused.
func (s *syncer) checkPaused() error {
	d := s.d
	if !hasProgressDeadline(d) {
		return nil
	}
	cur := getCondition(&d.Status, appsv1.DeploymentProgressing)
	if cur != nil && cur.Reason == ReasonTimedOut {
		return nil
	}
	pausedCond := cur != nil && cur.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", s.dc.now()))
	case !d.Spec.Paused && pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", s.dc.now()))
	default:
		return nil
	}
	return s.writeStatus()
}

// isScalingEvent: spec.replicas differs from what an active ReplicaSet
// was last sized for.
func (s *syncer) isScalingEvent(rsList []*appsv1.ReplicaSet) (bool, error) {
	newRS, olds, err := s.allReplicaSets(rsList, false)
	if err != nil {
		return false, err
	}
	for _, rs := range active(append(olds, newRS)) {
		if desired, ok := annotationInt32(rs, DesiredReplicasAnnotation); ok && desired != specReplicas(s.d) {
			return true, nil
		}
	}
	return false, nil
}

// rollbackTo is the revision the deprecated rollback annotation asks for.
func rollbackTo(d *appsv1.Deployment) *int64 {
	v := d.Annotations[deprecatedRollbackToAnnot]
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

// rollback serves the deprecated rollback annotation (kubectl now rolls
// back by writing the old template itself): copy the template of the
// asked revision (0: the previous one), then drop the annotation.
func (s *syncer) rollback(rsList []*appsv1.ReplicaSet) error {
	d := s.d
	newRS, olds, err := s.allReplicaSets(rsList, true)
	if err != nil {
		return err
	}
	all := append(olds, newRS)
	to := *rollbackTo(d)
	if to == 0 {
		if to = lastRevision(all); to == 0 {
			s.event(corev1.EventTypeWarning, ReasonRollbackNotFound, "Unable to find last revision.")
			return s.clearRollback()
		}
	}
	for _, rs := range all {
		if rs == nil {
			continue
		}
		if v, err := revision(rs); err != nil || v != to {
			continue
		}
		if equalIgnoreHash(&d.Spec.Template, &rs.Spec.Template) {
			s.event(corev1.EventTypeWarning, ReasonRollbackUnchanged, "The rollback revision contains the same template as current deployment %q", d.Name)
			return s.clearRollback()
		}
		d.Spec.Template.ObjectMeta = *rs.Spec.Template.ObjectMeta.DeepCopy()
		d.Spec.Template.Spec = *rs.Spec.Template.Spec.DeepCopy()
		delete(d.Spec.Template.Labels, podTemplateHashLabel)
		setAnnotationsFromRS(d, rs)
		if err := s.clearRollback(); err != nil {
			return err
		}
		s.event(corev1.EventTypeNormal, ReasonRollbackDone, "Rolled back deployment %q to revision %d", d.Name, to)
		return nil
	}
	s.event(corev1.EventTypeWarning, ReasonRollbackNotFound, "Unable to find the revision to rollback to.")
	return s.clearRollback()
}

func (s *syncer) clearRollback() error {
	delete(s.d.Annotations, deprecatedRollbackToAnnot)
	cp := s.d.DeepCopy()
	framework.StripCluster(cp)
	_, err := s.client().d.Update(s.ctx, cp, metav1.UpdateOptions{})
	return err
}

// sortedOlderFirst is a sorted copy.
func sortedOlderFirst(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := append([]*appsv1.ReplicaSet(nil), rss...)
	sort.SliceStable(out, func(i, j int) bool { return olderRS(out[i], out[j]) })
	return out
}
