package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// setPodReady plays the node agent: the pod is Running and Ready (or
// Running and not Ready), through the status subresource.
func setPodReady(t *testing.T, cs kubernetes.Interface, ns, name string, ready bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now},
		}
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("marking pod %s/%s ready: %v", ns, name, err)
	}
}

// podAbsentFor checks that no pod name exists during d.
func podAbsentFor(t *testing.T, cs kubernetes.Interface, ns, name string, d time.Duration, why string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
			t.Fatalf("pod %s exists %s", name, why)
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitPod(t *testing.T, cs kubernetes.Interface, ns, name string, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	within(t, 30*time.Second, "pod "+name, func() (err error) {
		pod, err = cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if check != nil {
			return check(pod)
		}
		return nil
	})
	return pod
}

// podLog records the order pods of a namespace are added and deleted in.
type podLog struct {
	mu     sync.Mutex
	events []string
}

func (l *podLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *podLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// only keeps events of one type ("ADDED", "DELETED").
func only(events []string, typ string) []string {
	var out []string
	for _, e := range events {
		if n, ok := strings.CutPrefix(e, typ+" "); ok {
			out = append(out, n)
		}
	}
	return out
}

func watchPods(t *testing.T, cs kubernetes.Interface, ns string) *podLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &podLog{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && (ev.Type == watch.Added || ev.Type == watch.Deleted) {
				l.add(string(ev.Type) + " " + p.Name)
			}
		}
	}()
	return l
}

