package statefulset

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fake is an in-memory cluster: what the control writes lands here, and
// tests change pod states between syncs.
type fake struct {
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	claims  map[string]*corev1.PersistentVolumeClaim
	revs    map[string]*appsv1.ControllerRevision
	status  *appsv1.StatefulSetStatus
	actions []string
	events  []string
	uid     int
}

func newFake() *fake {
	return &fake{pods: map[string]*corev1.Pod{}, claims: map[string]*corev1.PersistentVolumeClaim{}, revs: map[string]*appsv1.ControllerRevision{}}
}

func (f *fake) nextUID() types.UID {
	f.uid++
	return types.UID(fmt.Sprintf("uid-%d", f.uid))
}

func (f *fake) record(a string) { f.actions = append(f.actions, a) }

var podGR = schema.GroupResource{Resource: "pods"}

func (f *fake) CreatePod(_ context.Context, pod *corev1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pods[pod.Name]; ok {
		return apierrors.NewAlreadyExists(podGR, pod.Name)
	}
	p := pod.DeepCopy()
	p.UID = f.nextUID()
	p.Status.Phase = corev1.PodPending
	p.CreationTimestamp = metav1.Now()
	f.pods[p.Name] = p
	f.record("create pod " + p.Name)
	return nil
}

func (f *fake) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[pod.Name] = pod.DeepCopy()
	f.record("update pod " + pod.Name)
	return nil
}

func (f *fake) DeletePod(_ context.Context, pod *corev1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[pod.Name]
	if !ok {
		return apierrors.NewNotFound(podGR, pod.Name)
	}
	now := metav1.Now()
	p.DeletionTimestamp = &now // graceful: tests remove it
	f.record("delete pod " + pod.Name)
	return nil
}

func (f *fake) GetClaim(_, name string) (*corev1.PersistentVolumeClaim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.claims[name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "persistentvolumeclaims"}, name)
	}
	return c, nil
}

func (f *fake) CreateClaim(_ context.Context, c *corev1.PersistentVolumeClaim) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c.DeepCopy()
	cc.UID = f.nextUID()
	f.claims[c.Name] = cc
	f.record("create claim " + c.Name)
	return nil
}

func (f *fake) UpdateClaim(_ context.Context, c *corev1.PersistentVolumeClaim) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims[c.Name] = c.DeepCopy()
	f.record("update claim " + c.Name)
	return nil
}

func (f *fake) CreateRevision(_ context.Context, r *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.revs[r.Name]; ok {
		return nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "controllerrevisions"}, r.Name)
	}
	rr := r.DeepCopy()
	rr.UID = f.nextUID()
	f.revs[r.Name] = rr
	f.record("create revision " + r.Name)
	return rr.DeepCopy(), nil
}

func (f *fake) GetRevision(_ context.Context, _, name string) (*appsv1.ControllerRevision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.revs[name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "controllerrevisions"}, name)
	}
	return r.DeepCopy(), nil
}

func (f *fake) UpdateRevision(_ context.Context, r *appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revs[r.Name] = r.DeepCopy()
	f.record(fmt.Sprintf("update revision %s to %d", r.Name, r.Revision))
	return r.DeepCopy(), nil
}

func (f *fake) DeleteRevision(_ context.Context, r *appsv1.ControllerRevision) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.revs, r.Name)
	f.record("delete revision " + r.Name)
	return nil
}

func (f *fake) UpdateStatus(_ context.Context, _ *appsv1.StatefulSet, st *appsv1.StatefulSetStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st.DeepCopy()
	return nil
}

func (f *fake) Eventf(_ runtime.Object, eventType, reason, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, eventType+" "+reason+" "+fmt.Sprintf(format, args...))
}

// sync runs one sync of set against the fake's state and keeps the
// written status on set.
func (f *fake) sync(t *testing.T, set *appsv1.StatefulSet, now time.Time) {
	t.Helper()
	f.mu.Lock()
	var pods []*corev1.Pod
	for _, p := range f.pods {
		pods = append(pods, p.DeepCopy())
	}
	var revs []*appsv1.ControllerRevision
	for _, r := range f.revs {
		revs = append(revs, r.DeepCopy())
	}
	f.actions = nil
	f.mu.Unlock()
	c := &control{obj: f, recorder: f, now: now}
	if _, err := c.syncSet(context.Background(), set, pods, revs); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if f.status != nil {
		set.Status = *f.status
	}
}

