package podgc

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func mkPod(name, node string, phase corev1.PodPhase, age time.Duration, now time.Time) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
}

func TestDecide(t *testing.T) {
	now := time.Now()
	nodes := []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}}
	oos := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: OutOfServiceTaint, Effect: corev1.TaintEffectNoExecute}}}}
	nodes = append(nodes, oos)
	term := mkPod("old", "a", corev1.PodSucceeded, 3*time.Hour, now)
	pods := []*corev1.Pod{
		term,
		mkPod("mid", "a", corev1.PodFailed, 2*time.Hour, now),
		mkPod("new", "a", corev1.PodFailed, time.Hour, now),
		mkPod("running", "a", corev1.PodRunning, time.Hour, now),
		mkPod("orphan", "gone", corev1.PodRunning, time.Hour, now),
		mkPod("unsched", "", corev1.PodPending, time.Hour, now),
		mkPod("oos", "b", corev1.PodRunning, time.Hour, now),
	}
	ts := metav1.NewTime(now)
	pods[5].DeletionTimestamp = &ts
	pods[6].DeletionTimestamp = &ts
	missing := map[string]time.Time{}
	d := Decide(pods, nodes, 2, missing, now)
	if len(d.Terminated) != 1 || d.Terminated[0] != term {
		t.Fatalf("terminated: %v", d.Terminated)
	}
	if len(d.Orphaned) != 0 {
		t.Fatal("orphan deleted before its quarantine")
	}
	if len(d.Unscheduled) != 1 || len(d.OutOfService) != 1 {
		t.Fatalf("unscheduled %d, out of service %d", len(d.Unscheduled), len(d.OutOfService))
	}
	d = Decide(pods, nodes, 2, missing, now.Add(Quarantine))
	if len(d.Orphaned) != 1 || d.Orphaned[0].Name != "orphan" {
		t.Fatalf("orphaned after quarantine: %v", d.Orphaned)
	}
	oos.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if d := Decide(pods, nodes, 0, missing, now); len(d.OutOfService) != 0 || len(d.Terminated) != 0 {
		t.Fatal("ready out-of-service node's pod or threshold 0 collected")
	}
}
