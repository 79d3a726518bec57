package replicaset

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/internal/fakeclient"
)

// fakeCluster runs the ReplicaSet controller against client-go's fake
// clientset (which neither generates names nor counts generations, so a
// reactor names pods).
func fakeCluster(t *testing.T) (*fake.Clientset, *framework.FakeRecorder) {
	t.Helper()
	cs := fakeclient.New()
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	f := framework.NewFactory(clients, 0)
	rec := &framework.FakeRecorder{}
	r, err := NewReplicaSet(&framework.Context{Factory: f, Clients: clients, Recorder: rec, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	if !f.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	go r.Run(ctx)
	return cs, rec
}

func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
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

func podsOf(t *testing.T, cs *fake.Clientset, uid types.UID) []corev1.Pod {
	l, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == uid && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func newRS(name string, n int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("rs-" + name), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}},
	}
}

func TestControllerKeepsReplicas(t *testing.T) {
	cs, rec := fakeCluster(t)
	ctx := context.Background()
	rs, err := cs.AppsV1().ReplicaSets("ns").Create(ctx, newRS("web", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods", func() (bool, string) {
		n := len(podsOf(t, cs, rs.UID))
		return n == 3, fmt.Sprintf("%d pods", n)
	})
	// Mark them ready: the status follows.
	for _, p := range podsOf(t, cs, rs.UID) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := cs.CoreV1().Pods("ns").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "status", func() (bool, string) {
		cur, _ := cs.AppsV1().ReplicaSets("ns").Get(ctx, "web", metav1.GetOptions{})
		st := cur.Status
		return st.Replicas == 3 && st.ReadyReplicas == 3 && st.AvailableReplicas == 3 && st.FullyLabeledReplicas == 3 && st.ObservedGeneration == cur.Generation,
			fmt.Sprintf("%+v", st)
	})

	// A deleted pod is replaced.
	victim := podsOf(t, cs, rs.UID)[0].Name
	if err := cs.CoreV1().Pods("ns").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replacement", func() (bool, string) {
		ps := podsOf(t, cs, rs.UID)
		for _, p := range ps {
			if p.Name == victim {
				return false, "victim still there"
			}
		}
		return len(ps) == 3, fmt.Sprintf("%d pods", len(ps))
	})

	// An orphan with matching labels is adopted, and then one pod is one
	// too many: an unready one goes (the stray or the replacement: they
	// are alike but for uids), never a ready one.
	var ready []string
	for _, p := range podsOf(t, cs, rs.UID) {
		if IsPodReady(&p) {
			ready = append(ready, p.Name)
		}
	}
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "ns", Labels: map[string]string{"app": "web"}}}
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "adoption and scale-down", func() (bool, string) {
		stray, err := cs.CoreV1().Pods("ns").Get(ctx, "stray", metav1.GetOptions{})
		adoptedOrGone := err != nil || metav1.IsControlledBy(stray, rs)
		n := len(podsOf(t, cs, rs.UID))
		return adoptedOrGone && n == 3 && !hasEvent(rec, "Normal SuccessfulDelete Deleted pod: "+ready[0]) &&
			!hasEvent(rec, "Normal SuccessfulDelete Deleted pod: "+ready[1]) && hasEvent(rec, "Normal SuccessfulDelete"), fmt.Sprintf("stray err %v, %d pods", err, n)
	})

	// A pod whose labels stop matching is released and replaced.
	p := podsOf(t, cs, rs.UID)[0]
	p.Labels = map[string]string{"app": "other"}
	if _, err := cs.CoreV1().Pods("ns").Update(ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "release", func() (bool, string) {
		cur, err := cs.CoreV1().Pods("ns").Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		n := len(podsOf(t, cs, rs.UID))
		return metav1.GetControllerOf(cur) == nil && n == 3, fmt.Sprintf("owner %v, %d pods", metav1.GetControllerOf(cur), n)
	})

	// Scale down to 1: the two newest unready go, not the ready ones.
	cur, _ := cs.AppsV1().ReplicaSets("ns").Get(ctx, "web", metav1.GetOptions{})
	one := int32(1)
	cur.Spec.Replicas = &one
	if _, err := cs.AppsV1().ReplicaSets("ns").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scale down", func() (bool, string) {
		ps := podsOf(t, cs, rs.UID)
		return len(ps) == 1 && IsPodReady(&ps[0]), fmt.Sprintf("%d pods", len(ps))
	})
	found := false
	for _, e := range rec.List() {
		if strings.HasPrefix(e, "Normal SuccessfulCreate Created pod: web-") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no creation event: %v", rec.List())
	}
}

func TestControllerReportsFailure(t *testing.T) {
	cs, rec := fakeCluster(t)
	ctx := context.Background()
	var creates atomic.Int32
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		creates.Add(1)
		return true, nil, fmt.Errorf("pods \"x\" is forbidden: exceeded quota")
	})
	rs := newRS("quota", 20)
	if _, err := cs.AppsV1().ReplicaSets("ns").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ReplicaFailure", func() (bool, string) {
		cur, _ := cs.AppsV1().ReplicaSets("ns").Get(ctx, "quota", metav1.GetOptions{})
		c := findCondition(cur.Status.Conditions, appsv1.ReplicaSetReplicaFailure)
		return c != nil && c.Reason == "FailedCreate", fmt.Sprintf("%+v", cur.Status)
	})
	// Slow start: the first attempt is one pod, not twenty.
	if n := creates.Load(); n > 5 {
		t.Fatalf("%d creations attempted while every one fails", n)
	}
	found := false
	for _, e := range rec.List() {
		if len(e) > 30 && e[:30] == "Warning FailedCreate Error cre" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no FailedCreate event: %v", rec.List())
	}
}

func hasEvent(rec *framework.FakeRecorder, prefix string) bool {
	for _, e := range rec.List() {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}
