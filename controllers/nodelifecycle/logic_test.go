package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestTaintsFollowReadyCondition(t *testing.T) {
	now := time.Now()
	node := &corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "custom", Effect: corev1.TaintEffectNoSchedule}}}}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, changed := reconcileTaints(node.Spec.Taints, wantedTaints(node), now); changed {
		t.Fatal("ready node: taints changed")
	}
	setUnknown(node, metav1.NewTime(now))
	c := condition(node, corev1.NodeReady)
	if c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" || c.Message != "Kubelet stopped posting node status." {
		t.Fatalf("Ready after setUnknown: %+v", c)
	}
	if condition(node, corev1.NodeMemoryPressure) == nil {
		t.Fatal("missing MemoryPressure not added")
	}
	taints, changed := reconcileTaints(node.Spec.Taints, wantedTaints(node), now)
	if !changed || len(taints) != 3 || taints[0].Key != "custom" {
		t.Fatalf("unknown node taints: %+v", taints)
	}
	var ne *corev1.Taint
	for i := range taints {
		if taints[i].Key == corev1.TaintNodeUnreachable && taints[i].Effect == corev1.TaintEffectNoExecute {
			ne = &taints[i]
		}
	}
	if ne == nil || ne.TimeAdded == nil {
		t.Fatalf("no unreachable:NoExecute with time: %+v", taints)
	}
	node.Spec.Taints = taints
	c.Status = corev1.ConditionFalse
	taints, _ = reconcileTaints(node.Spec.Taints, wantedTaints(node), now)
	keys := map[string]int{}
	for _, t := range taints {
		keys[t.Key]++
	}
	if keys[corev1.TaintNodeNotReady] != 2 || keys[corev1.TaintNodeUnreachable] != 0 {
		t.Fatalf("not-ready node taints: %+v", taints)
	}
	c.Status = corev1.ConditionTrue
	taints, _ = reconcileTaints(taints, wantedTaints(node), now)
	if len(taints) != 1 || taints[0].Key != "custom" {
		t.Fatalf("recovered node taints: %+v", taints)
	}
}

func TestEvictionTime(t *testing.T) {
	now := time.Now()
	added := metav1.NewTime(now.Add(-2 * time.Second))
	taints := []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added}}
	if at, ev := evictionTime(nil, taints, added.Time, now); !ev || !at.Equal(now) {
		t.Fatalf("no tolerations: %v %v", at, ev)
	}
	tols := []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)}}
	if at, ev := evictionTime(tols, taints, added.Time, now); !ev || !at.Equal(added.Add(5*time.Second)) {
		t.Fatalf("5s toleration: %v %v", at, ev)
	}
	tols[0].TolerationSeconds = nil
	if _, ev := evictionTime(tols, taints, added.Time, now); ev {
		t.Fatal("forever toleration evicts")
	}
	other := []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	if _, ev := evictionTime(other, taints, added.Time, now); !ev {
		t.Fatal("unrelated toleration keeps the pod")
	}
}
