package deployment

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolling rolls the new ReplicaSet up and the old ones down within
// maxSurge and maxUnavailable.
func (s *syncer) rolling(rsList []*appsv1.ReplicaSet) error {
	newRS, olds, err := s.allReplicaSets(rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)

	up, err := s.reconcileNew(all, newRS)
	if err != nil {
		return err
	}
	if up {
		return s.syncRolloutStatus(all, newRS)
	}
	down, err := s.reconcileOld(all, active(olds), newRS)
	if err != nil {
		return err
	}
	if down {
		return s.syncRolloutStatus(all, newRS)
	}
	if complete(s.d, &s.d.Status) {
		if err := s.cleanup(olds); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(all, newRS)
}

// reconcileNew grows (or shrinks to spec.replicas) the new ReplicaSet.
func (s *syncer) reconcileNew(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := specReplicas(s.d)
	cur := replicas(newRS.Spec.Replicas)
	if cur == want {
		return false, nil
	}
	if cur > want {
		ok, _, err := s.scaleRS(newRS, want, false)
		return ok, err
	}
	n, err := newRSReplicas(s.d, all, newRS)
	if err != nil {
		return false, err
	}
	ok, _, err := s.scaleRS(newRS, n, false)
	return ok, err
}

// reconcileOld shrinks old ReplicaSets as far as availability allows:
// first their unavailable pods, then available ones beyond minAvailable.
func (s *syncer) reconcileOld(all, olds []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if sumSpecReplicas(olds) == 0 {
		return false, nil
	}
	plan := planOldScaleDown(s.d, all, olds, newRS)
	if len(plan) == 0 {
		return false, nil
	}
	for _, step := range plan {
		if _, _, err := s.scaleRS(step.rs, step.size, false); err != nil {
			// Upstream goes on to the status after a failed scale-down.
			return false, nil
		}
	}
	return true, nil
}

type scaleStep struct {
	rs   *appsv1.ReplicaSet
	size int32
}

// planOldScaleDown is the rolling update's scale-down of old ReplicaSets,
// pure so it can be tested: how far it may go is the total minus
// minAvailable minus the new ReplicaSet's unavailable pods; unhealthy old
// pods go first (oldest ReplicaSet first), then, while the available pods
// exceed minAvailable, healthy ones.
func planOldScaleDown(d *appsv1.Deployment, all, olds []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []scaleStep {
	total := sumSpecReplicas(all)
	minAvail := specReplicas(d) - MaxUnavailable(d)
	newUnavailable := replicas(newRS.Spec.Replicas) - newRS.Status.AvailableReplicas
	maxDown := total - minAvail - newUnavailable
	if maxDown <= 0 {
		return nil
	}
	sizes := map[types.UID]int32{}
	size := func(rs *appsv1.ReplicaSet) int32 {
		if v, ok := sizes[rs.UID]; ok {
			return v
		}
		return replicas(rs.Spec.Replicas)
	}
	sorted := sortedOlderFirst(olds)
	var order []*appsv1.ReplicaSet

	// Unhealthy replicas first: deleting them costs no availability.
	cleaned := int32(0)
	for _, rs := range sorted {
		if cleaned >= maxDown {
			break
		}
		cur := size(rs)
		if cur == 0 || cur == rs.Status.AvailableReplicas {
			continue
		}
		n := min(maxDown-cleaned, cur-rs.Status.AvailableReplicas)
		if n <= 0 {
			continue
		}
		if _, seen := sizes[rs.UID]; !seen {
			order = append(order, rs)
		}
		sizes[rs.UID] = cur - n
		cleaned += n
	}

	// Then healthy ones, down to minAvailable. A ReplicaSet is counted
	// for no more available pods than its size: right after a scale-down
	// its status still counts the pods it is deleting, and trusting that
	// would take a second step down before the first one shows, below
	// minAvailable.
	available := int32(0)
	for _, rs := range append(append([]*appsv1.ReplicaSet(nil), olds...), newRS) {
		available += min(rs.Status.AvailableReplicas, size(rs))
	}
	if available > minAvail {
		budget := available - minAvail
		done := int32(0)
		for _, rs := range sorted {
			if done >= budget {
				break
			}
			cur := size(rs)
			if cur == 0 {
				continue
			}
			n := min(cur, budget-done)
			if _, seen := sizes[rs.UID]; !seen {
				order = append(order, rs)
			}
			sizes[rs.UID] = cur - n
			done += n
		}
	}
	var plan []scaleStep
	for _, rs := range order {
		if sizes[rs.UID] != replicas(rs.Spec.Replicas) {
			plan = append(plan, scaleStep{rs: rs, size: sizes[rs.UID]})
		}
	}
	return plan
}

// recreate scales every old ReplicaSet to zero, waits for their pods to
// be gone, then creates and scales up the new one.
func (s *syncer) recreate(rsList []*appsv1.ReplicaSet) error {
	newRS, olds, err := s.allReplicaSets(rsList, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)
	scaledDown := false
	for i, rs := range olds {
		if replicas(rs.Spec.Replicas) == 0 {
			continue
		}
		ok, updated, err := s.scaleRS(rs, 0, false)
		if err != nil {
			return err
		}
		if ok {
			olds[i] = updated
			scaledDown = true
		}
	}
	if scaledDown {
		return s.syncRolloutStatus(all, newRS)
	}
	if oldPodsRunning(newRS, olds, s.podsByRS(append(append([]*appsv1.ReplicaSet(nil), olds...), newRS))) {
		return s.syncRolloutStatus(all, newRS)
	}
	if newRS == nil {
		if newRS, olds, err = s.allReplicaSets(rsList, true); err != nil {
			return err
		}
		all = append(append([]*appsv1.ReplicaSet(nil), olds...), newRS)
	}
	if newRS == nil {
		return fmt.Errorf("deployment %s: no new replica set", s.key)
	}
	if _, _, err := s.scaleRS(newRS, specReplicas(s.d), false); err != nil {
		return err
	}
	if complete(s.d, &s.d.Status) {
		if err := s.cleanup(olds); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(all, newRS)
}

// oldPodsRunning: an old ReplicaSet still reports pods, or an old pod is
// not finished.
func oldPodsRunning(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) bool {
	if sumStatus(olds, statusReplicas) > 0 {
		return true
	}
	for uid, ps := range pods {
		if newRS != nil && uid == newRS.UID {
			continue
		}
		for _, p := range ps {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return true
			}
		}
	}
	return false
}
