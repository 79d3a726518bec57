package job

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// fakeServer runs the controller against client-go's fake clientset, with
// a reactor that names objects created with generateName and gives them
// uids and creation times, as the API server does.
func fakeServer(t *testing.T, backoff time.Duration) (*fake.Clientset, *framework.FakeRecorder) {
	t.Helper()
	cs := fake.NewClientset()
	var n atomic.Int64
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		m, ok := obj.(metav1.Object)
		if !ok {
			return false, nil, nil
		}
		i := n.Add(1)
		if m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), i))
		}
		if m.GetUID() == "" {
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", i)))
		}
		m.SetCreationTimestamp(metav1.NewTime(time.Now()))
		m.SetResourceVersion(fmt.Sprint(i))
		return false, nil, nil // the tracker stores it
	})
	// Every write gets a new resourceVersion (handlers skip events
	// without one); patches are applied here for that.
	cs.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if m, ok := a.(k8stesting.UpdateAction).GetObject().(metav1.Object); ok {
			m.SetResourceVersion(fmt.Sprint(n.Add(1)))
		}
		return false, nil, nil
	})
	cs.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		cur, err := cs.Tracker().Get(pa.GetResource(), pa.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		orig, _ := json.Marshal(cur)
		var patched []byte
		switch pa.GetPatchType() {
		case types.StrategicMergePatchType:
			patched, err = strategicpatch.StrategicMergePatch(orig, pa.GetPatch(), cur)
		case types.MergePatchType:
			patched, err = jsonpatch.MergePatch(orig, pa.GetPatch())
		default:
			return false, nil, nil
		}
		if err != nil {
			return true, nil, err
		}
		obj := cur.DeepCopyObject()
		if err := json.Unmarshal(patched, obj); err != nil {
			return true, nil, err
		}
		obj.(metav1.Object).SetResourceVersion(fmt.Sprint(n.Add(1)))
		return true, obj, cs.Tracker().Update(pa.GetResource(), obj, pa.GetNamespace())
	})
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	f := framework.NewFactory(clients, 0)
	rec := &framework.FakeRecorder{}
	jm := newController(&framework.Context{Factory: f, Clients: clients, Recorder: rec, Workers: 2})
	jm.BackoffBase, jm.BackoffMax = backoff, 36*backoff
	jm.batch = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	if !f.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	go jm.Run(ctx)
	return cs, rec
}

func waitFor(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

func newJob(name string, completions, parallelism, backoffLimit int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("job-" + name), Generation: 1},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions), Parallelism: ptr.To(parallelism), BackoffLimit: ptr.To(backoffLimit),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": name}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}},
		},
	}
}

func podsOf(t *testing.T, cs *fake.Clientset, job string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.Labels["job"] == job {
			out = append(out, p)
		}
	}
	return out
}

func active(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// finish marks a pod terminated with exit code code.
func finish(t *testing.T, cs *fake.Clientset, p corev1.Pod, code int32, conds ...corev1.PodCondition) {
	t.Helper()
	p.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		p.Status.Phase = corev1.PodFailed
	}
	now := metav1.Now()
	p.Status.Conditions = append(conds, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now})
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: now}}}}
	if _, err := cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getJob(t *testing.T, cs *fake.Clientset, name string) *batchv1.Job {
	t.Helper()
	j, err := cs.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func conditionTypes(j *batchv1.Job) string {
	var out []string
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, string(c.Type)+"/"+c.Reason)
		}
	}
	return strings.Join(out, ",")
}

func hasEvent(rec *framework.FakeRecorder, prefix string) bool {
	return slices.ContainsFunc(rec.List(), func(e string) bool { return strings.HasPrefix(e, prefix) })
}

