package framework

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

func pod(cluster, ns, name string, lbl map[string]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl, ResourceVersion: "1"}}
	if cluster != "" {
		p.Annotations = map[string]string{ClusterAnnotation: cluster}
	}
	return p
}

// fakeSource is a ListerWatcher serving a fixed list and then whatever the
// test sends on its fake watch, like the wildcard view does.
type fakeSource struct {
	items []corev1.Pod
	w     *watch.FakeWatcher
}

func (s *fakeSource) List(metav1.ListOptions) (runtime.Object, error) {
	return &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: s.items}, nil
}
func (s *fakeSource) Watch(metav1.ListOptions) (watch.Interface, error) { return s.w, nil }

type events struct {
	mu   sync.Mutex
	seen []string
}

func (e *events) add(s string) { e.mu.Lock(); e.seen = append(e.seen, s); e.mu.Unlock() }
func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInformerKeepsClustersApart(t *testing.T) {
	src := &fakeSource{w: watch.NewFake(), items: []corev1.Pod{
		*pod("a", "default", "web", map[string]string{"app": "web"}),
		*pod("b", "default", "web", map[string]string{"app": "web"}),
		*pod("", "default", "web", map[string]string{"app": "db"}), // no annotation: the default cluster
		*pod("a", "other", "x", nil),
	}}
	inf := NewInformer[*corev1.Pod](corev1.Resource("pods"), src)
	inf.AddIndex("byLabel", func(p *corev1.Pod) []string { return []string{p.Labels["app"]} })
	var ev events
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ev.add("add " + KeyOf(o.(*corev1.Pod)).String()) },
		UpdateFunc: func(_, o any) { ev.add("update " + KeyOf(o.(*corev1.Pod)).String()) },
		DeleteFunc: func(o any) { k, _ := KeyFromEvent(o); ev.add("delete " + k.String()) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.Run(ctx)
	waitFor(t, "sync", inf.HasSynced)

	if n := len(inf.ListAll()); n != 4 {
		t.Fatalf("ListAll: %d objects, want 4", n)
	}
	for _, c := range []string{"a", "b", "root"} {
		p, err := inf.Get(c, "default", "web")
		if err != nil {
			t.Fatalf("Get %s: %v", c, err)
		}
		if ClusterOf(p) != c {
			t.Errorf("Get %s returned a pod of cluster %s", c, ClusterOf(p))
		}
	}
	if _, err := inf.Get("c", "default", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("Get in an unknown cluster: %v, want NotFound", err)
	}
	if n := len(inf.List("a", "", nil)); n != 2 {
		t.Errorf("List(a, all namespaces) = %d, want 2", n)
	}
	if n := len(inf.List("a", "default", nil)); n != 1 {
		t.Errorf("List(a, default) = %d, want 1", n)
	}
	if n := len(inf.List("root", "", labels.SelectorFromSet(labels.Set{"app": "web"}))); n != 0 {
		t.Errorf("List(root, app=web) = %d, want 0", n)
	}
	if n := len(inf.ByIndex("byLabel", "web")); n != 2 {
		t.Errorf("ByIndex(web) = %d, want 2", n)
	}

	// Changes in one cluster leave the same name in another alone.
	upd := pod("b", "default", "web", map[string]string{"app": "db"})
	upd.ResourceVersion = "2"
	src.w.Modify(upd)
	src.w.Delete(pod("a", "default", "web", nil))
	src.w.Add(pod("c", "default", "web", nil))
	waitFor(t, "events", func() bool { return len(ev.list()) == 7 })
	want := []string{"add a|default/web", "add b|default/web", "add root|default/web", "add a|other/x",
		"update b|default/web", "delete a|default/web", "add c|default/web"}
	got := ev.list()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if _, err := inf.Get("a", "default", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("deleted pod still cached: %v", err)
	}
	if p, _ := inf.Get("b", "default", "web"); p == nil || p.Labels["app"] != "db" {
		t.Errorf("b's pod not updated: %v", p)
	}
	if n := len(inf.ByIndex("byLabel", "db")); n != 2 {
		t.Errorf("ByIndex(db) after update = %d, want 2", n)
	}

	// A handler added late hears of every cached object.
	var late atomic.Int32
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { late.Add(1) }})
	if late.Load() != 4 {
		t.Errorf("late handler got %d adds, want 4", late.Load())
	}
}

