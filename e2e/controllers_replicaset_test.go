package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// The workload controllers' tests run on the shared `pgkube up`, whose
// controller manager does the work; with no node agent yet, wlKubelet
// plays the nodes' part for the pods of one namespace.

// wlKubelet stands in for node agents in one namespace: it binds pods to
// a node (when node is set), marks them Running, and Ready when ready
// says so (through pods/binding and pods/status, as a kubelet would), and
// finishes the deletion of terminating pods after terminate.
type wlKubelet struct {
	cs        kubernetes.Interface
	ns        string
	node      string
	ready     func(*corev1.Pod) bool
	terminate time.Duration
}

// wlStartKubelet runs k until the test ends.
func wlStartKubelet(t *testing.T, k wlKubelet) {
	if k.ready == nil {
		k.ready = func(*corev1.Pod) bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			k.pass(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(40 * time.Millisecond):
			}
		}
	}()
}

func (k wlKubelet) pass(ctx context.Context) {
	pods, err := k.cs.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		switch {
		case p.DeletionTimestamp != nil:
			asked := p.DeletionTimestamp.Time
			if g := p.DeletionGracePeriodSeconds; g != nil {
				asked = asked.Add(-time.Duration(*g) * time.Second)
			}
			if time.Since(asked) >= k.terminate {
				zero := int64(0)
				uid := p.UID
				k.cs.CoreV1().Pods(k.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, //nolint:errcheck
					Preconditions: &metav1.Preconditions{UID: &uid}})
			}
		case k.node != "" && p.Spec.NodeName == "":
			k.cs.CoreV1().Pods(k.ns).Bind(ctx, &corev1.Binding{ //nolint:errcheck
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: p.UID},
				Target:     corev1.ObjectReference{Kind: "Node", Name: k.node},
			}, metav1.CreateOptions{})
		case p.Status.Phase == "" || p.Status.Phase == corev1.PodPending || (k.ready(p) != wlPodReady(p) && p.Status.Phase == corev1.PodRunning):
			k.run(ctx, p)
		}
	}
}

// run reports the pod Running, Ready or not.
func (k wlKubelet) run(ctx context.Context, p *corev1.Pod) {
	ready := k.ready(p)
	now := metav1.Now()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	if p.Status.StartTime == nil {
		p.Status.StartTime = &now
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: ready, Started: &ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	k.cs.CoreV1().Pods(k.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}) //nolint:errcheck
}

func wlPodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// wlImageReady: pods whose first image has "never-ready" in it stay
// unready.
func wlImageReady(p *corev1.Pod) bool {
	return !strings.Contains(p.Spec.Containers[0].Image, "never-ready")
}

// wlPods are the pods of ns matching sel that are not being deleted.
func wlPods(t *testing.T, cs kubernetes.Interface, ns, sel string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func wlNames(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// wlKubectl is the kubectl on PATH against srv.
func wlKubectl(t *testing.T, srv *pgkube) *kubectl {
	return &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
}

// wlSetup makes the namespace and its kubelet stand-in.
func wlSetup(t *testing.T, ns string, k wlKubelet) (kubernetes.Interface, *kubectl) {
	return wlSetupOn(t, sharedServer(t), ns, k)
}

// wlSetupOn is wlSetup on a server the test already has (a test asking
// for the shared server twice gets a fresh one the second time).
func wlSetupOn(t *testing.T, srv *pgkube, ns string, k wlKubelet) (kubernetes.Interface, *kubectl) {
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	namespace(t, cs, ns)
	k.cs, k.ns = cs, ns
	wlStartKubelet(t, k)
	return cs, wlKubectl(t, srv)
}

// wlEvents are the messages of the Events about one object, "Reason
// message" each.
func wlEvents(t *testing.T, cs kubernetes.Interface, ns, kind, name string) []string {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.Reason+" "+e.Message)
		}
	}
	return out
}