func TestJobCompletesWithParallelism(t *testing.T) {
	cs, rec := fakeServer(t, 10*time.Millisecond)
	ctx := context.Background()
	if _, err := cs.BatchV1().Jobs("ns").Create(ctx, newJob("work", 5, 2, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := 0
	for done < 5 {
		var act []corev1.Pod
		waitFor(t, fmt.Sprintf("active pods after %d done", done), func() (bool, string) {
			act = active(podsOf(t, cs, "work"))
			want := min(2, 5-done)
			return len(act) == want, fmt.Sprintf("%d active, want %d", len(act), want)
		})
		if len(act) > 2 {
			t.Fatalf("%d active pods, parallelism is 2", len(act))
		}
		p := act[0]
		if !slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s has no tracking finalizer: %v", p.Name, p.Finalizers)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "Job" || ref.Name != "work" {
			t.Errorf("pod %s controller %+v", p.Name, ref)
		}
		finish(t, cs, p, 0)
		done++
	}
	waitFor(t, "complete", func() (bool, string) {
		j := getJob(t, cs, "work")
		return conditionTypes(j) == "SuccessCriteriaMet/CompletionsReached,Complete/CompletionsReached" &&
				j.Status.Succeeded == 5 && j.Status.Active == 0 && j.Status.CompletionTime != nil && j.Status.StartTime != nil &&
				len(j.Status.UncountedTerminatedPods.Succeeded) == 0,
			fmt.Sprintf("conditions %s status %+v", conditionTypes(j), j.Status)
	})
	for _, p := range podsOf(t, cs, "work") {
		if len(p.Finalizers) != 0 {
			t.Errorf("pod %s kept finalizers %v", p.Name, p.Finalizers)
		}
	}
	waitFor(t, "events", func() (bool, string) {
		return hasEvent(rec, "Normal SuccessfulCreate Created pod: work-") && hasEvent(rec, "Normal Completed Job completed"), fmt.Sprint(rec.List())
	})
}

func TestJobBackoffLimit(t *testing.T) {
	const base = 300 * time.Millisecond
	cs, rec := fakeServer(t, base)
	ctx := context.Background()
	if _, err := cs.BatchV1().Jobs("ns").Create(ctx, newJob("fail", 1, 1, 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var lastFail time.Time
	seen := map[string]bool{}
	for i := range 3 {
		var act []corev1.Pod
		waitFor(t, fmt.Sprintf("pod %d", i), func() (bool, string) {
			act = active(podsOf(t, cs, "fail"))
			return len(act) == 1 && !seen[act[0].Name], fmt.Sprintf("%d active", len(act))
		})
		if i > 0 {
			// Exponential back-off: base, then twice base.
			want := base << (i - 1)
			if gap := act[0].CreationTimestamp.Sub(lastFail); gap < want-50*time.Millisecond {
				t.Errorf("replacement %d came %v after the failure, back-off is %v", i, gap, want)
			}
		}
		seen[act[0].Name] = true
		lastFail = time.Now()
		finish(t, cs, act[0], 1)
	}
	waitFor(t, "failed", func() (bool, string) {
		j := getJob(t, cs, "fail")
		return conditionTypes(j) == "FailureTarget/BackoffLimitExceeded,Failed/BackoffLimitExceeded" && j.Status.Failed == 3 && j.Status.Active == 0,
			fmt.Sprintf("conditions %s status %+v", conditionTypes(j), j.Status)
	})
	time.Sleep(3 * base)
	if n := len(podsOf(t, cs, "fail")); n != 3 {
		t.Errorf("%d pods after failing, want 3 (no more)", n)
	}
	waitFor(t, "events", func() (bool, string) {
		return hasEvent(rec, "Warning BackoffLimitExceeded Job has reached the specified backoff limit"), fmt.Sprint(rec.List())
	})
}

func TestJobPodFailurePolicy(t *testing.T) {
	cs, _ := fakeServer(t, 10*time.Millisecond)
	ctx := context.Background()
	j := newJob("policy", 1, 1, 0)
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
	}}
	if _, err := cs.BatchV1().Jobs("ns").Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var first corev1.Pod
	waitFor(t, "first pod", func() (bool, string) {
		act := active(podsOf(t, cs, "policy"))
		if len(act) == 1 {
			first = act[0]
		}
		return len(act) == 1, fmt.Sprintf("%d", len(act))
	})
	// Disrupted: ignored (backoffLimit 0 would fail the Job otherwise),
	// replaced.
	finish(t, cs, first, 137, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue})
	var second corev1.Pod
	waitFor(t, "replacement", func() (bool, string) {
		act := active(podsOf(t, cs, "policy"))
		if len(act) == 1 && act[0].Name != first.Name {
			second = act[0]
			return true, ""
		}
		j := getJob(t, cs, "policy")
		return false, fmt.Sprintf("%d active; job %s %+v", len(act), conditionTypes(j), j.Status)
	})
	if j := getJob(t, cs, "policy"); j.Status.Failed != 0 {
		t.Errorf("ignored failure counted: %+v", j.Status)
	}
	finish(t, cs, second, 42)
	waitFor(t, "failed by the policy", func() (bool, string) {
		j := getJob(t, cs, "policy")
		return conditionTypes(j) == "FailureTarget/PodFailurePolicy,Failed/PodFailurePolicy" && j.Status.Failed == 1,
			fmt.Sprintf("%s %+v", conditionTypes(j), j.Status)
	})
}

