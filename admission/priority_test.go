package admission

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPriority(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p := NewPriority(s)

	check := func(pod *corev1.Pod, class string, value int32, policy corev1.PreemptionPolicy) {
		t.Helper()
		mustNil(t, p.Admit(ctx, podCreate(pod)))
		if pod.Spec.PriorityClassName != class || pod.Spec.Priority == nil || *pod.Spec.Priority != value ||
			pod.Spec.PreemptionPolicy == nil || *pod.Spec.PreemptionPolicy != policy {
			t.Errorf("pod %s: class %q priority %v policy %v, want %q %d %s", pod.Name,
				pod.Spec.PriorityClassName, pod.Spec.Priority, pod.Spec.PreemptionPolicy, class, value, policy)
		}
	}

	// No class and no default: zero.
	check(testPod("ns", "a", "c"), "", 0, corev1.PreemptLowerPriority)

	// Built-in classes need no stored object.
	pod := testPod("ns", "b", "c")
	pod.Spec.PriorityClassName = "system-node-critical"
	check(pod, "system-node-critical", 2000001000, corev1.PreemptLowerPriority)
	pod = testPod("ns", "b2", "c")
	pod.Spec.PriorityClassName = "system-cluster-critical"
	check(pod, "system-cluster-critical", 2000000000, corev1.PreemptLowerPriority)

	// A stored class, with its policy.
	put(t, s, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "batch"}, Value: 100,
		PreemptionPolicy: ptr.To(corev1.PreemptNever)})
	pod = testPod("ns", "c", "c")
	pod.Spec.PriorityClassName = "batch"
	check(pod, "batch", 100, corev1.PreemptNever)

	// The global default applies to pods naming no class.
	put(t, s, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "normal"}, Value: 7, GlobalDefault: true})
	check(testPod("ns", "d", "c"), "normal", 7, corev1.PreemptLowerPriority)

	// A pod may not set another priority than its class's.
	pod = testPod("ns", "e", "c")
	pod.Spec.PriorityClassName = "batch"
	pod.Spec.Priority = ptr.To[int32](5)
	wantStatus(t, p.Admit(ctx, podCreate(pod)), metav1.StatusReasonForbidden,
		`pods "e" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 100 from the given PriorityClass name`)
	pod = testPod("ns", "e2", "c")
	pod.Spec.PriorityClassName = "batch"
	pod.Spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	wantStatus(t, p.Admit(ctx, podCreate(pod)), metav1.StatusReasonForbidden,
		`pods "e2" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name`)

	pod = testPod("ns", "f", "c")
	pod.Spec.PriorityClassName = "missing"
	wantStatus(t, p.Admit(ctx, podCreate(pod)), metav1.StatusReasonForbidden,
		`pods "f" is forbidden: no PriorityClass with name missing was found`)

	// Updates keep what create set.
	old := testPod("ns", "g", "c")
	old.Spec.Priority, old.Spec.PreemptionPolicy = ptr.To[int32](7), ptr.To(corev1.PreemptNever)
	upd := testPod("ns", "g", "c")
	mustNil(t, p.Admit(ctx, &Attributes{Cluster: testCluster, Operation: Update, Version: "v1", Resource: "pods",
		Namespace: "ns", Name: "g", Object: upd, OldObject: old}))
	if *upd.Spec.Priority != 7 || *upd.Spec.PreemptionPolicy != corev1.PreemptNever {
		t.Errorf("update lost priority: %v %v", upd.Spec.Priority, upd.Spec.PreemptionPolicy)
	}

	// Only one global default.
	second := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Value: 1, GlobalDefault: true}
	wantStatus(t, p.Validate(ctx, createAttrs(second, "scheduling.k8s.io", "priorityclasses")), metav1.StatusReasonForbidden,
		`priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass normal is already marked as default. Only one default can exist`)
	same := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "normal"}, Value: 8, GlobalDefault: true}
	a := createAttrs(same, "scheduling.k8s.io", "priorityclasses")
	a.Operation = Update
	mustNil(t, p.Validate(ctx, a))
}

func TestDefaultTolerationSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := NewDefaultTolerationSeconds()

	pod := testPod("ns", "p", "c")
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	want := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
	}
	if len(pod.Spec.Tolerations) != 2 || *pod.Spec.Tolerations[0].TolerationSeconds != 300 ||
		pod.Spec.Tolerations[0].Key != want[0].Key || pod.Spec.Tolerations[1].Key != want[1].Key ||
		pod.Spec.Tolerations[1].Effect != corev1.TaintEffectNoExecute || pod.Spec.Tolerations[1].Operator != corev1.TolerationOpExists {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}

	// A pod's own toleration of either taint is kept and not doubled; an
	// empty key tolerates both.
	pod = testPod("ns", "q", "c")
	pod.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists}}
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Tolerations) != 2 || pod.Spec.Tolerations[1].Key != corev1.TaintNodeNotReady {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}
	pod = testPod("ns", "r", "c")
	pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Tolerations) != 1 {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}
	// A NoSchedule toleration does not count.
	pod = testPod("ns", "s", "c")
	pod.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Tolerations) != 3 {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}
}
