package cronjob

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// t0 is a Monday, 10:00 UTC.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func cronJob(schedule string, created time.Time) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "cj", Namespace: "ns", UID: "cj-uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{Schedule: schedule, ConcurrencyPolicy: batchv1.AllowConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"note": "y"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}},
	}
}

func TestParse(t *testing.T) {
	next := func(spec string, from time.Time) time.Time {
		t.Helper()
		s, err := Parse(spec)
		if err != nil {
			t.Fatalf("%q: %v", spec, err)
		}
		return s.Next(from)
	}
	for _, c := range []struct {
		spec string
		from time.Time
		want time.Time
	}{
		{"*/1 * * * *", t0, t0.Add(time.Minute)},
		{"*/15 * * * *", t0.Add(time.Minute), t0.Add(15 * time.Minute)},
		{"5,35 * * * *", t0.Add(10 * time.Minute), t0.Add(35 * time.Minute)},
		{"0 9-17/4 * * *", t0, time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)},
		{"30 8 * * mon-fri", t0, time.Date(2026, 3, 3, 8, 30, 0, 0, time.UTC)},
		{"0 0 1 jan *", t0, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * SUN", t0, time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{"@hourly", t0.Add(time.Second), t0.Add(time.Hour)},
		{"@daily", t0, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{"@weekly", t0, time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{"@monthly", t0, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"@yearly", t0, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@annually", t0, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got := next(c.spec, c.from); !got.Equal(c.want) {
			t.Errorf("%q after %v: %v, want %v", c.spec, c.from, got, c.want)
		}
	}
	for _, bad := range []string{"", "* * * *", "60 * * * *", "* * 32 * *", "@fortnightly", "*/0 * * * *", "a b c d e"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestTimeZone(t *testing.T) {
	cj := cronJob("0 9 * * *", t0)
	cj.Spec.TimeZone = ptr.To("America/New_York")
	if got := Format(cj); got != "TZ=America/New_York 0 9 * * *" {
		t.Fatalf("format %q", got)
	}
	s, err := Parse(Format(cj))
	if err != nil {
		t.Fatal(err)
	}
	// 9:00 in New York on 2 March 2026 (EST, UTC-5) is 14:00 UTC.
	if got := s.Next(t0).UTC(); !got.Equal(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("next %v", got)
	}
	j, err := jobFromTemplate(cj, s.Next(t0))
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != "2026-03-02T09:00:00-05:00" {
		t.Errorf("scheduled timestamp %q", got)
	}
	cj.Spec.TimeZone = ptr.To("Mars/Olympus")
	if got := Format(cj); got != "0 9 * * *" {
		t.Errorf("unknown zone: %q", got)
	}
}

func TestNextScheduleTime(t *testing.T) {
	sched, _ := Parse("*/1 * * * *")
	at := func(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(t0.Add(d))) }
	for _, c := range []struct {
		name     string
		created  time.Duration
		last     *metav1.Time
		deadline *int64
		now      time.Duration
		want     *time.Duration
		tooMany  bool
	}{
		{name: "not yet", created: 10 * time.Second, now: 50 * time.Second},
		{name: "first", created: 10 * time.Second, now: 70 * time.Second, want: ptr.To(time.Minute)},
		{name: "exactly on time", last: at(0), now: time.Minute, want: ptr.To(time.Minute)},
		{name: "already done", last: at(time.Minute), now: 90 * time.Second},
		{name: "missed a few: the latest", last: at(0), now: 5*time.Minute + 30*time.Second, want: ptr.To(5 * time.Minute)},
		{name: "deadline passed for all", last: at(0), deadline: ptr.To[int64](10), now: 5*time.Minute + 30*time.Second},
		{name: "deadline allows the latest", last: at(0), deadline: ptr.To[int64](60), now: 5*time.Minute + 30*time.Second, want: ptr.To(5 * time.Minute)},
		{name: "too many missed", last: at(-24 * time.Hour), now: 30 * time.Second, want: ptr.To(time.Duration(0)), tooMany: true},
		{name: "deadline hides the many", last: at(-24 * time.Hour), deadline: ptr.To[int64](200), now: 30 * time.Second, want: ptr.To(time.Duration(0))},
	} {
		cj := cronJob("*/1 * * * *", t0.Add(c.created))
		cj.Status.LastScheduleTime = c.last
		cj.Spec.StartingDeadlineSeconds = c.deadline
		got, tooMany, err := NextScheduleTime(cj, t0.Add(c.now), sched)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		switch {
		case c.want == nil && got != nil:
			t.Errorf("%s: %v, want none", c.name, *got)
		case c.want != nil && (got == nil || !got.Equal(t0.Add(*c.want))):
			t.Errorf("%s: %v, want %v", c.name, got, t0.Add(*c.want))
		}
		if tooMany != c.tooMany {
			t.Errorf("%s: too many %v", c.name, tooMany)
		}
	}

	// An irregular schedule (the 31st): missed across short months, the
	// walk finds the real latest.
	monthly, _ := Parse("0 0 31 * *")
	cj := cronJob("0 0 31 * *", time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC))
	cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)))
	got, _, err := NextScheduleTime(cj, time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC), monthly)
	if err != nil || got == nil || !got.Equal(time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("monthly on the 31st: %v %v", got, err)
	}
}

