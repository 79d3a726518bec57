package daemonset

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/pgkube/pgkube/controllers/framework"
)

func mkDS() *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ds", Generation: 3},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
	}
}

func mkNode(name string, lbl map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl}, Spec: corev1.NodeSpec{Taints: taints}}
}

func TestShouldRun(t *testing.T) {
	ds := mkDS()
	cases := []struct {
		node      *corev1.Node
		run, stay bool
	}{
		{mkNode("plain", nil), true, true},
		{mkNode("unreachable", nil, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), true, true},
		{mkNode("unreach-nosched", nil, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}), false, true},
		{mkNode("cordoned", nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true, true},
		{mkNode("diskpressure", nil, corev1.Taint{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule}), true, true},
		{mkNode("netdown", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), false, true},
		{mkNode("dedicated", nil, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoExecute}), false, false},
		{mkNode("prefer", nil, corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}), true, true},
	}
	for _, c := range cases {
		run, stay := shouldRun(ds, c.node)
		if run != c.run || stay != c.stay {
			t.Errorf("%s: run %v stay %v, want %v %v", c.node.Name, run, stay, c.run, c.stay)
		}
	}
	ds.Spec.Template.Spec.HostNetwork = true
	if run, _ := shouldRun(ds, cases[5].node); !run {
		t.Error("host-network pod does not tolerate network-unavailable")
	}
	ds = mkDS()
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "edge"}
	if run, stay := shouldRun(ds, mkNode("a", map[string]string{"role": "core"})); run || stay {
		t.Error("nodeSelector ignored")
	}
	if run, _ := shouldRun(ds, mkNode("b", map[string]string{"role": "edge"})); !run {
		t.Error("nodeSelector match refused")
	}
	ds = mkDS()
	ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"z1"}}}}}}}}
	if run, _ := shouldRun(ds, mkNode("z1", map[string]string{"zone": "z1"})); run {
		t.Error("node affinity ignored")
	}
	if run, _ := shouldRun(ds, mkNode("z2", map[string]string{"zone": "z2"})); !run {
		t.Error("node affinity match refused")
	}
	pod := podTemplate(ds, "z2", "h1")
	if targetNode(pod) != "z2" || pod.Labels[HashLabel] != "h1" || pod.Labels[GenerationLabel] != "3" || pod.GenerateName != "ds-" {
		t.Errorf("pod template: %+v", pod.ObjectMeta)
	}
	terms := pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 0 || terms[0].MatchFields[0].Key != "metadata.name" {
		t.Errorf("affinity terms: %+v", terms)
	}
	if len(pod.Spec.Tolerations) != 6 {
		t.Errorf("tolerations: %+v", pod.Spec.Tolerations)
	}
}

func mkPod(name, node, hash string, ready bool, age time.Duration, now time.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{HashLabel: hash}, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(now.Add(-age))}}
	return p
}

func TestManage(t *testing.T) {
	now := time.Now()
	failed := mkPod("f", "c", "h", false, time.Hour, now)
	failed.Status.Phase = corev1.PodFailed
	dup1, dup2 := mkPod("d1", "d", "h", true, 2*time.Hour, now), mkPod("d2", "d", "h", true, time.Hour, now)
	gone := mkPod("x", "e", "h", true, time.Hour, now)
	states := []NodeState{
		{Name: "a", Run: true, Stay: true},
		{Name: "b", Run: true, Stay: true, Pods: []*corev1.Pod{mkPod("b", "b", "h", true, time.Hour, now)}},
		{Name: "c", Run: true, Stay: true, Pods: []*corev1.Pod{failed}},
		{Name: "d", Run: true, Stay: true, Pods: []*corev1.Pod{dup1, dup2}},
		{Name: "e", Pods: []*corev1.Pod{gone}},
		{Name: "f", Run: false, Stay: true, Pods: []*corev1.Pod{mkPod("f2", "f", "h", true, time.Hour, now)}},
	}
	p := manage(states, "h", false)
	if len(p.Create) != 1 || p.Create[0] != "a" {
		t.Errorf("create %v", p.Create)
	}
	names := map[string]bool{}
	for _, d := range p.Delete {
		names[d.Name] = true
	}
	if len(p.Delete) != 3 || !names["f"] || !names["d2"] || !names["x"] || len(p.Failed) != 1 {
		t.Errorf("delete %v", names)
	}
	st := computeStatus(mkDS(), states, "h", now)
	if st.DesiredNumberScheduled != 4 || st.CurrentNumberScheduled != 3 || st.NumberMisscheduled != 2 || st.NumberReady != 2 ||
		st.UpdatedNumberScheduled != 3 || st.NumberUnavailable != 2 || st.ObservedGeneration != 3 {
		t.Errorf("status %+v", st)
	}
}

