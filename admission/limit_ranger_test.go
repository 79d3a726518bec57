package admission

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func limitRange(ns, name string, items ...corev1.LimitRangeItem) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.LimitRangeSpec{Limits: items}}
}

func TestLimitRangerDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	l := NewLimitRanger(s)
	put(t, s, limitRange("ns", "defaults", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer,
		Default:        resources("cpu=500m,memory=512Mi"),
		DefaultRequest: resources("cpu=100m")}))

	pod := testPod("ns", "p", "c")
	pod.Spec.InitContainers = []corev1.Container{{Name: "i", Resources: corev1.ResourceRequirements{Requests: resources("cpu=50m")}}}
	a := podCreate(pod)
	mustNil(t, l.Admit(ctx, a))
	mustNil(t, l.Validate(ctx, a))
	c := pod.Spec.Containers[0].Resources
	// The memory request comes from the default limit, as LimitRange
	// defaulting makes it.
	if !equality.Semantic.DeepEqual(c.Requests, resources("cpu=100m,memory=512Mi")) ||
		!equality.Semantic.DeepEqual(c.Limits, resources("cpu=500m,memory=512Mi")) {
		t.Errorf("container resources = %+v", c)
	}
	i := pod.Spec.InitContainers[0].Resources
	if !equality.Semantic.DeepEqual(i.Requests, resources("cpu=50m,memory=512Mi")) {
		t.Errorf("init container resources = %+v", i)
	}
	want := "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c; " +
		"memory request for init container i; cpu, memory limit for init container i"
	if got := pod.Annotations["kubernetes.io/limit-ranger"]; got != want {
		t.Errorf("annotation = %q\nwant %q", got, want)
	}

	// A container's own limit is its request, not the default request.
	pod = testPod("ns", "q", "c:/cpu=1")
	mustNil(t, l.Admit(ctx, podCreate(pod)))
	if got := pod.Spec.Containers[0].Resources.Requests; !equality.Semantic.DeepEqual(got, resources("cpu=1,memory=512Mi")) {
		t.Errorf("requests = %v", got)
	}

	// Nothing to do without LimitRanges.
	pod = testPod("other", "r", "c")
	mustNil(t, l.Admit(ctx, podCreate(pod)))
	if pod.Annotations != nil || pod.Spec.Containers[0].Resources.Requests != nil {
		t.Errorf("pod changed: %+v", pod)
	}
}

func TestLimitRangerValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	l := NewLimitRanger(s)
	put(t, s, limitRange("ns", "bounds",
		corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: resources("cpu=1"), Min: resources("memory=10Mi"),
			MaxLimitRequestRatio: resources("memory=2")},
		corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: resources("memory=1Gi")},
		corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Min: resources("storage=1Gi"), Max: resources("storage=10Gi")}))

	admit := func(pod *corev1.Pod) error {
		a := podCreate(pod)
		if err := l.Admit(ctx, a); err != nil {
			return err
		}
		return l.Validate(ctx, a)
	}
	// The max fills in the default limit, and the request follows it.
	pod := testPod("ns", "ok", "c:memory=100Mi/memory=150Mi")
	mustNil(t, admit(pod))
	if got := pod.Spec.Containers[0].Resources.Limits; !equality.Semantic.DeepEqual(got, resources("cpu=1,memory=150Mi")) {
		t.Errorf("limits = %v", got)
	}

	wantStatus(t, admit(testPod("ns", "p", "c:cpu=1,memory=100Mi/cpu=2,memory=100Mi")), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: maximum cpu usage per Container is 1, but limit is 2`)
	wantStatus(t, admit(testPod("ns", "p", "c:memory=5Mi/memory=5Mi")), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: minimum memory usage per Container is 10Mi, but request is 5Mi`)
	wantStatus(t, admit(testPod("ns", "p", "c:memory=100Mi/memory=300Mi")), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: memory max limit to request ratio per Container is 2, but provided ratio is 3.000000`)
	// Several violations come as one list.
	wantStatus(t, admit(testPod("ns", "p", "c:cpu=2,memory=5Mi/cpu=2,memory=5Mi")), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: [minimum memory usage per Container is 10Mi, but request is 5Mi, maximum cpu usage per Container is 1, but limit is 2]`)
	// The Pod maximum is on the sum of the containers.
	wantStatus(t, admit(testPod("ns", "p", "a:memory=600Mi/memory=600Mi", "b:memory=600Mi/memory=600Mi")), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1200Mi`)

	claim := func(size string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: resources(size)}}}
	}
	pvcAttrs := func(pvc *corev1.PersistentVolumeClaim) *Attributes {
		return createAttrs(pvc, "", "persistentvolumeclaims")
	}
	mustNil(t, l.Validate(ctx, pvcAttrs(claim("storage=5Gi"))))
	wantStatus(t, l.Validate(ctx, pvcAttrs(claim("storage=500Mi"))), metav1.StatusReasonForbidden,
		`persistentvolumeclaims "c" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi`)
	wantStatus(t, l.Validate(ctx, pvcAttrs(claim("storage=20Gi"))), metav1.StatusReasonForbidden,
		`persistentvolumeclaims "c" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi`)

	// Pod updates other than resizes are not checked.
	bad := testPod("ns", "p", "c:cpu=2/cpu=2")
	mustNil(t, l.Validate(ctx, &Attributes{Cluster: testCluster, Operation: Update, Version: "v1", Resource: "pods",
		Namespace: "ns", Name: "p", Object: bad, OldObject: bad.DeepCopy()}))
}