func TestFactoryAndQueueWithFakeClientset(t *testing.T) {
	cs := fake.NewClientset(pod("", "default", "p1", nil), pod("", "kube-system", "p2", nil))
	clients := NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	f := NewFactory(clients, 0)
	pods := f.Pods()
	if f.Pods() != pods {
		t.Fatal("second Pods() made another informer")
	}
	var mu sync.Mutex
	synced := map[string]int{}
	fails := 2
	q := NewQueue("test", func(ctx context.Context, k Key) error {
		mu.Lock()
		defer mu.Unlock()
		if k.Name == "p1" && fails > 0 {
			fails--
			return errors.New("not yet")
		}
		synced[k.String()]++
		return nil
	})
	pods.AddEventHandler(q.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	if !f.WaitForCacheSync(ctx) {
		t.Fatal("no sync")
	}
	done := make(chan struct{})
	go func() { q.Run(ctx, 2, pods.HasSynced); close(done) }()
	waitFor(t, "both pods synced", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return synced["root|default/p1"] == 1 && synced["root|kube-system/p2"] == 1
	})
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("", "default", "p3", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "p3 synced", func() bool { mu.Lock(); defer mu.Unlock(); return synced["root|default/p3"] == 1 })
	var names []string
	for _, p := range pods.List("root", "default", nil) {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	if len(names) != 3-1 || names[0] != "p1" || names[1] != "p3" {
		t.Errorf("List(root, default) = %v", names)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("queue did not stop")
	}
}

func TestKeys(t *testing.T) {
	for _, k := range []Key{{"root", "ns", "n"}, {"t1", "", "node-1"}} {
		got, err := ParseKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKey(%q) = %v, %v", k.String(), got, err)
		}
	}
	p := pod("t1", "ns", "n", nil)
	p.Annotations["keep"] = "x"
	StripCluster(p)
	if _, ok := p.Annotations[ClusterAnnotation]; ok || p.Annotations["keep"] != "x" {
		t.Errorf("StripCluster: %v", p.Annotations)
	}
	p2 := pod("t1", "ns", "n", nil)
	StripCluster(p2)
	if p2.Annotations != nil {
		t.Errorf("StripCluster left %v", p2.Annotations)
	}
}

func TestForgetCluster(t *testing.T) {
	src := &fakeSource{w: watch.NewFake(), items: []corev1.Pod{*pod("a", "ns", "p", nil), *pod("b", "ns", "p", nil), *pod("b", "ns", "q", nil)}}
	inf := NewInformer[*corev1.Pod](corev1.Resource("pods"), src)
	var ev events
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) { k, _ := KeyFromEvent(o); ev.add(k.String()) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.Run(ctx)
	waitFor(t, "sync", inf.HasSynced)
	inf.ForgetCluster("b")
	if got := ev.list(); len(got) != 2 {
		t.Errorf("deletions %v, want b's two pods", got)
	}
	if n := len(inf.ListAll()); n != 1 {
		t.Errorf("%d pods cached, want a's one", n)
	}
}

// An informer of one tenant's own URL (no wildcard view) marks what it
// receives as that tenant's, so keys, listers and ClusterOf agree.
func TestInformerInOneCluster(t *testing.T) {
	src := &fakeSource{w: watch.NewFake(), items: []corev1.Pod{*pod("", "default", "web", nil)}}
	inf := NewInformer[*corev1.Pod](corev1.Resource("pods"), src).InCluster("acme")
	var ev events
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) { ev.add(KeyOf(o.(*corev1.Pod)).String()) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.Run(ctx)
	waitFor(t, "sync", inf.HasSynced)
	p, err := inf.Get("acme", "default", "web")
	if err != nil || ClusterOf(p) != "acme" {
		t.Fatalf("Get in acme: %v, cluster %q", err, ClusterOf(p))
	}
	src.w.Add(pod("", "default", "db", nil))
	waitFor(t, "the watched pod", func() bool { return len(ev.list()) == 2 })
	if got := ev.list(); got[0] != "acme|default/web" || got[1] != "acme|default/db" {
		t.Errorf("handlers saw %v", got)
	}
	if _, err := inf.Get("root", "default", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("the pod also appears as root's: %v", err)
	}
}
