package deployment

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

func TestTemplateHash(t *testing.T) {
	a, b := template("nginx:1"), template("nginx:2")
	ha := TemplateHash(&a, nil)
	if ha != TemplateHash(&a, nil) {
		t.Fatal("hash is not deterministic")
	}
	if ha == TemplateHash(&b, nil) {
		t.Fatal("different templates, same hash")
	}
	if ha == TemplateHash(&a, ptr(int32(1))) || TemplateHash(&a, ptr(int32(1))) == TemplateHash(&a, ptr(int32(2))) {
		t.Fatal("collisionCount does not change the hash")
	}
	// A nil collision count and a zero one differ: upstream only hashes
	// the count when it is set.
	if ha == TemplateHash(&a, ptr(int32(0))) {
		t.Fatal("collisionCount 0 hashes like none")
	}
	for _, c := range ha {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", c) {
			t.Fatalf("hash %q has a character outside the safe alphabet", ha)
		}
	}
	// A regression guard: the value must not change while k8s.io/api's
	// PodTemplateSpec does not, or every Deployment would roll out anew
	// after an upgrade of pgkube.
	if got := TemplateHash(&a, nil); got != goldenHash {
		t.Fatalf("hash of the reference template is %q, was %q", got, goldenHash)
	}
}

const goldenHash = "59b6df6b58"

func TestReplicaSetName(t *testing.T) {
	if n := replicaSetName("web", "abc12"); n != "web-abc12" {
		t.Fatal(n)
	}
	long := strings.Repeat("d", 260)
	n := replicaSetName(long, "abc12")
	if len(n) != 253 || !strings.HasSuffix(n, "-abc12") {
		t.Fatalf("len %d %q", len(n), n[len(n)-10:])
	}
}

func TestResolveFenceposts(t *testing.T) {
	is := intstr.FromInt32
	ps := intstr.FromString
	cases := []struct {
		surge, unavail intstr.IntOrString
		desired        int32
		wantS, wantU   int32
		wantErr        bool
	}{
		{ps("25%"), ps("25%"), 10, 3, 2, false}, // surge rounds up, unavailable down
		{ps("25%"), ps("25%"), 1, 1, 0, false},
		{ps("30%"), ps("30%"), 3, 1, 0, false},
		{is(0), ps("1%"), 2, 0, 1, false}, // both zero: one may be unavailable
		{is(0), is(0), 5, 0, 1, false},
		{is(2), is(0), 5, 2, 0, false},
		{ps("100%"), ps("50%"), 5, 5, 2, false},
		{ps("x%"), is(0), 5, 0, 0, true},
	}
	for _, c := range cases {
		s, u, err := resolveFenceposts(&c.surge, &c.unavail, c.desired)
		if (err != nil) != c.wantErr || (!c.wantErr && (s != c.wantS || u != c.wantU)) {
			t.Errorf("%v/%v of %d: got %d/%d %v, want %d/%d", c.surge.String(), c.unavail.String(), c.desired, s, u, err, c.wantS, c.wantU)
		}
	}
}

func deployment(replicas int32, surge, unavail intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template("nginx:1"),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
			RevisionHistoryLimit:    ptr(int32(10)),
			ProgressDeadlineSeconds: ptr(int32(600)),
		},
	}
}

func rs(name string, spec, available int32, age time.Duration, annotations ...string) *appsv1.ReplicaSet {
	r := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), CreationTimestamp: metav1.NewTime(t0.Add(-age)),
			Annotations: map[string]string{}},
		Spec:   appsv1.ReplicaSetSpec{Replicas: &spec},
		Status: appsv1.ReplicaSetStatus{Replicas: spec, ReadyReplicas: available, AvailableReplicas: available},
	}
	for i := 0; i+1 < len(annotations); i += 2 {
		r.Annotations[annotations[i]] = annotations[i+1]
	}
	return r
}

