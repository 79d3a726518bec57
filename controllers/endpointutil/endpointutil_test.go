package endpointutil

import (
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestIPs(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1": "10.0.0.1", "010.000.000.001": "10.0.0.1", "fd00::0001": "fd00::1", "::ffff:10.0.0.1": "10.0.0.1", "junk": "junk"} {
		if got := CanonicalIP(in); got != want {
			t.Errorf("CanonicalIP(%q) = %q, want %q", in, got, want)
		}
	}
	if IsIPv6("10.0.0.1") || !IsIPv6("fd00::1") || IsIPv6("::ffff:10.0.0.1") {
		t.Error("IsIPv6")
	}
	p := &corev1.Pod{Status: corev1.PodStatus{PodIP: "10.0.0.1"}}
	if got := PodIPs(p); len(got) != 1 || got[0] != "10.0.0.1" {
		t.Errorf("podIP only: %v", got)
	}
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}
	if got := PodIPs(p); len(got) != 2 {
		t.Errorf("podIPs: %v", got)
	}
}

func TestFindPort(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
		{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		{Name: "dns", ContainerPort: 5353}, // TCP by default
	}}}}}
	for _, c := range []struct {
		sp   corev1.ServicePort
		want int32
		ok   bool
	}{
		{corev1.ServicePort{TargetPort: intstr.FromInt32(99)}, 99, true},
		{corev1.ServicePort{TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolUDP}, 53, true},
		{corev1.ServicePort{TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolTCP}, 5353, true},
		{corev1.ServicePort{TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolSCTP}, 0, false},
		{corev1.ServicePort{TargetPort: intstr.FromString("http")}, 0, false},
	} {
		if got, ok := FindPort(p, &c.sp); got != c.want || ok != c.ok {
			t.Errorf("%+v: %d %v", c.sp, got, ok)
		}
	}
}

func TestEndpointsChanged(t *testing.T) {
	p := func(labels map[string]string, ready bool, rv string) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: labels, ResourceVersion: rv},
			Status: corev1.PodStatus{PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	}
	a := map[string]string{"app": "a"}
	if changed, lbl := endpointsChanged(p(a, true, "1"), p(a, false, "2")); !changed || lbl {
		t.Errorf("readiness: %v %v", changed, lbl)
	}
	if changed, lbl := endpointsChanged(p(a, true, "1"), p(map[string]string{"app": "b"}, true, "2")); changed || !lbl {
		t.Errorf("labels: %v %v", changed, lbl)
	}
	o, n := p(a, true, "1"), p(a, true, "2")
	n.Annotations = map[string]string{"x": "y"}
	if changed, lbl := endpointsChanged(o, n); changed || lbl {
		t.Errorf("annotation only: %v %v", changed, lbl)
	}
}

func TestTriggerTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", CreationTimestamp: metav1.NewTime(t0)}}
	pod := func(name string, at time.Time) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}}}
	}
	tt := NewTriggerTimes()
	k := framework.Key{Cluster: "c", Namespace: "ns", Name: "s"}
	got, commit := tt.Compute(k, svc, []*corev1.Pod{pod("a", t0.Add(time.Minute))})
	if !got.Equal(t0) {
		t.Errorf("first sync: %v, want the service's creation", got)
	}
	commit()
	if got, commit := tt.Compute(k, svc, []*corev1.Pod{pod("a", t0.Add(time.Minute))}); !got.IsZero() {
		t.Errorf("nothing new: %v", got)
	} else {
		commit()
	}
	pods := []*corev1.Pod{pod("a", t0.Add(3*time.Minute)), pod("b", t0.Add(2*time.Minute))}
	if got, _ := tt.Compute(k, svc, pods); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("two changes: %v, want the earliest", got)
	}
	// Not committed (the write failed): the retry says the same.
	got, commit = tt.Compute(k, svc, pods)
	if !got.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("retry: %v", got)
	}
	commit()
	if got, _ := tt.Compute(k, svc, pods); !got.IsZero() {
		t.Errorf("after the commit: %v", got)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); _, c := tt.Compute(k, svc, nil); c() }()
	}
	wg.Wait()
}
