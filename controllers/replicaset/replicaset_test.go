package replicaset

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type podOpt func(*corev1.Pod)

func node(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func readySince(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t)})
	}
}
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func restartsN(n int32) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "c", RestartCount: n})
	}
}
func cost(v string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{PodDeletionCostAnnotation: v} }
}

func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// TestPodsToDeleteOrder checks each rule of the ranking against a pod
// that differs only in that rule.
func TestPodsToDeleteOrder(t *testing.T) {
	running := func(extra ...podOpt) []podOpt {
		return append([]podOpt{node("n1"), phase(corev1.PodRunning), readySince(t0.Add(-time.Hour))}, extra...)
	}
	cases := []struct {
		name        string
		first, last *corev1.Pod
	}{
		{"unscheduled before scheduled", pod("a", phase(corev1.PodRunning)), pod("b", running()...)},
		{"pending before running", pod("a", node("n1"), phase(corev1.PodPending)), pod("b", node("n1"), phase(corev1.PodRunning))},
		{"pending before unknown", pod("a", node("n1"), phase(corev1.PodPending)), pod("b", node("n1"), phase(corev1.PodUnknown))},
		{"unknown before running", pod("a", node("n1"), phase(corev1.PodUnknown)), pod("b", node("n1"), phase(corev1.PodRunning))},
		{"not ready before ready", pod("a", node("n1"), phase(corev1.PodRunning)), pod("b", running()...)},
		{"lower deletion cost first", pod("a", running(cost("-5"))...), pod("b", running(cost("10"))...)},
		{"ready for less time first", pod("a", node("n1"), phase(corev1.PodRunning), readySince(t0.Add(-time.Minute))),
			pod("b", node("n1"), phase(corev1.PodRunning), readySince(t0.Add(-10*time.Hour)))},
		{"more restarts first", pod("a", running(restartsN(7))...), pod("b", running(restartsN(1))...)},
		{"newer first", pod("a", running(created(t0.Add(-time.Minute)))...), pod("b", running(created(t0.Add(-10*time.Hour)))...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, order := range [][]*corev1.Pod{{c.first, c.last}, {c.last, c.first}} {
				got := PodsToDelete(order, order, 1, t0)
				if len(got) != 1 || got[0] != c.first {
					t.Fatalf("deleted %v, want %s", names(got), c.first.Name)
				}
			}
		})
	}
}

func TestPodsToDeleteDoubledUpFirst(t *testing.T) {
	a := pod("a", node("n1"), phase(corev1.PodRunning), readySince(t0.Add(-time.Hour)))
	b := pod("b", node("n2"), phase(corev1.PodRunning), readySince(t0.Add(-time.Hour)))
	c := pod("c", node("n2"), phase(corev1.PodRunning), readySince(t0.Add(-time.Hour)))
	// a is alone on n1; b and c share n2: one of those goes first.
	got := PodsToDelete([]*corev1.Pod{a, b, c}, []*corev1.Pod{a, b, c}, 1, t0)
	if got[0] == a {
		t.Fatalf("deleted the pod alone on its node")
	}
}