func TestMaxSurgeUnavailable(t *testing.T) {
	d := deployment(10, intstr.FromString("25%"), intstr.FromString("25%"))
	if MaxSurge(d) != 3 || MaxUnavailable(d) != 2 {
		t.Fatal(MaxSurge(d), MaxUnavailable(d))
	}
	d = deployment(2, intstr.FromInt32(0), intstr.FromInt32(5))
	if MaxUnavailable(d) != 2 {
		t.Fatal("maxUnavailable above replicas is not capped", MaxUnavailable(d))
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if MaxSurge(d) != 0 || MaxUnavailable(d) != 0 {
		t.Fatal("Recreate has surge or unavailability")
	}
}

func TestNewRSReplicas(t *testing.T) {
	d := deployment(10, intstr.FromInt32(3), intstr.FromInt32(2))
	old := rs("old", 10, 10, time.Hour)
	nw := rs("new", 0, 0, 0)
	if n, _ := newRSReplicas(d, []*appsv1.ReplicaSet{old, nw}, nw); n != 3 {
		t.Fatalf("first step: %d, want 3 (the surge)", n)
	}
	nw.Spec.Replicas = ptr(int32(3))
	if n, _ := newRSReplicas(d, []*appsv1.ReplicaSet{old, nw}, nw); n != 3 {
		t.Fatalf("at the ceiling: %d", n)
	}
	old.Spec.Replicas = ptr(int32(2))
	if n, _ := newRSReplicas(d, []*appsv1.ReplicaSet{old, nw}, nw); n != 10 {
		t.Fatalf("never beyond replicas: %d", n)
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if n, _ := newRSReplicas(d, []*appsv1.ReplicaSet{old, nw}, nw); n != 10 {
		t.Fatalf("recreate: %d", n)
	}
}

func TestPlanOldScaleDown(t *testing.T) {
	// maxUnavailable 0, maxSurge 1, 3 replicas: the old ReplicaSet only
	// shrinks once a new pod is available.
	d := deployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	old := rs("old", 3, 3, time.Hour)
	nw := rs("new", 1, 0, 0)
	all := []*appsv1.ReplicaSet{old, nw}
	if p := planOldScaleDown(d, all, []*appsv1.ReplicaSet{old}, nw); len(p) != 0 {
		t.Fatalf("scaled down with the new pod unavailable: %+v", p)
	}
	nw.Status.AvailableReplicas = 1
	p := planOldScaleDown(d, all, []*appsv1.ReplicaSet{old}, nw)
	if len(p) != 1 || p[0].size != 2 {
		t.Fatalf("plan %+v, want old to 2", p)
	}

	// Unhealthy old pods go first, even beyond what availability alone
	// would allow, oldest ReplicaSet first.
	d = deployment(10, intstr.FromInt32(3), intstr.FromInt32(2))
	older := rs("older", 4, 1, 2*time.Hour) // 3 unavailable
	old = rs("old", 6, 6, time.Hour)
	nw = rs("new", 3, 0, 0)
	all = []*appsv1.ReplicaSet{older, old, nw}
	// total 13, minAvailable 8, new unavailable 3: maxDown 2, all taken
	// by unhealthy pods of "older"; available 7 < 8, so nothing more.
	p = planOldScaleDown(d, all, []*appsv1.ReplicaSet{older, old}, nw)
	if len(p) != 1 || p[0].rs.Name != "older" || p[0].size != 2 {
		t.Fatalf("plan %+v, want older to 2", p)
	}
	// With everything available: maxDown 5; availability 10+3 = 13 - 8 = 5
	// to remove, oldest first.
	older.Status.AvailableReplicas, nw.Status.AvailableReplicas = 4, 3
	p = planOldScaleDown(d, all, []*appsv1.ReplicaSet{older, old}, nw)
	if len(p) != 2 || p[0].rs.Name != "older" || p[0].size != 0 || p[1].rs.Name != "old" || p[1].size != 5 {
		t.Fatalf("plan %+v", p)
	}
}

func TestProportionalScaling(t *testing.T) {
	// A rollout half way (10 replicas, surge 3: old 8 + new 5 = 13) is
	// scaled to 20: 10 more are spread 6/4 by size.
	d := deployment(20, intstr.FromInt32(3), intstr.FromInt32(2))
	old := rs("old", 8, 8, time.Hour, MaxReplicasAnnotation, "13", DesiredReplicasAnnotation, "10")
	nw := rs("new", 5, 0, 0, MaxReplicasAnnotation, "13", DesiredReplicasAnnotation, "10")
	sizes := proportionalSizes(d, []*appsv1.ReplicaSet{nw, old})
	if sizes["old"] != 14 || sizes["new"] != 9 {
		t.Fatalf("sizes %v, want old 14 new 9", sizes)
	}
	// And scaled down to 5 (allowed 8): 5 fewer, larger first.
	d = deployment(5, intstr.FromInt32(3), intstr.FromInt32(2))
	sizes = proportionalSizes(d, []*appsv1.ReplicaSet{nw, old})
	if sizes["old"]+sizes["new"] != 8 || sizes["old"] != 5 || sizes["new"] != 3 {
		t.Fatalf("sizes %v, want old 5 new 3", sizes)
	}
	// To zero: everything goes.
	d = deployment(0, intstr.FromInt32(3), intstr.FromInt32(2))
	sizes = proportionalSizes(d, []*appsv1.ReplicaSet{nw, old})
	if sizes["old"] != 0 || sizes["new"] != 0 {
		t.Fatalf("sizes %v", sizes)
	}
}

func TestRevisions(t *testing.T) {
	a := rs("a", 0, 0, 3*time.Hour, RevisionAnnotation, "3")
	b := rs("b", 0, 0, 2*time.Hour, RevisionAnnotation, "1")
	c := rs("c", 0, 0, time.Hour, RevisionAnnotation, "2")
	all := []*appsv1.ReplicaSet{a, b, c}
	if maxRevision(all) != 3 || lastRevision(all) != 2 {
		t.Fatal(maxRevision(all), lastRevision(all))
	}
	byRevision(all)
	if all[0].Name != "b" || all[1].Name != "c" || all[2].Name != "a" {
		t.Fatalf("order %s %s %s", all[0].Name, all[1].Name, all[2].Name)
	}

	// A ReplicaSet reused by a rollback gets the next revision and keeps
	// its old one in the history; the deployment's annotations are copied
	// but not the skipped ones.
	d := deployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Annotations = map[string]string{ChangeCauseAnnotation: "v1", RevisionAnnotation: "9", lastAppliedAnnotation: "{}"}
	if !setRSAnnotations(d, b, 4, true) {
		t.Fatal("no change reported")
	}
	if b.Annotations[RevisionAnnotation] != "4" || b.Annotations[RevisionHistoryAnnotation] != "1" ||
		b.Annotations[ChangeCauseAnnotation] != "v1" || b.Annotations[lastAppliedAnnotation] != "" {
		t.Fatalf("annotations %v", b.Annotations)
	}
	setRSAnnotations(d, b, 6, true)
	if b.Annotations[RevisionHistoryAnnotation] != "1,4" {
		t.Fatalf("history %q", b.Annotations[RevisionHistoryAnnotation])
	}
	if setRSAnnotations(d, b, 5, true) {
		t.Fatal("a lower revision changed the ReplicaSet")
	}
	fresh := rs("fresh", 0, 0, 0)
	setRSAnnotations(d, fresh, 1, false)
	if fresh.Annotations[DesiredReplicasAnnotation] != "3" || fresh.Annotations[MaxReplicasAnnotation] != "4" || fresh.Annotations[RevisionHistoryAnnotation] != "" {
		t.Fatalf("new ReplicaSet annotations %v", fresh.Annotations)
	}

	long := strings.TrimSuffix(strings.Repeat("1234567,", 250), ",") // 1999 chars
	if h := appendHistory(long, "99"); len(h) > maxRevisionHistoryChars || !strings.HasSuffix(h, ",99") {
		t.Fatalf("history not bounded: %d", len(h))
	}
}

func TestFindNewRSIgnoresHash(t *testing.T) {
	d := deployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	a := rs("a", 3, 3, time.Hour)
	a.Spec.Template = template("nginx:1")
	a.Spec.Template.Labels[podTemplateHashLabel] = "xyz"
	b := rs("b", 0, 0, 2*time.Hour)
	b.Spec.Template = template("nginx:0")
	if got := findNewRS(d, []*appsv1.ReplicaSet{b, a}); got != a {
		t.Fatalf("new RS %v", got)
	}
	d.Spec.Template = template("nginx:2")
	if findNewRS(d, []*appsv1.ReplicaSet{b, a}) != nil {
		t.Fatal("found a new RS for a new template")
	}
}

func TestRolloutStatusConditions(t *testing.T) {
	d := deployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = ptr(int32(60))
	nw := rs("new", 3, 1, 0)
	old := rs("old", 1, 1, time.Hour)
	all := []*appsv1.ReplicaSet{old, nw}

	st := rolloutStatus(all, nw, d, t0)
	if st.Replicas != 4 || st.UpdatedReplicas != 3 || st.AvailableReplicas != 2 || st.UnavailableReplicas != 2 {
		t.Fatalf("counts %+v", st)
	}
	if c := getCondition(&st, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionFalse || c.Reason != ReasonMinimumUnavailable {
		t.Fatalf("available %+v", c)
	}
	p := getCondition(&st, appsv1.DeploymentProgressing)
	if p == nil || p.Status != corev1.ConditionTrue || p.Reason != ReasonReplicaSetUpdated || p.Message != `ReplicaSet "new" is progressing.` {
		t.Fatalf("progressing %+v", p)
	}

	// No progress for longer than the deadline: timed out.
	d.Status = st
	later := t0.Add(61 * time.Second)
	st2 := rolloutStatus(all, nw, d, later)
	p = getCondition(&st2, appsv1.DeploymentProgressing)
	if p == nil || p.Status != corev1.ConditionFalse || p.Reason != ReasonTimedOut {
		t.Fatalf("after the deadline %+v", p)
	}
	// Before the deadline, a check is scheduled for when it passes.
	if after, ok := stuckRecheck(d, &st, t0.Add(30*time.Second)); !ok || after != 31*time.Second {
		t.Fatalf("recheck in %v %v", after, ok)
	}

	// Everything updated and available: complete.
	nw.Status.AvailableReplicas, nw.Status.ReadyReplicas = 3, 3
	old.Spec.Replicas, old.Status = ptr(int32(0)), appsv1.ReplicaSetStatus{}
	st3 := rolloutStatus(all, nw, d, later)
	p = getCondition(&st3, appsv1.DeploymentProgressing)
	if p == nil || p.Reason != ReasonNewRSAvailable || p.Status != corev1.ConditionTrue {
		t.Fatalf("complete %+v", p)
	}
	if c := getCondition(&st3, appsv1.DeploymentAvailable); c.Reason != ReasonMinimumAvailable {
		t.Fatalf("available %+v", c)
	}
	// The transition time of Progressing=True survives the change of
	// reason (False -> True resets it, True -> True keeps it).
	d.Status = st
	st4 := rolloutStatus(all, nw, d, later)
	if got := getCondition(&st4, appsv1.DeploymentProgressing); !got.LastTransitionTime.Equal(&getCondition(&st, appsv1.DeploymentProgressing).LastTransitionTime) {
		t.Fatal("lastTransitionTime changed although the status stayed True")
	}

	// Without a deadline there is no Progressing condition.
	d.Spec.ProgressDeadlineSeconds = nil
	st5 := rolloutStatus(all, nw, d, later)
	if getCondition(&st5, appsv1.DeploymentProgressing) != nil {
		t.Fatal("Progressing without a deadline")
	}

	// A ReplicaSet's failure is the deployment's.
	nw.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "quota"}}
	st6 := rolloutStatus(all, nw, d, later)
	if c := getCondition(&st6, appsv1.DeploymentReplicaFailure); c == nil || c.Reason != "FailedCreate" {
		t.Fatalf("replica failure %+v", st6.Conditions)
	}
}

func TestActiveOrLatestAndSaturated(t *testing.T) {
	d := deployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	a := rs("a", 0, 0, 2*time.Hour)
	b := rs("b", 0, 0, time.Hour)
	if got := activeOrLatest(nil, []*appsv1.ReplicaSet{a, b}); got != b {
		t.Fatalf("latest of none active: %v", got.Name)
	}
	a.Spec.Replicas = ptr(int32(2))
	if got := activeOrLatest(b, []*appsv1.ReplicaSet{a}); got != a {
		t.Fatal("single active")
	}
	b.Spec.Replicas = ptr(int32(1))
	if activeOrLatest(b, []*appsv1.ReplicaSet{a}) != nil {
		t.Fatal("two active")
	}
	n := rs("n", 3, 3, 0, DesiredReplicasAnnotation, "3")
	if !saturated(d, n) {
		t.Fatal("not saturated")
	}
	n.Status.AvailableReplicas = 2
	if saturated(d, n) {
		t.Fatal("saturated with a pod unavailable")
	}
}