func (f *fake) podNames() []string {
	var names []string
	for n, p := range f.pods {
		if p.DeletionTimestamp == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// makeReady marks a pod Running and Ready since at.
func (f *fake) makeReady(name string, at time.Time) {
	p := f.pods[name]
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}
}

// finishDeletions removes terminating pods, as a kubelet would.
func (f *fake) finishDeletions() {
	for n, p := range f.pods {
		if p.DeletionTimestamp != nil {
			delete(f.pods, n)
		}
	}
}

func newSet(name string, replicas int32) *appsv1.StatefulSet {
	zero := int32(0)
	ten := int32(10)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "set-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "nginx",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "www"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
			PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero}},
			RevisionHistoryLimit: &ten,
		},
	}
}

func TestParentAndOrdinal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent string
		ord    int
	}{
		{"web-0", "web", 0}, {"web-12", "web", 12}, {"my-web-3", "my-web", 3},
		{"web", "", -1}, {"web-", "", -1}, {"web-a1", "", -1}, {"-1", "", 1}, {"web-99999999999", "web", -1},
	} {
		p, o := parentAndOrdinal(tc.name)
		if p != tc.parent || o != tc.ord {
			t.Errorf("parentAndOrdinal(%q) = %q, %d; want %q, %d", tc.name, p, o, tc.parent, tc.ord)
		}
	}
}

func TestOrderedReadyCreatesInOrder(t *testing.T) {
	f := newFake()
	set := newSet("web", 3)
	now := time.Now()
	f.sync(t, set, now)
	if got := f.podNames(); !slices.Equal(got, []string{"web-0"}) {
		t.Fatalf("after first sync pods = %v, want [web-0]", got)
	}
	// The claim comes before the pod.
	if len(f.actions) < 2 || f.actions[len(f.actions)-2] != "create claim www-web-0" || f.actions[len(f.actions)-1] != "create pod web-0" {
		t.Fatalf("actions = %v, want the claim created before the pod", f.actions)
	}
	// web-0 not ready yet: nothing more, however often we sync.
	for range 3 {
		f.sync(t, set, now)
		if got := f.podNames(); len(got) != 1 {
			t.Fatalf("pods = %v while web-0 is not ready", got)
		}
	}
	// Running but not Ready is not enough.
	f.pods["web-0"].Status.Phase = corev1.PodRunning
	f.sync(t, set, now)
	if got := f.podNames(); len(got) != 1 {
		t.Fatalf("pods = %v while web-0 is running but not ready", got)
	}
	f.makeReady("web-0", now)
	f.sync(t, set, now)
	if got := f.podNames(); !slices.Equal(got, []string{"web-0", "web-1"}) {
		t.Fatalf("pods = %v, want web-0 and web-1", got)
	}
	f.makeReady("web-1", now)
	f.sync(t, set, now)
	f.makeReady("web-2", now)
	f.sync(t, set, now)
	if got := f.podNames(); !slices.Equal(got, []string{"web-0", "web-1", "web-2"}) {
		t.Fatalf("pods = %v", got)
	}
	p := f.pods["web-2"]
	if p.Spec.Hostname != "web-2" || p.Spec.Subdomain != "nginx" {
		t.Errorf("hostname/subdomain = %q/%q", p.Spec.Hostname, p.Spec.Subdomain)
	}
	if p.Labels[appsv1.StatefulSetPodNameLabel] != "web-2" || p.Labels[appsv1.PodIndexLabel] != "2" || p.Labels["app"] != "web" {
		t.Errorf("labels = %v", p.Labels)
	}
	if p.Labels[appsv1.StatefulSetRevisionLabel] == "" || p.Labels[appsv1.StatefulSetRevisionLabel] != set.Status.UpdateRevision {
		t.Errorf("revision label %q, update revision %q", p.Labels[appsv1.StatefulSetRevisionLabel], set.Status.UpdateRevision)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != set.UID || ref.Kind != "StatefulSet" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("controller ref = %+v", ref)
	}
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Name != "www" || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "www-web-2" {
		t.Errorf("volumes = %+v", p.Spec.Volumes)
	}
	c := f.claims["www-web-2"]
	if c == nil || c.Labels["app"] != "web" || len(c.OwnerReferences) != 0 {
		t.Errorf("claim = %+v", c)
	}
	st := set.Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
		st.ObservedGeneration != 1 || st.CurrentRevision != st.UpdateRevision || st.CollisionCount == nil {
		t.Errorf("status = %+v", st)
	}
	var created []string
	for _, e := range f.events {
		if strings.Contains(e, "SuccessfulCreate Create Pod") {
			created = append(created, e)
		}
	}
	if len(created) != 3 || created[0] != "Normal SuccessfulCreate Create Pod web-0 in StatefulSet web successful" {
		t.Errorf("events = %v", f.events)
	}
}