// TestControllersStatefulSet: with the controller manager `pgkube up`
// runs, a StatefulSet's pods appear in order 0,1,2 (each only once its
// predecessor is Running and Ready, which the test plays), with their
// hostnames and claims; a deleted pod comes back with the same claim; a
// template change rolls from the highest ordinal down, one pod at a time;
// scaling down removes the highest first and keeps the claims.
func TestControllersStatefulSet(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "sts-e2e"
	namespace(t, cs, ns)
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "web", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := watchPods(t, cs, ns)
	replicas := int32(3)
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "nginx",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27",
					VolumeMounts: []corev1.VolumeMount{{Name: "www", MountPath: "/usr/share/nginx/html"}}}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "www"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	if set, err = cs.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// In order: each pod only once its predecessor is Running and Ready.
	claimUIDs := map[string]types.UID{}
	for i := range 3 {
		name := fmt.Sprintf("web-%d", i)
		pod := waitPod(t, cs, ns, name, nil)
		// The claim was made before the pod.
		c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "www-"+name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim of %s: %v", name, err)
		}
		claimUIDs[name] = c.UID
		if c.Labels["app"] != "web" {
			t.Errorf("claim labels %v", c.Labels)
		}
		if pod.Spec.Hostname != name || pod.Spec.Subdomain != "nginx" {
			t.Errorf("%s: hostname %q subdomain %q", name, pod.Spec.Hostname, pod.Spec.Subdomain)
		}
		if pod.Labels["statefulset.kubernetes.io/pod-name"] != name || pod.Labels["apps.kubernetes.io/pod-index"] != fmt.Sprint(i) ||
			pod.Labels["controller-revision-hash"] == "" {
			t.Errorf("%s: labels %v", name, pod.Labels)
		}
		if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != set.UID {
			t.Errorf("%s: controller %+v", name, ref)
		}
		if len(pod.Spec.Volumes) == 0 || pod.Spec.Volumes[0].PersistentVolumeClaim == nil || pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "www-"+name {
			t.Errorf("%s: volumes %+v", name, pod.Spec.Volumes)
		}
		if i < 2 {
			next := fmt.Sprintf("web-%d", i+1)
			podAbsentFor(t, cs, ns, next, 2*time.Second, "while "+name+" is not ready")
			setPodReady(t, cs, ns, name, false) // Running, not Ready: still not enough
			podAbsentFor(t, cs, ns, next, time.Second, "while "+name+" is running but not ready")
		}
		setPodReady(t, cs, ns, name, true)
	}
	if added := only(log.snapshot(), "ADDED"); !slices.Equal(added, []string{"web-0", "web-1", "web-2"}) {
		t.Fatalf("pods added in order %v", added)
	}
	within(t, 30*time.Second, "status", func() error {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := s.Status
		if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
			st.ObservedGeneration != s.Generation || st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	revs, err := cs.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(revs.Items) != 1 || revs.Items[0].Labels["controller.kubernetes.io/hash"] == "" || metav1.GetControllerOf(&revs.Items[0]) == nil {
		t.Fatalf("controller revisions %+v", revs.Items)
	}

	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	contains(t, k.ok("rollout", "status", "statefulset/web", "-n", ns, "--timeout=30s"), "roll out complete")
	within(t, 15*time.Second, "events", func() error {
		out := k.ok("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=StatefulSet")
		for _, want := range []string{"SuccessfulCreate", "create Pod web-0 in StatefulSet web successful", "create Claim www-web-2 Pod web-2 in StatefulSet web success"} {
			if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
				return fmt.Errorf("events lack %q:\n%s", want, out)
			}
		}
		return nil
	})

	// A deleted pod comes back with the same claim.
	old := waitPod(t, cs, ns, "web-1", nil)
	k.ok("delete", "pod", "web-1", "-n", ns)
	again := waitPod(t, cs, ns, "web-1", func(p *corev1.Pod) error {
		if p.UID == old.UID {
			return fmt.Errorf("still the old pod")
		}
		return nil
	})
	if again.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "www-web-1" {
		t.Fatalf("replacement mounts %+v", again.Spec.Volumes)
	}
	c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "www-web-1", metav1.GetOptions{})
	if err != nil || c.UID != claimUIDs["web-1"] {
		t.Fatalf("claim www-web-1 after the pod's replacement: %v (uid %v, was %v)", err, c.UID, claimUIDs["web-1"])
	}
	setPodReady(t, cs, ns, "web-1", true)

	// A template change rolls from web-2 down, one at a time: the test
	// readies each replacement only after checking nothing else moved.
	// before is the event log's length before the change was made: the
	// controller may delete web-2 before roll is even called.
	roll := func(image string, before int) {
		t.Helper()
		for _, name := range []string{"web-2", "web-1", "web-0"} {
			waitPod(t, cs, ns, name, func(p *corev1.Pod) error {
				if p.Spec.Containers[0].Image != image {
					return fmt.Errorf("%s still runs %s", name, p.Spec.Containers[0].Image)
				}
				return nil
			})
			// The watch log may trail the read above.
			within(t, 10*time.Second, name+"'s deletion in the event log", func() error {
				if !slices.Contains(only(log.snapshot()[before:], "DELETED"), name) {
					return fmt.Errorf("no DELETED event for %s yet", name)
				}
				return nil
			})
			time.Sleep(time.Second) // nothing else may go while it is not ready
			if del := only(log.snapshot()[before:], "DELETED"); del[len(del)-1] != name {
				t.Fatalf("deleted %v while %s was being replaced", del, name)
			}
			setPodReady(t, cs, ns, name, true)
		}
		if del := only(log.snapshot()[before:], "DELETED"); !slices.Equal(del, []string{"web-2", "web-1", "web-0"}) {
			t.Fatalf("rolling update deleted %v, want web-2, web-1, web-0", del)
		}
		contains(t, k.ok("rollout", "status", "statefulset/web", "-n", ns, "--timeout=30s"), "roll out complete")
	}
	first, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := len(log.snapshot())
	k.ok("set", "image", "statefulset/web", "nginx=nginx:1.28", "-n", ns)
	roll("nginx:1.28", before)
	// kubectl reads the history from the ControllerRevisions, and undo
	// brings the first template back under its first revision's name.
	contains(t, k.ok("rollout", "history", "statefulset/web", "-n", ns), "REVISION", "1", "2")
	before = len(log.snapshot())
	k.ok("rollout", "undo", "statefulset/web", "-n", ns)
	roll("nginx:1.27", before)
	undone, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if undone.Status.UpdateRevision != first.Status.UpdateRevision || undone.Status.CurrentRevision != first.Status.UpdateRevision {
		t.Fatalf("after undo: revisions %s/%s, want the first one %s", undone.Status.CurrentRevision, undone.Status.UpdateRevision, first.Status.UpdateRevision)
	}
	if rev, err := cs.AppsV1().ControllerRevisions(ns).Get(ctx, first.Status.UpdateRevision, metav1.GetOptions{}); err != nil || rev.Revision != 3 {
		t.Fatalf("first revision after undo: %v, %+v", err, rev)
	}

	// Scale down: web-2 first, then web-1; the claims stay.
	before = len(log.snapshot())
	k.ok("scale", "statefulset/web", "--replicas=1", "-n", ns)
	within(t, 30*time.Second, "scale down", func() error {
		if del := only(log.snapshot()[before:], "DELETED"); len(del) != 2 {
			return fmt.Errorf("deleted %v", del)
		}
		return nil
	})
	if del := only(log.snapshot()[before:], "DELETED"); !slices.Equal(del, []string{"web-2", "web-1"}) {
		t.Fatalf("scale down deleted %v, want web-2 then web-1", del)
	}
	claims, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 3 {
		t.Fatalf("%d claims after scale down, want 3 kept", len(claims.Items))
	}
	for _, c := range claims.Items {
		name := strings.TrimPrefix(c.Name, "www-")
		if c.UID != claimUIDs[name] {
			t.Errorf("claim %s was replaced", c.Name)
		}
	}
	if os.Getenv("PGKUBE_E2E_KEEP") == "" {
		cs.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{}) //nolint:errcheck
	}
}

