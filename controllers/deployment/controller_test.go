package deployment

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/internal/fakeclient"
	"github.com/pgkube/pgkube/controllers/replicaset"
)

// fakeCluster runs the Deployment and ReplicaSet controllers on client-go's
// fake clientset, with reactors for what the fake lacks (generated names
// and uids, generations), and a kubelet stand-in that makes pods ready
// when ready() says so.
func fakeCluster(t *testing.T, ready func(*corev1.Pod) bool) (*fake.Clientset, *framework.FakeRecorder) {
	t.Helper()
	cs := fakeclient.New()
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	f := framework.NewFactory(clients, 0)
	rec := &framework.FakeRecorder{}
	c := &framework.Context{Factory: f, Clients: clients, Recorder: rec, Workers: 2}
	rsc, err := replicaset.NewReplicaSet(c)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	if !f.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	go rsc.Run(ctx)
	go dc.Run(ctx)
	go kubelet(ctx, cs, ready)
	return cs, rec
}

// kubelet marks pods Running, and Ready when ready says so.
func kubelet(ctx context.Context, cs *fake.Clientset, ready func(*corev1.Pod) bool) {
	for ctx.Err() == nil {
		l, err := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range l.Items {
				if p.Status.Phase == corev1.PodRunning || !ready(&p) {
					continue
				}
				p.Spec.NodeName = "node-1"
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
				cs.CoreV1().Pods("ns").UpdateStatus(ctx, &p, metav1.UpdateOptions{}) //nolint:errcheck
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func newDeployment(name string, n int32, image string) *appsv1.Deployment {
	surge, unavail := intstr.FromInt32(1), intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
			RevisionHistoryLimit:    ptr(int32(2)),
			ProgressDeadlineSeconds: ptr(int32(600)),
		},
	}
}

func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// updateD changes a deployment, retrying on conflicts with the
// controller's writes.
func updateD(t *testing.T, cs *fake.Clientset, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	for range 50 {
		d := getD(t, cs, name)
		change(d)
		_, err := cs.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("could not update the deployment")
}

func getD(t *testing.T, cs *fake.Clientset, name string) *appsv1.Deployment {
	d, err := cs.AppsV1().Deployments("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func replicaSets(t *testing.T, cs *fake.Clientset) map[string]*appsv1.ReplicaSet {
	l, err := cs.AppsV1().ReplicaSets("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*appsv1.ReplicaSet{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out
}

func rolledOut(d *appsv1.Deployment) (bool, string) {
	st := d.Status
	want := *d.Spec.Replicas
	c := getCondition(&st, appsv1.DeploymentProgressing)
	ok := st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want &&
		st.AvailableReplicas == want && c != nil && c.Reason == ReasonNewRSAvailable
	return ok, fmt.Sprintf("gen %d %+v", d.Generation, st)
}

func availableNow(t *testing.T, cs *fake.Clientset) int {
	l, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	n := 0
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && replicaset.IsPodReady(&p) {
			n++
		}
	}
	return n
}

func TestRollingUpdateOnFake(t *testing.T) {
	cs, rec := fakeCluster(t, func(*corev1.Pod) bool { return true })
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, newDeployment("web", 3, "img:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first rollout", func() (bool, string) { return rolledOut(getD(t, cs, "web")) })
	d := getD(t, cs, "web")
	if d.Annotations[RevisionAnnotation] != "1" {
		t.Fatalf("revision %q", d.Annotations[RevisionAnnotation])
	}
	first := TemplateHash(&d.Spec.Template, nil)
	rs1 := replicaSets(t, cs)["web-"+first]
	if rs1 == nil || rs1.Labels[podTemplateHashLabel] != first || rs1.Spec.Selector.MatchLabels[podTemplateHashLabel] != first ||
		rs1.Annotations[DesiredReplicasAnnotation] != "3" || rs1.Annotations[MaxReplicasAnnotation] != "4" {
		t.Fatalf("first ReplicaSet %+v", rs1)
	}

	// A new template with maxUnavailable 0: never fewer than 3 ready.
	stop := make(chan struct{})
	minSeen := make(chan int, 1)
	go func() {
		low := 1 << 30
		for {
			select {
			case <-stop:
				minSeen <- low
				return
			default:
			}
			low = min(low, availableNow(t, cs))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	updateD(t, cs, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "img:2" })
	eventually(t, "second rollout", func() (bool, string) {
		d := getD(t, cs, "web")
		ok, msg := rolledOut(d)
		return ok && d.Annotations[RevisionAnnotation] == "2", msg
	})
	close(stop)
	if low := <-minSeen; low < 3 {
		t.Fatalf("only %d pods ready at one point of a maxUnavailable=0 rollout\n%s", low, strings.Join(rec.List(), "\n"))
	}
	rss := replicaSets(t, cs)
	if len(rss) != 2 || *rss["web-"+first].Spec.Replicas != 0 {
		t.Fatalf("replica sets after the rollout: %d", len(rss))
	}

	// Roll back through the deprecated annotation.
	updateD(t, cs, "web", func(d *appsv1.Deployment) {
		d.Annotations[deprecatedRollbackToAnnot] = "0"
	})
	eventually(t, "rollback", func() (bool, string) {
		d := getD(t, cs, "web")
		ok, msg := rolledOut(d)
		return ok && d.Spec.Template.Spec.Containers[0].Image == "img:1" && d.Annotations[RevisionAnnotation] == "3" &&
			d.Annotations[deprecatedRollbackToAnnot] == "", msg + " " + d.Annotations[RevisionAnnotation]
	})
	if rs := replicaSets(t, cs)["web-"+first]; rs.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("history of the reused ReplicaSet: %v", rs.Annotations)
	}

	// Two more templates: the history limit of 2 leaves 3 ReplicaSets.
	for _, img := range []string{"img:3", "img:4"} {
		updateD(t, cs, "web", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = img
		})
		eventually(t, "rollout of "+img, func() (bool, string) {
			d := getD(t, cs, "web")
			ok, msg := rolledOut(d)
			return ok && d.Spec.Template.Spec.Containers[0].Image == img, msg
		})
	}
	eventually(t, "history cleanup", func() (bool, string) {
		rss := replicaSets(t, cs)
		return len(rss) == 3, fmt.Sprintf("%d replica sets", len(rss))
	})

	var scaled []string
	for _, e := range rec.List() {
		if strings.Contains(e, "ScalingReplicaSet") {
			scaled = append(scaled, e)
		}
	}
	want := fmt.Sprintf("Normal ScalingReplicaSet Scaled up replica set web-%s from 0 to 3", first)
	if len(scaled) == 0 || scaled[0] != want {
		t.Fatalf("first event %v, want %q", scaled, want)
	}
}

func TestPausedScalingIsProportional(t *testing.T) {
	// Pods of the second template never become ready: the rollout stays
	// half way.
	cs, rec := fakeCluster(t, func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image == "img:1" })
	defer func() {
		if t.Failed() {
			t.Log(strings.Join(rec.List(), "\n"))
		}
	}()
	ctx := context.Background()
	d := newDeployment("api", 10, "img:1")
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr(intstr.FromInt32(3))
	d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromInt32(2))
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first rollout", func() (bool, string) { return rolledOut(getD(t, cs, "api")) })
	updateD(t, cs, "api", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "img:2"
	})
	// 13 pods at most, 8 available at least: old 8, new 5.
	sizes := func() []int32 {
		var out []int32
		for _, rs := range replicaSets(t, cs) {
			out = append(out, *rs.Spec.Replicas)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	eventually(t, "stuck half way", func() (bool, string) {
		s := sizes()
		return len(s) == 2 && s[0] == 5 && s[1] == 8, fmt.Sprint(s)
	})
	updateD(t, cs, "api", func(d *appsv1.Deployment) {
		d.Spec.Paused = true
	})
	eventually(t, "paused condition", func() (bool, string) {
		d := getD(t, cs, "api")
		c := getCondition(&d.Status, appsv1.DeploymentProgressing)
		return c != nil && c.Reason == ReasonPaused && c.Status == corev1.ConditionUnknown, fmt.Sprintf("%+v", c)
	})
	updateD(t, cs, "api", func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr(int32(20))
	})
	eventually(t, "proportional scale", func() (bool, string) {
		s := sizes()
		return len(s) == 2 && s[0] == 9 && s[1] == 14, fmt.Sprint(s)
	})
	// Still paused: it stays there.
	time.Sleep(300 * time.Millisecond)
	if s := sizes(); s[0] != 9 || s[1] != 14 {
		t.Fatalf("a paused deployment moved on: %v", s)
	}
	updateD(t, cs, "api", func(d *appsv1.Deployment) {
		d.Spec.Paused = false
	})
	eventually(t, "resumed condition", func() (bool, string) {
		d := getD(t, cs, "api")
		c := getCondition(&d.Status, appsv1.DeploymentProgressing)
		return c != nil && c.Reason != ReasonPaused, fmt.Sprintf("%+v", c)
	})
}

func TestRecreateOnFake(t *testing.T) {
	cs, _ := fakeCluster(t, func(*corev1.Pod) bool { return true })
	ctx := context.Background()
	d := newDeployment("batch", 2, "img:1")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first rollout", func() (bool, string) { return rolledOut(getD(t, cs, "batch")) })
	updateD(t, cs, "batch", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "img:2"
	})
	// Never old and new pods at once.
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		images := map[string]bool{}
		for _, p := range l.Items {
			images[p.Spec.Containers[0].Image] = true
		}
		if len(images) > 1 {
			t.Fatalf("old and new pods together: %v", images)
		}
		if ok, _ := rolledOut(getD(t, cs, "batch")); ok && images["img:2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recreate did not finish: %+v", getD(t, cs, "batch").Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