func TestNextRequeue(t *testing.T) {
	sched, _ := Parse("*/1 * * * *")
	cj := cronJob("*/1 * * * *", t0.Add(10*time.Second))
	if got := NextRequeue(cj, t0.Add(30*time.Second), sched); got != 30*time.Second+nextScheduleDelta {
		t.Errorf("requeue %v", got)
	}
	cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(t0.Add(time.Minute)))
	if got := NextRequeue(cj, t0.Add(61*time.Second), sched); got != 59*time.Second+nextScheduleDelta {
		t.Errorf("after a run: %v", got)
	}
	// Missed ones: from now.
	cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(t0))
	if got := NextRequeue(cj, t0.Add(5*time.Minute+20*time.Second), sched); got != 40*time.Second+nextScheduleDelta {
		t.Errorf("after missed: %v", got)
	}
}

func TestJobNameAndTemplate(t *testing.T) {
	cj := cronJob("*/1 * * * *", t0)
	at := time.Date(2026, 3, 2, 10, 5, 0, 0, time.UTC)
	if got, want := JobName(cj, at), fmt.Sprintf("cj-%d", at.Unix()/60); got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	j, err := jobFromTemplate(cj, at)
	if err != nil {
		t.Fatal(err)
	}
	if j.Labels["app"] != "x" || j.Annotations["note"] != "y" || j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-02T10:05:00Z" {
		t.Errorf("meta %v %v", j.Labels, j.Annotations)
	}
	if ref := metav1.GetControllerOf(j); ref == nil || ref.Kind != "CronJob" || ref.UID != "cj-uid" {
		t.Errorf("owner %+v", j.OwnerReferences)
	}
	if j.Spec.Template.Spec.Containers[0].Name != "c" {
		t.Errorf("spec %+v", j.Spec)
	}
	// The template's maps are not shared.
	j.Labels["app"] = "changed"
	if cj.Spec.JobTemplate.Labels["app"] != "x" {
		t.Error("template labels shared")
	}
}

func TestOldestBeyond(t *testing.T) {
	mk := func(name string, start *time.Time) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if start != nil {
			j.Status.StartTime = ptr.To(metav1.NewTime(*start))
		}
		return j
	}
	a, b := t0, t0.Add(time.Minute)
	jobs := []*batchv1.Job{mk("never", nil), mk("b", &b), mk("a2", &a), mk("a1", &a)}
	var got []string
	for _, j := range OldestBeyond(jobs, 1) {
		got = append(got, j.Name)
	}
	if want := []string{"a1", "a2", "b"}; !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
	if OldestBeyond(jobs, 4) != nil {
		t.Error("within the limit")
	}
}