func TestParallelCreatesAll(t *testing.T) {
	f := newFake()
	set := newSet("db", 4)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	f.sync(t, set, time.Now())
	if got := f.podNames(); !slices.Equal(got, []string{"db-0", "db-1", "db-2", "db-3"}) {
		t.Fatalf("pods = %v", got)
	}
	if len(f.claims) != 4 {
		t.Errorf("claims = %d", len(f.claims))
	}
}

func TestScaleDownInReverseOrderKeepsClaims(t *testing.T) {
	f := newFake()
	set := newSet("web", 3)
	now := time.Now()
	for range 3 {
		f.sync(t, set, now)
		for n := range f.pods {
			f.makeReady(n, now)
		}
	}
	if len(f.podNames()) != 3 {
		t.Fatalf("pods = %v", f.podNames())
	}
	one := int32(1)
	set.Spec.Replicas = &one
	set.Generation++
	f.sync(t, set, now)
	if got := f.podNames(); !slices.Equal(got, []string{"web-0", "web-1"}) {
		t.Fatalf("after scale down pods = %v, want web-2 deleted first", got)
	}
	// web-2 is still terminating: web-1 waits.
	f.sync(t, set, now)
	if got := f.podNames(); len(got) != 2 {
		t.Fatalf("pods = %v while web-2 terminates", got)
	}
	f.finishDeletions()
	f.sync(t, set, now)
	if got := f.podNames(); !slices.Equal(got, []string{"web-0"}) {
		t.Fatalf("pods = %v", got)
	}
	if len(f.claims) != 3 {
		t.Fatalf("claims = %d; Retain keeps them all", len(f.claims))
	}
	// Scaling up again reuses the claims.
	f.finishDeletions()
	three := int32(3)
	set.Spec.Replicas = &three
	uid := f.claims["www-web-1"].UID
	f.sync(t, set, now)
	f.makeReady("web-1", now)
	f.sync(t, set, now)
	if f.claims["www-web-1"].UID != uid {
		t.Errorf("claim www-web-1 was recreated")
	}
	for _, a := range f.actions {
		if strings.HasPrefix(a, "create claim") {
			t.Errorf("unexpected %s", a)
		}
	}
}

func TestDeletedPodIsReplacedWithSameClaim(t *testing.T) {
	f := newFake()
	set := newSet("web", 2)
	now := time.Now()
	for range 2 {
		f.sync(t, set, now)
		for n := range f.pods {
			f.makeReady(n, now)
		}
	}
	uid := f.claims["www-web-0"].UID
	delete(f.pods, "web-0")
	f.sync(t, set, now)
	if _, ok := f.pods["web-0"]; !ok {
		t.Fatalf("web-0 not recreated: %v", f.actions)
	}
	if f.claims["www-web-0"].UID != uid {
		t.Errorf("claim recreated")
	}
	if f.pods["web-0"].Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "www-web-0" {
		t.Errorf("replacement mounts %+v", f.pods["web-0"].Spec.Volumes)
	}
}

