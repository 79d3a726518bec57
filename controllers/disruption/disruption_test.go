package disruption

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func pod(name string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func TestComputeStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2))}}
	pods := []*corev1.Pod{pod("a", true), pod("b", true), pod("c", true), pod("d", false)}
	deleting := pod("e", true)
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(now))
	pods = append(pods, deleting)
	pdb.Status.DisruptedPods = map[string]metav1.Time{
		"a": metav1.NewTime(now.Add(-time.Minute)),     // still pending
		"b": metav1.NewTime(now.Add(-3 * time.Minute)), // expired
		"e": metav1.NewTime(now),                       // being deleted
		"z": metav1.NewTime(now),                       // gone
	}
	recheck := computeStatus(pdb, pods, 5, 2, now)
	s := pdb.Status
	if s.CurrentHealthy != 2 || s.DesiredHealthy != 2 || s.ExpectedPods != 5 || s.DisruptionsAllowed != 0 || s.ObservedGeneration != 3 {
		t.Fatalf("status %+v", s)
	}
	if len(s.DisruptedPods) != 1 || s.DisruptedPods["a"].Time.IsZero() {
		t.Errorf("disruptedPods %v", s.DisruptedPods)
	}
	if recheck == nil || !recheck.Equal(now.Add(time.Minute)) {
		t.Errorf("recheck %v", recheck)
	}
	c := meta.FindStatusCondition(s.Conditions, policyv1.DisruptionAllowedCondition)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != policyv1.InsufficientPodsReason {
		t.Errorf("condition %+v", c)
	}
	pdb.Status.DisruptedPods = nil
	computeStatus(pdb, pods, 5, 2, now)
	c = meta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if pdb.Status.DisruptionsAllowed != 1 || c.Status != metav1.ConditionTrue || c.Reason != policyv1.SufficientPodsReason {
		t.Errorf("status %+v", pdb.Status)
	}
	computeStatus(pdb, pods, 0, 0, now)
	if pdb.Status.DisruptionsAllowed != 0 {
		t.Errorf("no expected pods but %d allowed", pdb.Status.DisruptionsAllowed)
	}
}

func TestFailSafe(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	pdb.Status.DisruptionsAllowed = 4
	failSafe(pdb, errTest("found no controller ref for pod \"x\""))
	c := meta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if pdb.Status.DisruptionsAllowed != 0 || c == nil || c.Reason != policyv1.SyncFailedReason || c.Status != metav1.ConditionFalse {
		t.Errorf("status %+v", pdb.Status)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestStaleIn(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := pod("a", true)
	if has, _ := staleIn(p, now); has {
		t.Error("no condition, stale")
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "EvictionByEvictionAPI", LastTransitionTime: metav1.NewTime(now.Add(-time.Minute))})
	if has, wait := staleIn(p, now); !has || wait != time.Minute {
		t.Errorf("fresh: %v %v", has, wait)
	}
	if has, wait := staleIn(p, now.Add(5*time.Minute)); !has || wait != 0 {
		t.Errorf("stale: %v %v", has, wait)
	}
	p.Status.Conditions[1].Reason = corev1.PodReasonTerminationByKubelet
	if has, _ := staleIn(p, now); has {
		t.Error("kubelet's condition stale")
	}
	p.Status.Conditions[1].Reason = "EvictionByEvictionAPI"
	p.Status.Phase = corev1.PodFailed
	if has, _ := staleIn(p, now); has {
		t.Error("terminal pod's condition stale")
	}
}