// TestControllersStatefulSetParallel: the Parallel policy creates every
// pod at once, without waiting for readiness.
func TestControllersStatefulSetParallel(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "sts-parallel-e2e"
	namespace(t, cs, ns)
	replicas := int32(3)
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         "db",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres:17"}}},
			},
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "three pods, none ready", func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"db-0", "db-1", "db-2"}) {
			return fmt.Errorf("pods %v", names)
		}
		return nil
	})
}

// TestControllersStatefulSetClaimRetention: with the Delete retention
// policies, a scaled-away pod's claim goes with the pod and the others go
// with the StatefulSet (the set and pods own them; the garbage collector
// deletes them); with Retain (the default) they stay.
func TestControllersStatefulSetClaimRetention(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "sts-retention-e2e"
	namespace(t, cs, ns)
	mk := func(name string, policy *appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy) {
		t.Helper()
		replicas := int32(2)
		_, err := cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{
				Replicas: &replicas, ServiceName: name, PodManagementPolicy: appsv1.ParallelPodManagement,
				PersistentVolumeClaimRetentionPolicy: policy,
				Selector:                             &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			waitPod(t, cs, ns, fmt.Sprintf("%s-%d", name, i), nil)
		}
	}
	claims := func(prefix string) []string {
		t.Helper()
		l, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range l.Items {
			if strings.HasPrefix(c.Name, "data-"+prefix+"-") {
				names = append(names, c.Name)
			}
		}
		slices.Sort(names)
		return names
	}
	wantClaims := func(prefix string, want ...string) {
		t.Helper()
		within(t, 30*time.Second, "claims of "+prefix, func() error {
			if got := claims(prefix); !slices.Equal(got, want) {
				return fmt.Errorf("claims %v, want %v", got, want)
			}
			return nil
		})
	}
	scale := func(name string) {
		t.Helper()
		if _, err := cs.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	mk("del", &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType})
	wantClaims("del", "data-del-0", "data-del-1")
	within(t, 30*time.Second, "claims owned by the set", func() error {
		c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-del-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(c); ref == nil || ref.Kind != "StatefulSet" || ref.Name != "del" {
			return fmt.Errorf("owners %+v", c.OwnerReferences)
		}
		return nil
	})
	scale("del")
	wantClaims("del", "data-del-0")
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "del", metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	wantClaims("del")

	mk("keep", nil)
	wantClaims("keep", "data-keep-0", "data-keep-1")
	scale("keep")
	within(t, 30*time.Second, "keep-1 gone", func() error {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "keep-1", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "keep", metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "keep's pods gone with it", func() error {
		if _, err := cs.CoreV1().Pods(ns).Get(ctx, "keep-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("keep-0 still there (%v)", err)
		}
		return nil
	})
	stays(t, 2*time.Second, "retained claims", func() error {
		if got := claims("keep"); len(got) != 2 {
			return fmt.Errorf("claims %v", got)
		}
		return nil
	})
}