func TestFailedPodIsReplaced(t *testing.T) {
	f := newFake()
	set := newSet("web", 1)
	now := time.Now()
	f.sync(t, set, now)
	f.pods["web-0"].Status.Phase = corev1.PodFailed
	f.sync(t, set, now)
	if !slices.Contains(f.actions, "delete pod web-0") {
		t.Fatalf("actions = %v, want the failed pod deleted", f.actions)
	}
	f.finishDeletions()
	f.sync(t, set, now)
	if !slices.Contains(f.actions, "create pod web-0") {
		t.Fatalf("actions = %v, want web-0 created again", f.actions)
	}
}

func readySet(t *testing.T, f *fake, set *appsv1.StatefulSet, now time.Time) {
	t.Helper()
	for range replicasOf(set) + 1 {
		f.sync(t, set, now)
		for n := range f.pods {
			f.makeReady(n, now)
		}
	}
	f.sync(t, set, now)
}

func TestRollingUpdateHighestFirstWithPartition(t *testing.T) {
	f := newFake()
	set := newSet("web", 3)
	now := time.Now()
	readySet(t, f, set, now)
	rev1 := set.Status.CurrentRevision
	if rev1 == "" || !strings.HasPrefix(rev1, "web-") {
		t.Fatalf("current revision %q", rev1)
	}
	one := int32(1)
	set.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	set.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	set.Generation++
	f.sync(t, set, now)
	rev2 := set.Status.UpdateRevision
	if rev2 == rev1 || set.Status.CurrentRevision != rev1 {
		t.Fatalf("revisions current %q update %q", set.Status.CurrentRevision, rev2)
	}
	if !slices.Equal(f.podNames(), []string{"web-0", "web-1"}) {
		t.Fatalf("pods = %v, want web-2 deleted first", f.podNames())
	}
	// One at a time: nothing more while web-2 is away.
	f.sync(t, set, now)
	if len(f.podNames()) != 2 {
		t.Fatalf("pods = %v", f.podNames())
	}
	f.finishDeletions()
	f.sync(t, set, now)
	p := f.pods["web-2"]
	if p == nil || p.Spec.Containers[0].Image != "nginx:2" || revisionOf(p) != rev2 {
		t.Fatalf("web-2 = %+v", p)
	}
	// Until web-2 is ready, web-1 stays.
	f.sync(t, set, now)
	if _, ok := f.pods["web-1"]; !ok || f.pods["web-1"].DeletionTimestamp != nil {
		t.Fatalf("web-1 deleted before web-2 was ready")
	}
	f.makeReady("web-2", now)
	f.sync(t, set, now)
	if !slices.Equal(f.podNames(), []string{"web-0", "web-2"}) {
		t.Fatalf("pods = %v, want web-1 updated next", f.podNames())
	}
	f.finishDeletions()
	f.sync(t, set, now)
	f.makeReady("web-1", now)
	f.sync(t, set, now)
	// The partition keeps web-0 at the old revision.
	if revisionOf(f.pods["web-0"]) != rev1 || f.pods["web-0"].DeletionTimestamp != nil {
		t.Fatalf("web-0 touched below the partition")
	}
	if set.Status.UpdatedReplicas != 2 || set.Status.CurrentReplicas != 1 || set.Status.CurrentRevision != rev1 {
		t.Fatalf("status = %+v", set.Status)
	}
	// Partition 0 finishes the rollout; current becomes the update revision.
	zero := int32(0)
	set.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
	f.sync(t, set, now)
	f.finishDeletions()
	f.sync(t, set, now)
	f.makeReady("web-0", now)
	f.sync(t, set, now)
	if set.Status.CurrentRevision != rev2 || set.Status.CurrentReplicas != 3 || set.Status.UpdatedReplicas != 3 {
		t.Fatalf("status = %+v", set.Status)
	}
	if len(f.revs) != 2 {
		t.Errorf("revisions = %d", len(f.revs))
	}
	// Rolling back to the first template reuses its revision, renumbered.
	set.Spec.Template.Spec.Containers[0].Image = "nginx:1"
	f.sync(t, set, now)
	if set.Status.UpdateRevision != rev1 || f.revs[rev1].Revision != 3 {
		t.Fatalf("update revision %q (revision %d), want %q renumbered 3", set.Status.UpdateRevision, f.revs[rev1].Revision, rev1)
	}
}