func TestPodsToDeleteMixed(t *testing.T) {
	ready := pod("ready", node("n1"), phase(corev1.PodRunning), readySince(t0.Add(-time.Hour)))
	notReady := pod("notready", node("n1"), phase(corev1.PodRunning))
	pending := pod("pending", node("n1"), phase(corev1.PodPending))
	unsched := pod("unscheduled", phase(corev1.PodPending))
	all := []*corev1.Pod{ready, notReady, pending, unsched}
	got := names(PodsToDelete(all, all, 3, t0))
	want := []string{"unscheduled", "pending", "notready"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := len(PodsToDelete(all, all, 10, t0)); n != 4 {
		t.Fatalf("asking for more than there are gave %d", n)
	}
}

func TestSlowStart(t *testing.T) {
	var calls atomic.Int32
	n, err := slowStart(10, 1, func() error { calls.Add(1); return nil })
	if n != 10 || err != nil || calls.Load() != 10 {
		t.Fatalf("all succeed: %d %v calls %d", n, err, calls.Load())
	}
	// Batches 1, 2, 4: a failure on the 4th call stops after the batch of
	// 4 (calls 4..7), so 7 calls, 6 successes.
	calls.Store(0)
	n, err = slowStart(20, 1, func() error {
		if calls.Add(1) == 4 {
			return errors.New("quota")
		}
		return nil
	})
	if err == nil || n != 6 || calls.Load() != 7 {
		t.Fatalf("failure: successes %d err %v calls %d", n, err, calls.Load())
	}
	if n, err := slowStart(0, 1, func() error { t.Fatal("called"); return nil }); n != 0 || err != nil {
		t.Fatal(n, err)
	}
}

func TestExpectations(t *testing.T) {
	now := t0
	e := NewExpectations(func() time.Time { return now })
	if !e.Satisfied("k") {
		t.Fatal("unknown key not satisfied")
	}
	e.ExpectCreations("k", 2)
	if e.Satisfied("k") {
		t.Fatal("satisfied with creations outstanding")
	}
	e.CreationObserved("k")
	e.CreationObserved("k")
	if !e.Satisfied("k") {
		t.Fatal("not satisfied after both creations")
	}
	e.ExpectDeletions("k", []string{"p1", "p2"})
	e.DeletionObserved("k", "p1")
	e.DeletionObserved("k", "p1")
	if e.Satisfied("k") {
		t.Fatal("satisfied with p2 outstanding")
	}
	now = now.Add(ExpectationsTTL + time.Second)
	if !e.Satisfied("k") {
		t.Fatal("expired expectations still block")
	}
	e.Forget("k")
	if !e.Satisfied("k") {
		t.Fatal("forgotten key not satisfied")
	}
}

func TestComputeStatus(t *testing.T) {
	three := int32(3)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Generation: 4},
		Spec: appsv1.ReplicaSetSpec{Replicas: &three, MinReadySeconds: 30,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "tier": "web"}}}}}
	full := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "x", "tier": "web", "extra": "1"} }
	partial := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "x"} }
	pods := []*corev1.Pod{
		pod("a", full, readySince(t0.Add(-time.Minute))),    // available
		pod("b", full, readySince(t0.Add(-10*time.Second))), // ready, not yet available
		pod("c", partial),
	}
	st := computeStatus(rs, pods, []*corev1.Pod{pod("d")}, errors.New("quota exceeded"), t0, true)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 {
		t.Fatalf("counts: %+v", st)
	}
	if st.TerminatingReplicas == nil || *st.TerminatingReplicas != 1 {
		t.Fatalf("terminating: %v", st.TerminatingReplicas)
	}
	// 3 pods for 3 replicas: an error while there is no difference has no
	// reason, as upstream.
	c := findCondition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	if c == nil || c.Status != corev1.ConditionTrue || c.Message != "quota exceeded" {
		t.Fatalf("failure condition: %+v", st.Conditions)
	}
	rs.Status = st
	st2 := computeStatus(rs, pods[:2], nil, errors.New("quota exceeded"), t0, false)
	if c := findCondition(st2.Conditions, appsv1.ReplicaSetReplicaFailure); c == nil || c.Reason != "" {
		t.Fatalf("existing condition should be kept as is: %+v", st2.Conditions)
	}
	if st2.TerminatingReplicas != nil {
		t.Fatal("terminatingReplicas reported where not wanted")
	}
	rs.Status = st2
	st3 := computeStatus(rs, pods[:2], nil, nil, t0, false)
	if findCondition(st3.Conditions, appsv1.ReplicaSetReplicaFailure) != nil {
		t.Fatal("condition not cleared after a good round")
	}
	rs.Status = appsv1.ReplicaSetStatus{}
	st4 := computeStatus(rs, pods[:1], nil, errors.New("forbidden"), t0, false)
	if c := findCondition(st4.Conditions, appsv1.ReplicaSetReplicaFailure); c == nil || c.Reason != "FailedCreate" {
		t.Fatalf("want FailedCreate: %+v", st4.Conditions)
	}
	st4.ObservedGeneration = 4
	rs.Status = st4
	if !statusUnchanged(rs, computeStatus(rs, pods[:1], nil, errors.New("forbidden"), t0, false)) {
		t.Fatal("same status reported as changed")
	}
}

func TestAvailability(t *testing.T) {
	p := pod("a", readySince(t0.Add(-5*time.Second)))
	if !IsPodAvailable(p, 0, t0) || IsPodAvailable(p, 10, t0) || !IsPodAvailable(p, 4, t0) {
		t.Fatal("availability with minReadySeconds")
	}
	d, ok := nextAvailableIn([]*corev1.Pod{p, pod("b")}, 10, t0)
	if !ok || d != 5*time.Second {
		t.Fatalf("next availability in %v %v", d, ok)
	}
}

func TestReplicationControllerConversion(t *testing.T) {
	two := int32(2)
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "ns", UID: "u1", Generation: 3},
		Spec: corev1.ReplicationControllerSpec{Replicas: &two, Selector: map[string]string{"a": "b"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}}}},
		Status: corev1.ReplicationControllerStatus{Replicas: 1, Conditions: []corev1.ReplicationControllerCondition{
			{Type: corev1.ReplicationControllerReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}}},
	}
	rs := rcToRS(rc)
	if *rs.Spec.Replicas != 2 || rs.Spec.Selector.MatchLabels["a"] != "b" || rs.Spec.Template.Labels["a"] != "b" || rs.UID != "u1" {
		t.Fatalf("converted: %+v", rs)
	}
	back := rsStatusToRC(rs.Status)
	if back.Replicas != 1 || len(back.Conditions) != 1 || back.Conditions[0].Type != corev1.ReplicationControllerReplicaFailure {
		t.Fatalf("status back: %+v", back)
	}
	rs.Spec.Template.Labels["a"] = "changed"
	if rc.Spec.Template.Labels["a"] != "b" {
		t.Fatal("conversion shares the template")
	}
}

func TestPodFromTemplate(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", UID: "u"},
		Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"x": "y"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}}}
	p, err := podFromTemplate(rs, "ReplicaSet")
	if err != nil {
		t.Fatal(err)
	}
	ref := metav1.GetControllerOf(p)
	if p.GenerateName != "web-abc-" || ref == nil || ref.UID != "u" || ref.APIVersion != "apps/v1" ||
		ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || p.Labels["app"] != "web" || p.Annotations["x"] != "y" {
		t.Fatalf("pod: %+v", p)
	}
	rs.Spec.Template.Labels = nil
	if _, err := podFromTemplate(rs, "ReplicaSet"); err == nil {
		t.Fatal("a template without labels made a pod")
	}
}