func wlHasEvent(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

const wlRSYAML = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  namespace: %s
spec:
  replicas: %d
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example/web:1
`

// TestControllersReplicaSet: a ReplicaSet adopts a matching orphan and
// creates only the missing pods, recreates a deleted pod, releases a pod
// whose labels stop matching, reports status, and keeps its pods when
// deleted with --cascade=orphan.
func TestControllersReplicaSet(t *testing.T) {
	const ns = "ctl-rs"
	cs, k := wlSetup(t, ns, wlKubelet{node: "node-a", terminate: 300 * time.Millisecond})
	ctx := context.Background()

	// An orphan that the ReplicaSet will select.
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.okIn(fmt.Sprintf(wlRSYAML, ns, 3), "apply", "-f", "-")
	rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "3 ready pods, the orphan adopted", func() error {
		pods := wlPods(t, cs, ns, "app=web")
		if len(pods) != 3 {
			return fmt.Errorf("%d pods: %v", len(pods), wlNames(pods))
		}
		for _, p := range pods {
			ref := metav1.GetControllerOf(&p)
			if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
				return fmt.Errorf("pod %s has controller %+v", p.Name, ref)
			}
			if !wlPodReady(&p) {
				return fmt.Errorf("pod %s not ready yet", p.Name)
			}
		}
		if pods[0].Name != "orphan" && pods[1].Name != "orphan" && pods[2].Name != "orphan" {
			return fmt.Errorf("the orphan is not among %v", wlNames(pods))
		}
		return nil
	})
	within(t, 15*time.Second, "status", func() error {
		cur, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := cur.Status
		if st.Replicas != 3 || st.FullyLabeledReplicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.ObservedGeneration != cur.Generation {
			return fmt.Errorf("status %+v, generation %d", st, cur.Generation)
		}
		return nil
	})
	// Two creations only: the orphan counted.
	if ev := wlEvents(t, cs, ns, "ReplicaSet", "web"); strings.Count(strings.Join(ev, "\n"), "SuccessfulCreate") != 2 {
		t.Fatalf("events: %v", ev)
	}
	out := k.ok("get", "rs", "web", "-n", ns)
	contains(t, out, "DESIRED", "CURRENT", "READY")
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); f[1] != "3" || f[2] != "3" || f[3] != "3" {
		t.Fatalf("kubectl get rs: %s", out)
	}

	// A deleted pod is replaced (the deleted one terminates on its node
	// meanwhile).
	before := wlPods(t, cs, ns, "app=web")
	victim := before[1].Name
	k.ok("delete", "pod", victim, "-n", ns, "--wait=false")
	within(t, 30*time.Second, "replacement", func() error {
		pods := wlPods(t, cs, ns, "app=web")
		for _, p := range pods {
			if p.Name == victim {
				return fmt.Errorf("%s still there", victim)
			}
		}
		if len(pods) != 3 {
			return fmt.Errorf("%d pods: %v", len(pods), wlNames(pods))
		}
		return nil
	})

	// A pod relabelled out of the selector is released and replaced.
	released := wlPods(t, cs, ns, "app=web")[0].Name
	k.ok("label", "pod", released, "-n", ns, "app=other", "--overwrite")
	within(t, 30*time.Second, "release", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, released, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.OwnerReferences) != 0 {
			return fmt.Errorf("still owned: %+v", p.OwnerReferences)
		}
		if n := len(wlPods(t, cs, ns, "app=web")); n != 3 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})

	// Scale down to 1 with kubectl: two go, the survivor is one of ours.
	k.ok("scale", "rs", "web", "-n", ns, "--replicas=1")
	within(t, 30*time.Second, "scale down", func() error {
		if pods := wlPods(t, cs, ns, "app=web"); len(pods) != 1 {
			return fmt.Errorf("%d pods: %v", len(pods), wlNames(pods))
		}
		cur, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if cur.Status.Replicas != 1 || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	k.ok("scale", "rs", "web", "-n", ns, "--replicas=2")
	within(t, 30*time.Second, "scale up", func() error {
		if pods := wlPods(t, cs, ns, "app=web"); len(pods) != 2 {
			return fmt.Errorf("%d pods: %v", len(pods), wlNames(pods))
		}
		cur, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if cur.Status.Replicas != 2 || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	ev := wlEvents(t, cs, ns, "ReplicaSet", "web")
	if !wlHasEvent(ev, "SuccessfulDelete Deleted pod: ") {
		t.Fatalf("no deletion event: %v", ev)
	}

	// --cascade=orphan: the ReplicaSet goes (once the garbage collector has
	// released its pods) and the pods stay.
	kept := wlNames(wlPods(t, cs, ns, "app=web"))
	k.ok("delete", "rs", "web", "-n", ns, "--cascade=orphan", "--wait=false")
	deadline := time.Now().Add(12 * time.Second)
	gone := false
	for time.Now().Before(deadline) {
		cur, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			gone = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if cur.DeletionTimestamp == nil {
			t.Fatalf("the ReplicaSet is not being deleted: %+v", cur.ObjectMeta)
		}
		time.Sleep(100 * time.Millisecond)
		// While it waits for the garbage collector, its controller
		// neither replaces nor deletes pods.
		if got := wlNames(wlPods(t, cs, ns, "app=web")); strings.Join(got, ",") != strings.Join(kept, ",") {
			t.Fatalf("pods changed while the ReplicaSet was being deleted: %v, were %v", got, kept)
		}
	}
	pods := wlPods(t, cs, ns, "app=web")
	if got := wlNames(pods); strings.Join(got, ",") != strings.Join(kept, ",") {
		t.Fatalf("pods after an orphaning delete: %v, were %v", got, kept)
	}
	if gone {
		within(t, 10*time.Second, "owner references dropped", func() error {
			for _, p := range wlPods(t, cs, ns, "app=web") {
				if len(p.OwnerReferences) != 0 {
					return fmt.Errorf("pod %s still has %+v", p.Name, p.OwnerReferences)
				}
			}
			return nil
		})
	} else {
		t.Logf("the ReplicaSet still waits for the garbage collector to remove the orphan finalizer; its pods stayed")
	}
}

const wlRCYAML = `apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
  namespace: %s
spec:
  replicas: 2
  selector:
    app: legacy
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: legacy
        image: registry.example/legacy:1
`

// TestControllersReplicationController: the same controller serves
// ReplicationControllers.
func TestControllersReplicationController(t *testing.T) {
	const ns = "ctl-rc"
	cs, k := wlSetup(t, ns, wlKubelet{})
	ctx := context.Background()
	k.okIn(fmt.Sprintf(wlRCYAML, ns), "apply", "-f", "-")
	within(t, 30*time.Second, "2 ready pods", func() error {
		rc, err := cs.CoreV1().ReplicationControllers(ns).Get(ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods := wlPods(t, cs, ns, "app=legacy")
		if len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			ref := metav1.GetControllerOf(&p)
			if ref == nil || ref.UID != rc.UID || ref.Kind != "ReplicationController" || ref.APIVersion != "v1" {
				return fmt.Errorf("pod %s controller %+v", p.Name, ref)
			}
		}
		if st := rc.Status; st.Replicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 2 || st.ObservedGeneration != rc.Generation {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	k.ok("scale", "rc", "legacy", "-n", ns, "--replicas=4")
	within(t, 30*time.Second, "4 pods", func() error {
		if n := len(wlPods(t, cs, ns, "app=legacy")); n != 4 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
}

// wlSampler records, until stopped, the lowest and highest values f
// returns.
type wlSampler struct {
	mu       sync.Mutex
	low, top int
	samples  int
	stop     chan struct{}
	done     chan struct{}
}

func wlSample(f func() (int, bool)) *wlSampler {
	s := &wlSampler{low: 1 << 30, top: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			if v, ok := f(); ok {
				s.mu.Lock()
				s.low, s.top = min(s.low, v), max(s.top, v)
				s.samples++
				s.mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return s
}

func (s *wlSampler) finish() (low, top, samples int) {
	close(s.stop)
	<-s.done
	return s.low, s.top, s.samples
}

// wlCountReady counts the pods of sel that are ready and not being
// deleted.
func wlCountReady(cs kubernetes.Interface, ns string, sel labels.Selector) (int, bool) {
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return 0, false
	}
	n := 0
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && wlPodReady(&p) {
			n++
		}
	}
	return n, true
}
