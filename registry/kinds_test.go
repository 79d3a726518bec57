package registry

import (
	"maps"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestQOSClass(t *testing.T) {
	rl := func(pairs ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(pairs); i += 2 {
			l[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
		}
		return l
	}
	c := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	cases := []struct {
		name       string
		containers []corev1.Container
		want       corev1.PodQOSClass
	}{
		{"nothing set", []corev1.Container{c(nil, nil), c(nil, nil)}, corev1.PodQOSBestEffort},
		{"limits only, both resources", []corev1.Container{c(nil, rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSGuaranteed},
		{"equal requests and limits", []corev1.Container{c(rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSGuaranteed},
		{"requests below limits", []corev1.Container{c(rl("cpu", "500m", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSBurstable},
		{"memory limit missing", []corev1.Container{c(nil, rl("cpu", "1"))}, corev1.PodQOSBurstable},
		{"one container unset", []corev1.Container{c(nil, rl("cpu", "1", "memory", "1Gi")), c(nil, nil)}, corev1.PodQOSBurstable},
	}
	for _, tc := range cases {
		if got := qosClass(&corev1.PodSpec{Containers: tc.containers}); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestEventFacesRoundTrip: an events.k8s.io Event stored as core/v1 and
// read back is the same event.
func TestEventFacesRoundTrip(t *testing.T) {
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, EventTime: metav1.NewMicroTime(metav1.Now().Time),
		Series:              &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(metav1.Now().Time)},
		ReportingController: "c", ReportingInstance: "i", Action: "A", Reason: "R",
		Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p"}, Related: &corev1.ObjectReference{Kind: "Node", Name: "n"},
		Note: "note", Type: "Warning", DeprecatedSource: corev1.EventSource{Component: "x", Host: "h"}, DeprecatedCount: 2,
	}
	core, err := eventToCore(ev)
	if err != nil {
		t.Fatal(err)
	}
	if c := core.(*corev1.Event); c.Message != "note" || c.InvolvedObject.Name != "p" || c.Series.Count != 3 {
		t.Fatalf("core form: %+v", c)
	}
	back, err := eventFromCore(core)
	if err != nil {
		t.Fatal(err)
	}
	back.(*eventsv1.Event).TypeMeta = ev.TypeMeta
	if !equality.Semantic.DeepEqual(back, ev) {
		t.Fatalf("round trip changed the event:\n%+v\n%+v", back, ev)
	}
}

func TestStatusAndSpecHelpers(t *testing.T) {
	a := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "1"}, Status: corev1.ServiceStatus{Conditions: []metav1.Condition{{Type: "A"}}}}
	b := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "2"}}
	CopyStatus(b, a)
	if len(b.Status.Conditions) != 1 || b.Spec.ClusterIP != "2" {
		t.Fatalf("CopyStatus: %+v", b)
	}
	if !SpecChanged(a, b) {
		t.Fatal("SpecChanged missed a spec change")
	}
	CopySpec(b, a)
	if SpecChanged(a, b) || b.Spec.ClusterIP != "1" {
		t.Fatalf("CopySpec: %+v", b)
	}
	b.Labels = map[string]string{"x": "y"}
	if SpecChanged(a, b) {
		t.Fatal("a metadata change is not a spec change")
	}
	ClearStatus(a)
	if len(a.Status.Conditions) != 0 {
		t.Fatal("ClearStatus left the status")
	}
}

// A Job without a manual selector gets upstream's generated selector and
// pod labels; a manual one is left alone.
func TestJobSelectorGenerated(t *testing.T) {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", UID: "u-1"}}
	prepareJob(j, nil, "")
	want := map[string]string{"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
		"controller-uid": "u-1", "job-name": "pi"}
	if !maps.Equal(j.Spec.Template.Labels, want) {
		t.Errorf("template labels %v, want %v", j.Spec.Template.Labels, want)
	}
	if !maps.Equal(j.Spec.Selector.MatchLabels, map[string]string{"batch.kubernetes.io/controller-uid": "u-1"}) {
		t.Errorf("selector %v", j.Spec.Selector)
	}
	manual := true
	m := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "m", UID: "u-2"}, Spec: batchv1.JobSpec{ManualSelector: &manual}}
	prepareJob(m, nil, "")
	if m.Spec.Selector != nil || m.Spec.Template.Labels != nil {
		t.Errorf("a manual selector's Job was changed: %v %v", m.Spec.Selector, m.Spec.Template.Labels)
	}
}
