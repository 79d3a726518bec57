package server

import (
	"net/http"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheckBudget(t *testing.T) {
	pdb := func(gen, observed int64, allowed, healthy, desired int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b", Generation: gen},
			Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: observed, DisruptionsAllowed: allowed,
				CurrentHealthy: healthy, DesiredHealthy: desired}}
	}
	cause := func(err error) string {
		st := err.(apierrors.APIStatus).Status()
		if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Type != policyv1.DisruptionBudgetCause {
			t.Fatalf("causes %+v", st.Details)
		}
		return st.Details.Causes[0].Message
	}
	if err := checkBudget(pdb(1, 1, 1, 3, 2)); err != nil {
		t.Errorf("allowed: %v", err)
	}
	err := checkBudget(pdb(2, 1, 1, 3, 2))
	if !apierrors.IsTooManyRequests(err) || cause(err) != "The disruption budget b is still being processed by the server." {
		t.Errorf("stale: %v", err)
	}
	err = checkBudget(pdb(1, 1, 0, 2, 2))
	if !apierrors.IsTooManyRequests(err) || err.Error() != "Cannot evict pod as it would violate the pod's disruption budget." ||
		cause(err) != "The disruption budget b needs 2 healthy pods and has 2 currently" {
		t.Errorf("exhausted: %v", err)
	}
	if st := err.(apierrors.APIStatus).Status(); st.Code != http.StatusTooManyRequests {
		t.Errorf("code %d", st.Code)
	}
	failed := pdb(1, 1, 0, 3, 2)
	failed.Status.Conditions = []metav1.Condition{{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.SyncFailedReason, Message: "found no controller ref for pod \"x\""}}
	if err := checkBudget(failed); cause(err) != "The disruption budget b does not allow evicting pods currently because it failed sync: found no controller ref for pod \"x\"" {
		t.Errorf("sync failed: %v", cause(err))
	}
	if err := checkBudget(pdb(1, 1, -1, 3, 2)); !apierrors.IsForbidden(err) {
		t.Errorf("negative: %v", err)
	}
}