// controller drives syncCronJob and the cleanup against the fake
// clientset, at a fixed time.
type harness struct {
	cs  *fake.Clientset
	rec *framework.FakeRecorder
	jm  *Controller
	clk *clocktesting.FakeClock
}

func newHarness(now time.Time) *harness {
	cs := fake.NewClientset()
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	h := &harness{cs: cs, rec: &framework.FakeRecorder{}, clk: clocktesting.NewFakeClock(now)}
	h.jm = &Controller{clients: clients, recorder: h.rec, clock: h.clk}
	return h
}

var key = framework.Key{Cluster: "root", Namespace: "ns", Name: "cj"}

func (h *harness) sync(t *testing.T, cj *batchv1.CronJob) (*time.Duration, bool) {
	t.Helper()
	if _, err := h.cs.BatchV1().CronJobs("ns").Get(context.Background(), "cj", metav1.GetOptions{}); err != nil {
		if _, err := h.cs.BatchV1().CronJobs("ns").Create(context.Background(), cj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := h.cs.BatchV1().Jobs("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []*batchv1.Job
	for i := range l.Items {
		jobs = append(jobs, &l.Items[i])
	}
	cleaned := h.jm.cleanupFinishedJobs(context.Background(), key, cj, jobs)
	requeue, changed, err := h.jm.syncCronJob(context.Background(), key, cj, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return requeue, changed || cleaned
}

func (h *harness) jobNames(t *testing.T) []string {
	l, err := h.cs.BatchV1().Jobs("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range l.Items {
		out = append(out, j.Name)
	}
	slices.Sort(out)
	return out
}

func (h *harness) events(prefix string) int {
	n := 0
	for _, e := range h.rec.List() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

func minuteName(t time.Time) string { return fmt.Sprintf("cj-%d", t.Unix()/60) }

func TestConcurrencyPolicies(t *testing.T) {
	for _, policy := range []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent} {
		t.Run(string(policy), func(t *testing.T) {
			h := newHarness(t0.Add(time.Minute + 5*time.Second))
			cj := cronJob("*/1 * * * *", t0)
			cj.Spec.ConcurrencyPolicy = policy
			requeue, changed := h.sync(t, cj)
			if !changed || requeue == nil || *requeue != 55*time.Second+nextScheduleDelta {
				t.Fatalf("first run: changed %v requeue %v", changed, requeue)
			}
			first := minuteName(t0.Add(time.Minute))
			if got := h.jobNames(t); !slices.Equal(got, []string{first}) {
				t.Fatalf("jobs %v", got)
			}
			if len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != first || !cj.Status.LastScheduleTime.Time.Equal(t0.Add(time.Minute)) {
				t.Fatalf("status %+v", cj.Status)
			}
			// Same time again: nothing new.
			h.sync(t, cj)
			if got := h.jobNames(t); len(got) != 1 {
				t.Fatalf("second sync at the same time: %v", got)
			}
			// A minute later, the first still running.
			h.clk.SetTime(t0.Add(2*time.Minute + time.Second))
			h.sync(t, cj)
			second := minuteName(t0.Add(2 * time.Minute))
			got := h.jobNames(t)
			switch policy {
			case batchv1.AllowConcurrent:
				if !slices.Equal(got, []string{first, second}) || len(cj.Status.Active) != 2 {
					t.Errorf("allow: jobs %v active %v", got, cj.Status.Active)
				}
			case batchv1.ForbidConcurrent:
				if !slices.Equal(got, []string{first}) || len(cj.Status.Active) != 1 || h.events("Normal JobAlreadyActive") != 1 {
					t.Errorf("forbid: jobs %v active %v events %v", got, cj.Status.Active, h.rec.List())
				}
			case batchv1.ReplaceConcurrent:
				if !slices.Equal(got, []string{second}) || len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != second ||
					h.events("Normal SuccessfulDelete Deleted job "+first) != 1 {
					t.Errorf("replace: jobs %v active %v events %v", got, cj.Status.Active, h.rec.List())
				}
			}
		})
	}
}

func TestSuspendDeadlineAndHistory(t *testing.T) {
	h := newHarness(t0.Add(time.Minute + 30*time.Second))
	cj := cronJob("*/1 * * * *", t0)
	cj.Spec.Suspend = ptr.To(true)
	if requeue, _ := h.sync(t, cj); requeue != nil || len(h.jobNames(t)) != 0 {
		t.Fatalf("suspended: requeue %v jobs %v", requeue, h.jobNames(t))
	}
	cj.Spec.Suspend = ptr.To(false)
	cj.Spec.StartingDeadlineSeconds = ptr.To[int64](10)
	// 30s late with a 10s deadline: skipped (the start is not even
	// considered, as upstream), looked at again at the next one.
	if requeue, _ := h.sync(t, cj); len(h.jobNames(t)) != 0 || requeue == nil || *requeue != 30*time.Second+nextScheduleDelta {
		t.Fatalf("30s late with a 10s deadline: jobs %v requeue %v", h.jobNames(t), requeue)
	}
	cj.Spec.StartingDeadlineSeconds = nil

	// Runs at minutes 1..5; all complete but the second, which fails.
	cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](2)
	cj.Spec.FailedJobsHistoryLimit = ptr.To[int32](1)
	for m := 1; m <= 5; m++ {
		h.clk.SetTime(t0.Add(time.Duration(m)*time.Minute + time.Second))
		h.sync(t, cj)
		name := minuteName(t0.Add(time.Duration(m) * time.Minute))
		j, err := h.cs.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("minute %d: %v (jobs %v)", m, err, h.jobNames(t))
		}
		end := batchv1.JobComplete
		if m == 2 {
			end = batchv1.JobFailed
		}
		j.Status.StartTime = ptr.To(metav1.NewTime(t0.Add(time.Duration(m) * time.Minute)))
		j.Status.Conditions = []batchv1.JobCondition{{Type: end, Status: corev1.ConditionTrue}}
		if end == batchv1.JobComplete {
			j.Status.CompletionTime = ptr.To(metav1.NewTime(t0.Add(time.Duration(m)*time.Minute + 30*time.Second)))
		}
		if _, err := h.cs.BatchV1().Jobs("ns").UpdateStatus(context.Background(), j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.clk.SetTime(t0.Add(5*time.Minute + 50*time.Second))
	h.sync(t, cj)
	want := []string{minuteName(t0.Add(2 * time.Minute)), minuteName(t0.Add(4 * time.Minute)), minuteName(t0.Add(5 * time.Minute))}
	if got := h.jobNames(t); !slices.Equal(got, want) {
		t.Errorf("history: %v, want %v", got, want)
	}
	if len(cj.Status.Active) != 0 {
		t.Errorf("active %v", cj.Status.Active)
	}
	if cj.Status.LastSuccessfulTime == nil || !cj.Status.LastSuccessfulTime.Time.Equal(t0.Add(5*time.Minute+30*time.Second)) {
		t.Errorf("last successful %v", cj.Status.LastSuccessfulTime)
	}
	if h.events("Normal SawCompletedJob") == 0 {
		t.Errorf("events %v", h.rec.List())
	}

	// An active Job deleted behind the controller's back.
	cj.Status.Active = []corev1.ObjectReference{{Kind: "Job", Namespace: "ns", Name: "gone", UID: types.UID("gone")}}
	if _, changed := h.sync(t, cj); !changed || len(cj.Status.Active) != 0 || h.events("Normal MissingJob Active job went missing: gone") != 1 {
		t.Errorf("missing job: %v %v", cj.Status.Active, h.rec.List())
	}
}
