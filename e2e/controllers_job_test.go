package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// ctlJobServer is a pgkube up of its own (without scheduler and node
// agent) whose controller manager replaces failed pods after 1s (doubling)
// instead of 10s and reads its clock offset from the returned file (see
// controllers/testclock).
func ctlJobServer(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	dir := tempDir(t)
	clockFile := filepath.Join(dir, "clock-offset")
	t.Setenv("PGKUBE_JOB_BACKOFF_BASE", "1s")
	t.Setenv("PGKUBE_TEST_CLOCK_FILE", clockFile)
	certs, _ := testCerts(t)
	// No scheduler and no node agent: the test reports pod status itself.
	p := startUp(t, dir, freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--scheduler=false", "--agent=none")
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
	})
	return kubernetes.NewForConfigOrDie(adminConfig(t, p.url)), clockFile
}

func ctlJob(name string, completions, parallelism, backoffLimit int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions), Parallelism: ptr.To(parallelism), BackoffLimit: ptr.To(backoffLimit),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": name}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"true"}}}},
			},
		},
	}
}

// ctlFinish ends a pod's only container with exit code code, as its
// node agent would report it.
func ctlFinish(code int32) func(*corev1.PodStatus) {
	return func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase = corev1.PodSucceeded
		reason := "Completed"
		if code != 0 {
			st.Phase, reason = corev1.PodFailed, "Error"
		}
		st.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now, Reason: "PodCompleted"}}
		st.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", Image: "busybox", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now}}}}
	}
}

// ctlActivePods are the job's pods neither finished nor being deleted.
func ctlActivePods(t *testing.T, cs kubernetes.Interface, ns, job string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "job=" + job})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ctlMaxActive watches a job's pods and records the most ever active at
// once (not finished, not being deleted).
type ctlMaxActive struct {
	mu     sync.Mutex
	active map[string]bool
	max    int
	seen   map[string]bool
}

func ctlWatchActive(t *testing.T, cs kubernetes.Interface, ns, job string) *ctlMaxActive {
	t.Helper()
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: "job=" + job})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	m := &ctlMaxActive{active: map[string]bool{}, seen: map[string]bool{}}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			m.mu.Lock()
			m.seen[p.Name] = true
			active := ev.Type != watch.Deleted && p.DeletionTimestamp == nil &&
				p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
			if active {
				m.active[p.Name] = true
			} else {
				delete(m.active, p.Name)
			}
			m.max = max(m.max, len(m.active))
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *ctlMaxActive) get() (maxActive, created int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max, len(m.seen)
}

func ctlConditions(j *batchv1.Job) string {
	var out []string
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, string(c.Type)+"/"+c.Reason)
		}
	}
	return strings.Join(out, ",")
}

