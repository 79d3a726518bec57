package job

import (
	"reflect"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
)

func TestBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	for _, c := range []struct {
		failures int32
		last     *time.Time
		want     time.Duration
	}{
		{0, nil, 0},
		{1, at(0), 10 * time.Second},
		{2, at(0), 20 * time.Second},
		{3, at(0), 40 * time.Second},
		{3, at(15 * time.Second), 25 * time.Second},
		{3, at(time.Minute), 0},
		{6, at(0), 320 * time.Second},
		{7, at(0), 6 * time.Minute}, // 640s capped
		{50, at(0), 6 * time.Minute},
		{50, at(5 * time.Minute), time.Minute},
	} {
		if got := Backoff(now, c.failures, c.last, DefaultBackoff, MaxBackoff); got != c.want {
			t.Errorf("%d failures, last %v ago: %v, want %v", c.failures, now.Sub(ptr.Deref(c.last, now)), got, c.want)
		}
	}
	// A configured base (tests use 1s).
	if got := Backoff(now, 3, at(0), time.Second, 36*time.Second); got != 4*time.Second {
		t.Errorf("base 1s, 3 failures: %v", got)
	}
}

func finishedPod(name string, phase corev1.PodPhase, finished time.Time) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: "c",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(finished)}}}}},
	}
}

func TestNextBackoff(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := nextBackoff(backoffRecord{}, nil, []*corev1.Pod{finishedPod("a", corev1.PodFailed, t0), finishedPod("b", corev1.PodFailed, t0.Add(time.Second))})
	if r.failuresAfterLastSuccess != 2 || !r.lastFailure.Equal(t0.Add(time.Second)) {
		t.Errorf("two failures: %+v", r)
	}
	r = nextBackoff(r, nil, []*corev1.Pod{finishedPod("c", corev1.PodFailed, t0.Add(2*time.Second))})
	if r.failuresAfterLastSuccess != 3 {
		t.Errorf("a third: %+v", r)
	}
	// A success resets; failures after it count.
	r = nextBackoff(r, []*corev1.Pod{finishedPod("s", corev1.PodSucceeded, t0.Add(5*time.Second))},
		[]*corev1.Pod{finishedPod("d", corev1.PodFailed, t0.Add(4*time.Second)), finishedPod("e", corev1.PodFailed, t0.Add(6*time.Second))})
	if r.failuresAfterLastSuccess != 1 || !r.lastFailure.Equal(t0.Add(6*time.Second)) {
		t.Errorf("after a success: %+v", r)
	}
	r = nextBackoff(r, []*corev1.Pod{finishedPod("s2", corev1.PodSucceeded, t0.Add(7*time.Second))}, nil)
	if r.failuresAfterLastSuccess != 0 || r.lastFailure != nil {
		t.Errorf("success only: %+v", r)
	}
}

func TestFinishTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := finishedPod("a", corev1.PodFailed, t0)
	if got := finishTime(p); !got.Equal(t0) {
		t.Errorf("from containers: %v", got)
	}
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "running"})
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(t0.Add(time.Minute))}}
	if got := finishTime(p); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("a container still running, from Ready=False: %v", got)
	}
	p.Status.Conditions = nil
	p.DeletionTimestamp = ptr.To(metav1.NewTime(t0.Add(time.Hour)))
	p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if got := finishTime(p); !got.Equal(t0.Add(time.Hour - 30*time.Second)) {
		t.Errorf("from deletion: %v", got)
	}
}

func TestIntervals(t *testing.T) {
	iv := parseIntervals("0,2-4,6,7,9-12", 11)
	if got := iv.String(); got != "0,2-4,6,7,9,10" {
		t.Errorf("parse/String: %q", got)
	}
	if iv.total() != 8 {
		t.Errorf("total %d", iv.total())
	}
	for ix, want := range map[int]bool{0: true, 1: false, 3: true, 5: false, 7: true, 8: false, 10: true, 11: false} {
		if iv.has(ix) != want {
			t.Errorf("has(%d) = %v", ix, !want)
		}
	}
	iv = iv.with([]int{8, 1, 5})
	if got := iv.String(); got != "0-10" {
		t.Errorf("with: %q", got)
	}
	if got := intervals(nil).with([]int{3, 1, 2, 7}).String(); got != "1-3,7" {
		t.Errorf("from nothing: %q", got)
	}
	if got := parseIntervals("1,bad,3", 10).String(); got != "1,3" {
		t.Errorf("corrupt part skipped: %q", got)
	}
}