func TestJobIndexed(t *testing.T) {
	cs, _ := fakeServer(t, 10*time.Millisecond)
	ctx := context.Background()
	j := newJob("idx", 3, 3, 6)
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	if _, err := cs.BatchV1().Jobs("ns").Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	waitFor(t, "3 pods", func() (bool, string) {
		pods = active(podsOf(t, cs, "idx"))
		return len(pods) == 3, fmt.Sprintf("%d", len(pods))
	})
	byIndex := map[string]corev1.Pod{}
	for _, p := range pods {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		byIndex[ix] = p
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix || p.Spec.Hostname != "idx-"+ix || !strings.HasPrefix(p.Name, "idx-"+ix+"-") {
			t.Errorf("pod %s: label %q hostname %q", p.Name, p.Labels[batchv1.JobCompletionIndexAnnotation], p.Spec.Hostname)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("pod %s env %+v", p.Name, env)
		}
	}
	if len(byIndex) != 3 || byIndex["0"].Name == "" || byIndex["2"].Name == "" {
		t.Fatalf("indexes %v", byIndex)
	}
	finish(t, cs, byIndex["1"], 0)
	waitFor(t, "index 1 completed", func() (bool, string) {
		j := getJob(t, cs, "idx")
		return j.Status.CompletedIndexes == "1" && j.Status.Succeeded == 1, fmt.Sprintf("%+v", j.Status)
	})
	// A failed index is retried with the same index.
	finish(t, cs, byIndex["0"], 1)
	waitFor(t, "index 0 again", func() (bool, string) {
		for _, p := range active(podsOf(t, cs, "idx")) {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" && p.Name != byIndex["0"].Name {
				return true, ""
			}
		}
		return false, "no new pod for index 0"
	})
	for _, p := range active(podsOf(t, cs, "idx")) {
		finish(t, cs, p, 0)
	}
	waitFor(t, "complete", func() (bool, string) {
		j := getJob(t, cs, "idx")
		return j.Status.CompletedIndexes == "0-2" && strings.Contains(conditionTypes(j), "Complete/"), fmt.Sprintf("%s %+v", conditionTypes(j), j.Status)
	})
}

func TestJobSuspendAndDeadline(t *testing.T) {
	cs, rec := fakeServer(t, 10*time.Millisecond)
	ctx := context.Background()
	j := newJob("sus", 2, 2, 6)
	j.Spec.Suspend = ptr.To(true)
	if _, err := cs.BatchV1().Jobs("ns").Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "suspended", func() (bool, string) {
		j := getJob(t, cs, "sus")
		return conditionTypes(j) == "Suspended/JobSuspended" && j.Status.StartTime == nil, fmt.Sprintf("%s %+v", conditionTypes(j), j.Status)
	})
	if n := len(podsOf(t, cs, "sus")); n != 0 {
		t.Fatalf("%d pods of a suspended job", n)
	}
	// Resumed with a deadline of 1s: pods, then DeadlineExceeded.
	j = getJob(t, cs, "sus")
	j.Spec.Suspend = ptr.To(false)
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	j.Generation++
	if _, err := cs.BatchV1().Jobs("ns").Update(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resumed", func() (bool, string) {
		n := len(active(podsOf(t, cs, "sus")))
		return n == 2, fmt.Sprintf("%d pods", n)
	})
	waitFor(t, "deadline exceeded", func() (bool, string) {
		j := getJob(t, cs, "sus")
		return strings.Contains(conditionTypes(j), "Failed/DeadlineExceeded") && j.Status.Active == 0 && j.Status.Failed == 2,
			fmt.Sprintf("%s %+v", conditionTypes(j), j.Status)
	})
	if n := len(podsOf(t, cs, "sus")); n != 0 {
		t.Errorf("%d pods left after the deadline", n)
	}
	waitFor(t, "events", func() (bool, string) {
		return hasEvent(rec, "Normal Suspended") && hasEvent(rec, "Normal Resumed") && hasEvent(rec, "Warning DeadlineExceeded") &&
			hasEvent(rec, "Normal SuccessfulDelete Deleted pod: sus-"), fmt.Sprint(rec.List())
	})
}