// ctlEvents are the reasons and messages of the Events about an object.
func ctlEvents(t *testing.T, cs kubernetes.Interface, ns, kind, name string) string {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": kind, "involvedObject.name": name}.AsSelector().String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestControllersJob(t *testing.T) {
	cs, clockFile := ctlJobServer(t)
	ctx := context.Background()
	const wait = 30 * time.Second

	t.Run("completions 5 parallelism 2", func(t *testing.T) {
		const ns = "ctl-job-complete"
		namespace(t, cs, ns)
		watcher := ctlWatchActive(t, cs, ns, "five")
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, ctlJob("five", 5, 2, 6), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for done := 0; done < 5; done++ {
			var act []corev1.Pod
			want := min(2, 5-done)
			ctlWait(t, wait, fmt.Sprintf("%d active pods after %d succeeded", want, done), func() error {
				act = ctlActivePods(t, cs, ns, "five")
				if len(act) != want {
					return fmt.Errorf("%d active", len(act))
				}
				return nil
			})
			p := act[0]
			if !slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
				t.Errorf("pod %s without the tracking finalizer: %v", p.Name, p.Finalizers)
			}
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "Job" || ref.Name != "five" {
				t.Errorf("pod %s owner %+v", p.Name, p.OwnerReferences)
			}
			ctlPodStatus(t, cs, ns, p.Name, ctlFinish(0))
		}
		ctlWait(t, wait, "job complete", func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "five", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ctlConditions(j) != "SuccessCriteriaMet/CompletionsReached,Complete/CompletionsReached" ||
				j.Status.Succeeded != 5 || j.Status.Active != 0 || j.Status.Failed != 0 ||
				j.Status.StartTime == nil || j.Status.CompletionTime == nil {
				return fmt.Errorf("conditions %s status %+v", ctlConditions(j), j.Status)
			}
			return nil
		})
		if most, created := watcher.get(); most > 2 || created != 5 {
			t.Errorf("%d pods active at once (parallelism 2), %d created (completions 5)", most, created)
		}
		ctlWait(t, wait, "finalizers removed", func() error {
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job=five"})
			if err != nil {
				return err
			}
			for _, p := range l.Items {
				if len(p.Finalizers) > 0 {
					return fmt.Errorf("pod %s: %v", p.Name, p.Finalizers)
				}
			}
			return nil
		})
		ctlWait(t, wait, "events", func() error {
			ev := ctlEvents(t, cs, ns, "Job", "five")
			if strings.Count(ev, "SuccessfulCreate: Created pod: five-") != 5 || !strings.Contains(ev, "Completed: Job completed") {
				return fmt.Errorf("events:\n%s", ev)
			}
			return nil
		})
	})

	t.Run("backoffLimit", func(t *testing.T) {
		const ns = "ctl-job-fail"
		namespace(t, cs, ns)
		watcher := ctlWatchActive(t, cs, ns, "flaky")
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, ctlJob("flaky", 1, 1, 2), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var failedAt time.Time
		failed := map[string]bool{}
		for i := 0; i <= 2; i++ {
			var p corev1.Pod
			ctlWait(t, wait, fmt.Sprintf("pod %d", i+1), func() error {
				act := ctlActivePods(t, cs, ns, "flaky")
				if len(act) != 1 || failed[act[0].Name] {
					l, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
					var st []string
					for _, p := range l.Items {
						st = append(st, fmt.Sprintf("%s %s rv=%s fin=%v del=%v", p.Name, p.Status.Phase, p.ResourceVersion, p.Finalizers, p.DeletionTimestamp))
					}
					j, _ := cs.BatchV1().Jobs(ns).Get(ctx, "flaky", metav1.GetOptions{})
					return fmt.Errorf("%d active; pods %v; job %s %+v", len(act), st, ctlConditions(j), j.Status)
				}
				p = act[0]
				return nil
			})
			if i > 0 {
				// Back-off: 1s, then 2s (the manager's base is 1s).
				if gap, want := p.CreationTimestamp.Sub(failedAt), time.Duration(1<<(i-1))*time.Second; gap < want-time.Second {
					t.Errorf("replacement %d created %v after the failure; back-off is %v", i, gap, want)
				}
			}
			failedAt = time.Now().Truncate(time.Second)
			failed[p.Name] = true
			ctlPodStatus(t, cs, ns, p.Name, ctlFinish(1))
		}
		ctlWait(t, wait, "job failed", func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "flaky", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ctlConditions(j) != "FailureTarget/BackoffLimitExceeded,Failed/BackoffLimitExceeded" || j.Status.Failed != 3 || j.Status.Active != 0 {
				return fmt.Errorf("conditions %s status %+v", ctlConditions(j), j.Status)
			}
			return nil
		})
		time.Sleep(5 * time.Second) // longer than the next back-off: no fourth pod
		if _, created := watcher.get(); created != 3 {
			t.Errorf("%d pods created, want 3 (backoffLimit 2)", created)
		}
		ctlWait(t, wait, "events", func() error {
			ev := ctlEvents(t, cs, ns, "Job", "flaky")
			if !strings.Contains(ev, "BackoffLimitExceeded: Job has reached the specified backoff limit") {
				return fmt.Errorf("events:\n%s", ev)
			}
			return nil
		})
	})

	t.Run("indexed", func(t *testing.T) {
		const ns = "ctl-job-indexed"
		namespace(t, cs, ns)
		j := ctlJob("idx", 3, 3, 6)
		j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var act []corev1.Pod
		ctlWait(t, wait, "3 pods", func() error {
			if act = ctlActivePods(t, cs, ns, "idx"); len(act) != 3 {
				return fmt.Errorf("%d active", len(act))
			}
			return nil
		})
		indexes := map[string]string{}
		for _, p := range act {
			ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
			indexes[ix] = p.Name
			if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix || p.Spec.Hostname != "idx-"+ix || !strings.HasPrefix(p.Name, "idx-"+ix+"-") {
				t.Errorf("pod %s: index %q label %q hostname %q", p.Name, ix, p.Labels[batchv1.JobCompletionIndexAnnotation], p.Spec.Hostname)
			}
			if env := p.Spec.Containers[0].Env; len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom == nil ||
				env[0].ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-completion-index']" {
				t.Errorf("pod %s env %+v", p.Name, env)
			}
		}
		if len(indexes) != 3 || indexes["0"] == "" || indexes["1"] == "" || indexes["2"] == "" {
			t.Fatalf("indexes %v", indexes)
		}
		ctlPodStatus(t, cs, ns, indexes["0"], ctlFinish(0))
		ctlPodStatus(t, cs, ns, indexes["2"], ctlFinish(0))
		ctlWait(t, wait, "completed indexes 0,2", func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "idx", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if j.Status.CompletedIndexes != "0,2" || j.Status.Succeeded != 2 {
				return fmt.Errorf("%+v", j.Status)
			}
			return nil
		})
		ctlPodStatus(t, cs, ns, indexes["1"], ctlFinish(0))
		ctlWait(t, wait, "complete", func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "idx", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if j.Status.CompletedIndexes != "0-2" || !strings.Contains(ctlConditions(j), "Complete/") {
				return fmt.Errorf("%s %+v", ctlConditions(j), j.Status)
			}
			return nil
		})
	})

	// The manager's clock: real time plus what the file says.
	var offset time.Duration
	setOffset := func(t *testing.T, d time.Duration) {
		t.Helper()
		if err := os.WriteFile(clockFile+".tmp", []byte(d.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(clockFile+".tmp", clockFile); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cronjob every minute with a controllable clock", func(t *testing.T) {
		const ns = "ctl-cronjob"
		namespace(t, cs, ns)
		offset = 10 * time.Minute
		// The manager's clock runs ten minutes ahead: the CronJob, created
		// now, missed ten starts and runs the latest at once.
		setOffset(t, offset)
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "tick"},
			Spec: batchv1.CronJobSpec{Schedule: "*/1 * * * *", ConcurrencyPolicy: batchv1.AllowConcurrent,
				JobTemplate: batchv1.JobTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"cron": "tick"}},
					Spec:       ctlJob("tick", 1, 1, 0).Spec,
				}},
		}
		cj.Spec.JobTemplate.Spec.Template.Labels = map[string]string{"job": "tick"}
		if _, err := cs.BatchV1().CronJobs(ns).Create(ctx, cj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nameRE := regexp.MustCompile(`^tick-(\d+)$`)
		// jobs are the CronJob's Jobs by scheduled minute.
		jobs := func() (map[int64]batchv1.Job, error) {
			l, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			out := map[int64]batchv1.Job{}
			for _, j := range l.Items {
				m := nameRE.FindStringSubmatch(j.Name)
				if m == nil {
					return nil, fmt.Errorf("job %s is not NAME-<minutes>", j.Name)
				}
				minute, _ := strconv.ParseInt(m[1], 10, 64)
				want := time.Unix(minute*60, 0).UTC().Format(time.RFC3339)
				if got := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != want {
					return nil, fmt.Errorf("job %s scheduled-timestamp %q, want %q", j.Name, got, want)
				}
				if ref := metav1.GetControllerOf(&j); ref == nil || ref.Kind != "CronJob" || ref.Name != "tick" {
					return nil, fmt.Errorf("job %s owner %+v", j.Name, j.OwnerReferences)
				}
				if j.Labels["cron"] != "tick" {
					return nil, fmt.Errorf("job %s labels %v", j.Name, j.Labels)
				}
				out[minute] = j
			}
			return out, nil
		}
		latest := func(js map[int64]batchv1.Job) int64 {
			var m int64
			for k := range js {
				m = max(m, k)
			}
			return m
		}
		var first int64
		ctlWait(t, wait, "first job", func() error {
			js, err := jobs()
			if err != nil {
				return err
			}
			if len(js) != 1 {
				return fmt.Errorf("%d jobs", len(js))
			}
			first = latest(js)
			return nil
		})
		// It is the minute of the manager's (moved) clock, not the real one.
		fake := time.Now().Add(offset)
		if sched := time.Unix(first*60, 0); sched.After(fake) || fake.Sub(sched) > 2*time.Minute {
			t.Fatalf("first job scheduled at %v; the manager's clock says %v", sched, fake)
		}
		ctlWait(t, wait, "cronjob status", func() error {
			c, err := cs.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if c.Status.LastScheduleTime == nil || c.Status.LastScheduleTime.Unix() != first*60 || len(c.Status.Active) != 1 ||
				c.Status.Active[0].Name != fmt.Sprintf("tick-%d", first) {
				return fmt.Errorf("status %+v", c.Status)
			}
			return nil
		})
		// The Job runs: the Job controller made its pod.
		ctlWait(t, wait, "the job's pod", func() error {
			if n := len(ctlActivePods(t, cs, ns, "tick")); n != 1 {
				return fmt.Errorf("%d pods", n)
			}
			return nil
		})

		// A minute later (for the manager): the next one, the first still
		// running (Allow).
		offset += time.Minute
		setOffset(t, offset)
		ctlWait(t, wait, "second job", func() error {
			js, err := jobs()
			if err != nil {
				return err
			}
			if len(js) < 2 || latest(js) <= first {
				return fmt.Errorf("%d jobs, latest %d (first %d)", len(js), latest(js), first)
			}
			return nil
		})

		// Forbid: no new Job while one runs.
		c, err := cs.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
		if _, err := cs.BatchV1().CronJobs(ns).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		before, err := jobs()
		if err != nil {
			t.Fatal(err)
		}
		offset += time.Minute
		setOffset(t, offset)
		ctlWait(t, wait, "JobAlreadyActive event", func() error {
			if ev := ctlEvents(t, cs, ns, "CronJob", "tick"); !strings.Contains(ev, "JobAlreadyActive") {
				return fmt.Errorf("events:\n%s", ev)
			}
			return nil
		})
		if after, err := jobs(); err != nil || len(after) != len(before) {
			t.Errorf("forbid: %d jobs before, %d after (%v)", len(before), len(after), err)
		}

		// Suspended: nothing, whatever the time.
		c, err = cs.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Spec.Suspend = ptr.To(true)
		c.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
		if _, err := cs.BatchV1().CronJobs(ns).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		offset += 2 * time.Minute
		setOffset(t, offset)
		time.Sleep(3 * time.Second)
		if after, err := jobs(); err != nil || len(after) != len(before) {
			t.Errorf("suspended: %d jobs before, %d after (%v)", len(before), len(after), err)
		}
		ctlWait(t, wait, "events", func() error {
			ev := ctlEvents(t, cs, ns, "CronJob", "tick")
			if !strings.Contains(ev, fmt.Sprintf("SuccessfulCreate: Created job tick-%d", first)) {
				return fmt.Errorf("events:\n%s", ev)
			}
			return nil
		})
	})
	t.Run("ttlSecondsAfterFinished", func(t *testing.T) {
		const ns = "ctl-job-ttl"
		namespace(t, cs, ns)
		j := ctlJob("short-lived", 1, 1, 0)
		j.Spec.TTLSecondsAfterFinished = ptr.To[int32](3600)
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var act []corev1.Pod
		ctlWait(t, wait, "pod", func() error {
			if act = ctlActivePods(t, cs, ns, "short-lived"); len(act) != 1 {
				return fmt.Errorf("%d active", len(act))
			}
			return nil
		})
		ctlPodStatus(t, cs, ns, act[0].Name, ctlFinish(0))
		gone := func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "short-lived", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if j.DeletionTimestamp == nil {
				return fmt.Errorf("not deleted; %s", ctlConditions(j))
			}
			return nil // foreground deletion under way
		}
		ctlWait(t, wait, "complete", func() error {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, "short-lived", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !strings.Contains(ctlConditions(j), "Complete/") {
				return fmt.Errorf("%s", ctlConditions(j))
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		if gone() == nil {
			t.Fatal("deleted long before its TTL")
		}
		// An hour later, for the manager.
		offset += time.Hour
		setOffset(t, offset)
		ctlWait(t, wait, "deleted after its TTL", gone)
	})
}