func TestRollingUpdate(t *testing.T) {
	now := time.Now()
	ds := mkDS()
	two := intstr.FromInt32(2)
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &two}
	var states []NodeState
	for _, n := range []string{"a", "b", "c", "d"} {
		states = append(states, NodeState{Name: n, Run: true, Stay: true, Pods: []*corev1.Pod{mkPod("old-"+n, n, "old", true, time.Hour, now)}})
	}
	if p := rollingUpdate(ds, states, "new", now); len(p.Delete) != 2 || len(p.Create) != 0 {
		t.Fatalf("maxUnavailable 2: %+v", p)
	}
	// One node already unavailable (new pod not ready), an old pod not ready: both count.
	states[0].Pods = []*corev1.Pod{mkPod("new-a", "a", "new", false, time.Minute, now)}
	states[1].Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse
	p := rollingUpdate(ds, states, "new", now)
	if len(p.Delete) != 1 || p.Delete[0].Name != "old-b" {
		t.Fatalf("with unavailable pods: %+v", p.Delete)
	}
	// Surge: new pods beside old ones, old ones go once the new are available.
	ds = mkDS()
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &one, MaxUnavailable: &zero}
	states = nil
	for _, n := range []string{"a", "b", "c"} {
		states = append(states, NodeState{Name: n, Run: true, Stay: true, Pods: []*corev1.Pod{mkPod("old-"+n, n, "old", true, time.Hour, now)}})
	}
	p = rollingUpdate(ds, states, "new", now)
	if len(p.Create) != 1 || p.Create[0] != "a" || len(p.Delete) != 0 {
		t.Fatalf("surge start: %+v", p)
	}
	states[0].Pods = append(states[0].Pods, mkPod("new-a", "a", "new", false, 0, now))
	if p = rollingUpdate(ds, states, "new", now); !p.empty() {
		t.Fatalf("surging node not yet available: %+v", p)
	}
	states[0].Pods[1] = mkPod("new-a", "a", "new", true, time.Second, now)
	p = rollingUpdate(ds, states, "new", now)
	if len(p.Delete) != 1 || p.Delete[0].Name != "old-a" || len(p.Create) != 1 || p.Create[0] != "b" {
		t.Fatalf("surge step: %+v", p)
	}
	if ex := extras(states[0].Pods, "new", true); len(ex) != 0 {
		t.Fatalf("surge keeps one old and one new: %v", ex)
	}
}

func TestFailedPodBackoff(t *testing.T) {
	now := time.Now()
	dc := &Controller{queue: framework.NewQueue("t", nil), failedBackoff: flowcontrol.NewBackOff(time.Second, time.Minute)}
	key := framework.Key{Cluster: "root", Namespace: "ns", Name: "ds"}
	failed := mkPod("f", "a", "h", false, time.Hour, now)
	failed.Status.Phase = corev1.PodFailed
	plan := Plan{Delete: []*corev1.Pod{failed}, Failed: []*corev1.Pod{failed}}
	dc.backOffFailed(key, &plan, now)
	if len(plan.Delete) != 1 {
		t.Fatal("first failed pod not deleted")
	}
	plan = Plan{Delete: []*corev1.Pod{failed}, Failed: []*corev1.Pod{failed}}
	dc.backOffFailed(key, &plan, now.Add(100*time.Millisecond))
	if len(plan.Delete) != 0 || len(plan.Failed) != 0 {
		t.Fatal("failed pod deleted again within its back-off")
	}
}