func indexedPod(ix int, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('a'+ix)), UID: types.UID("p" + string(rune('a'+ix))),
			Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: string(rune('0' + ix))},
			Finalizers:  []string{batchv1.JobTrackingFinalizer}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestFirstPendingIndexes(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](6), CompletionMode: ptr.To(batchv1.IndexedCompletion)},
		Status: batchv1.JobStatus{CompletedIndexes: "0"}}
	pods := []*corev1.Pod{indexedPod(1, corev1.PodSucceeded), indexedPod(2, corev1.PodRunning), indexedPod(4, corev1.PodFailed)}
	prev, now := succeededIndexes(job, pods)
	if prev.String() != "0" || now.String() != "0,1" {
		t.Fatalf("succeeded: prev %q now %q", prev, now)
	}
	sc := &syncCtx{job: job, pods: pods, active: []*corev1.Pod{pods[1]}, succeededIdx: now}
	if got := firstPendingIndexes(sc, 2, 6); !reflect.DeepEqual(got, []int{3, 4}) {
		t.Errorf("pending: %v", got)
	}
	if got := firstPendingIndexes(sc, 10, 6); !reflect.DeepEqual(got, []int{3, 4, 5}) {
		t.Errorf("all pending: %v", got)
	}
	// Repeated and out-of-range indexes go first when removing.
	dup := indexedPod(2, corev1.PodPending)
	dup.Name = "dup"
	big := indexedPod(7, corev1.PodRunning)
	rm, keep := duplicateIndexPods(job, []*corev1.Pod{pods[1], dup, big})
	if len(rm) != 2 || len(keep) != 1 || keep[0].Name != pods[1].Name {
		t.Errorf("duplicates: rm %v keep %v", names(rm), names(keep))
	}
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func exitPod(code int32, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodFailed, Conditions: conds,
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "ok", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}},
			}},
	}
}

func TestFailurePolicy(t *testing.T) {
	pfp := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr.To("main"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1, 2}}},
	}}
	check := func(what string, p *corev1.Pod, wantMsg bool, wantCount bool, wantAction *batchv1.PodFailurePolicyAction) {
		t.Helper()
		msg, count, action := matchFailurePolicy(pfp, p)
		if (msg != nil) != wantMsg || count != wantCount || !reflect.DeepEqual(action, wantAction) {
			t.Errorf("%s: msg %v count %v action %v", what, ptr.Deref(msg, "<nil>"), count, ptr.Deref(action, "<nil>"))
		}
	}
	check("disrupted: ignored", exitPod(42, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}), false, false, ptr.To(batchv1.PodFailurePolicyActionIgnore))
	check("exit 42: fail the job", exitPod(42), true, true, ptr.To(batchv1.PodFailurePolicyActionFailJob))
	check("exit 7: counted", exitPod(7), false, true, ptr.To(batchv1.PodFailurePolicyActionCount))
	check("exit 1: no rule", exitPod(1), false, true, nil)
	msg, _, _ := matchFailurePolicy(pfp, exitPod(42))
	if want := "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"; *msg != want {
		t.Errorf("message %q", *msg)
	}
	if _, count, _ := matchFailurePolicy(nil, exitPod(42)); !count {
		t.Error("no policy: every failure counts")
	}
}

func TestSuccessPolicy(t *testing.T) {
	sp := &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
		{SucceededIndexes: ptr.To("0,2-3")},
		{SucceededCount: ptr.To[int32](4)},
	}}
	if _, ok := matchSuccessPolicy(sp, 6, parseIntervals("0,2", 6)); ok {
		t.Error("met with 0,2")
	}
	if msg, ok := matchSuccessPolicy(sp, 6, parseIntervals("0-3", 6)); !ok || msg != "Matched rules at index 0" {
		t.Errorf("0-3: %q %v", msg, ok)
	}
	if msg, ok := matchSuccessPolicy(sp, 6, parseIntervals("1,3-5", 6)); !ok || msg != "Matched rules at index 1" {
		t.Errorf("four indexes: %q %v", msg, ok)
	}
}

func TestCleanUncounted(t *testing.T) {
	st := &batchv1.JobStatus{Succeeded: 1, Failed: 1, UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{
		Succeeded: []types.UID{"a", "b"}, Failed: []types.UID{"c"}}}
	if !cleanUncounted(st, sets.New[types.UID]("b")) {
		t.Fatal("nothing changed")
	}
	if st.Succeeded != 2 || st.Failed != 2 || !reflect.DeepEqual(st.UncountedTerminatedPods.Succeeded, []types.UID{"b"}) || len(st.UncountedTerminatedPods.Failed) != 0 {
		t.Errorf("%+v %+v", st, st.UncountedTerminatedPods)
	}
}

func TestSortForRemoval(t *testing.T) {
	now := time.Now()
	mk := func(name, node string, phase corev1.PodPhase, ready bool, created time.Time) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	pods := []*corev1.Pod{
		mk("running-ready", "n", corev1.PodRunning, true, now),
		mk("running-old", "n", corev1.PodRunning, false, now.Add(-time.Hour)),
		mk("running-new", "n", corev1.PodRunning, false, now),
		mk("pending", "n", corev1.PodPending, false, now),
		mk("unscheduled", "", corev1.PodPending, false, now),
	}
	sortForRemoval(pods)
	want := []string{"unscheduled", "pending", "running-new", "running-old", "running-ready"}
	if got := names(pods); !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
