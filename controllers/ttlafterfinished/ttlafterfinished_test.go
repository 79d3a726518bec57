package ttlafterfinished

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestTimeLeft(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	j := &batchv1.Job{Spec: batchv1.JobSpec{TTLSecondsAfterFinished: ptr.To[int32](100)}}
	if _, ok := TimeLeft(j, t0); ok {
		t.Error("running job needs cleanup")
	}
	j.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)},
	}
	if left, ok := TimeLeft(j, t0.Add(30*time.Second)); !ok || left != 70*time.Second {
		t.Errorf("complete: %v %v", left, ok)
	}
	if left, _ := TimeLeft(j, t0.Add(101*time.Second)); left >= 0 {
		t.Errorf("expired: %v", left)
	}
	j.Status.Conditions[1].Type = batchv1.JobFailed
	if left, ok := TimeLeft(j, t0); !ok || left != 100*time.Second {
		t.Errorf("failed: %v %v", left, ok)
	}
	j.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	if _, ok := TimeLeft(j, t0); ok {
		t.Error("job being deleted needs cleanup")
	}
	j.DeletionTimestamp, j.Spec.TTLSecondsAfterFinished = nil, nil
	if _, ok := TimeLeft(j, t0); ok {
		t.Error("job without TTL needs cleanup")
	}
}