func TestOnDeleteLeavesPods(t *testing.T) {
	f := newFake()
	set := newSet("web", 2)
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	now := time.Now()
	readySet(t, f, set, now)
	set.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	f.sync(t, set, now)
	for _, a := range f.actions {
		if strings.HasPrefix(a, "delete pod") {
			t.Fatalf("OnDelete deleted a pod: %v", f.actions)
		}
	}
	// A pod deleted by the user comes back at the new revision.
	delete(f.pods, "web-1")
	f.sync(t, set, now)
	if f.pods["web-1"].Spec.Containers[0].Image != "nginx:2" {
		t.Fatalf("web-1 image %s", f.pods["web-1"].Spec.Containers[0].Image)
	}
}

func TestMaxUnavailable(t *testing.T) {
	f := newFake()
	set := newSet("web", 4)
	two := intstr.FromInt32(2)
	set.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &two
	now := time.Now()
	readySet(t, f, set, now)
	set.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	f.sync(t, set, now)
	if !slices.Equal(f.podNames(), []string{"web-0", "web-1"}) {
		t.Fatalf("pods = %v, want the two highest updated at once", f.podNames())
	}
}

func TestRetentionPolicyDelete(t *testing.T) {
	f := newFake()
	set := newSet("web", 2)
	set.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	now := time.Now()
	readySet(t, f, set, now)
	c := f.claims["www-web-1"]
	if ref := metav1.GetControllerOf(c); ref == nil || ref.UID != set.UID {
		t.Fatalf("claim owners = %+v, want the set", c.OwnerReferences)
	}
	one := int32(1)
	set.Spec.Replicas = &one
	f.sync(t, set, now)
	c = f.claims["www-web-1"]
	pod := f.pods["web-1"]
	if ref := metav1.GetControllerOf(c); ref == nil || ref.UID != pod.UID || ref.Kind != "Pod" || len(c.OwnerReferences) != 1 {
		t.Fatalf("scaled-down claim owners = %+v, want only its pod", c.OwnerReferences)
	}
	if ref := metav1.GetControllerOf(f.claims["www-web-0"]); ref == nil || ref.UID != set.UID {
		t.Fatalf("kept claim owners = %+v", f.claims["www-web-0"].OwnerReferences)
	}
}

func TestRevisionIsStable(t *testing.T) {
	set := newSet("web", 1)
	a, err := newRevision(set, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newRevision(set.DeepCopy(), 1, nil)
	if a.Name != b.Name || !equalRevision(a, b) {
		t.Fatalf("revisions differ: %s %s", a.Name, b.Name)
	}
	var cc int32 = 1
	c, _ := newRevision(set, 1, &cc)
	if c.Name == a.Name {
		t.Fatalf("collision count does not change the name")
	}
	if a.Labels[RevisionHashLabel] == "" || a.Labels["app"] != "web" || !strings.HasPrefix(a.Name, "web-") {
		t.Fatalf("revision %+v", a.ObjectMeta)
	}
	// Applying the revision restores the template.
	changed := set.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "other"
	restored, err := applyRevision(changed, a)
	if err != nil {
		t.Fatal(err)
	}
	if restored.Spec.Template.Spec.Containers[0].Image != "nginx:1" {
		t.Fatalf("restored image %s", restored.Spec.Template.Spec.Containers[0].Image)
	}
	if !sameAsLatest(set, a, a) {
		t.Fatalf("sameAsLatest false for the same revision")
	}
}

func TestHistoryIsTruncated(t *testing.T) {
	f := newFake()
	set := newSet("web", 1)
	one := int32(1)
	set.Spec.RevisionHistoryLimit = &one
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	now := time.Now()
	readySet(t, f, set, now)
	for i := 2; i <= 5; i++ {
		set.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("nginx:%d", i)
		f.sync(t, set, now)
	}
	// Live: the pod's (current) and the update revision; plus one old.
	if len(f.revs) != 3 {
		t.Fatalf("revisions = %d, want 3", len(f.revs))
	}
}
