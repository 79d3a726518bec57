package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func quota(ns, name, hard string) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ResourceQuotaSpec{Hard: resources(hard)}}
}

// storedQuota reads a quota back and checks it is stored as the REST
// layer stores objects: its resourceVersion is the version it is at.
func storedQuota(t *testing.T, s *storage.Store, ns, name string) *corev1.ResourceQuota {
	t.Helper()
	q := &corev1.ResourceQuota{}
	o := get(t, s, "/resourcequotas", ns, name, q)
	if q.ResourceVersion != strconv.FormatInt(o.RV, 10) || q.Kind != "ResourceQuota" || q.APIVersion != "v1" {
		t.Errorf("stored quota: resourceVersion %q kind %q/%q at rv %d", q.ResourceVersion, q.APIVersion, q.Kind, o.RV)
	}
	return q
}

func wantUsed(t *testing.T, q *corev1.ResourceQuota, used string) {
	t.Helper()
	if !equality.Semantic.DeepEqual(q.Status.Used, resources(used)) {
		t.Errorf("quota %s used = %v, want %s", q.Name, q.Status.Used, used)
	}
}

func deleteObject(t *testing.T, s *storage.Store, resource, ns, name string) {
	t.Helper()
	_, err := s.Write(context.Background(), testCluster, storage.Write{Op: storage.Delete,
		Key: storage.Key{Resource: resource, Namespace: ns, Name: name}, Encode: func(int64) ([]byte, error) { return []byte("{}"), nil }})
	mustNil(t, err)
}

func TestResourceQuotaPods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	q := NewResourceQuota(s, nil)
	labels := map[string]string{"team": "a"}
	rq := quota("ns", "q", "pods=3,requests.cpu=1")
	rq.Labels = labels
	put(t, s, rq)
	put(t, s, testPod("ns", "old1", "c:cpu=100m"))
	put(t, s, testPod("ns", "old2", "c:cpu=100m"))
	done := testPod("ns", "done", "c:cpu=500m")
	done.Status.Phase = corev1.PodSucceeded
	put(t, s, done)

	// The quota has no usage yet: it is counted from the stored pods first
	// (a finished pod holds no cpu, nor a "pods" slot).
	mustNil(t, q.Admit(ctx, podCreate(testPod("ns", "p1", "c:cpu=300m"))))
	got := storedQuota(t, s, "ns", "q")
	wantUsed(t, got, "pods=3,requests.cpu=500m")
	if !equality.Semantic.DeepEqual(got.Status.Hard, got.Spec.Hard) {
		t.Errorf("status.hard = %v", got.Status.Hard)
	}
	if o := get(t, s, "/resourcequotas", "ns", "q", &corev1.ResourceQuota{}); o.Labels["team"] != "a" {
		t.Errorf("labels lost on status write: %v", o.Labels)
	}

	wantStatus(t, q.Admit(ctx, podCreate(testPod("ns", "p2", "c:cpu=100m"))), metav1.StatusReasonForbidden,
		`pods "p2" is forbidden: exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3`)

	// Recalculate gives back what deleted pods held.
	deleteObject(t, s, "/pods", "ns", "old1")
	deleteObject(t, s, "/pods", "ns", "old2")
	put(t, s, testPod("ns", "p1", "c:cpu=300m")) // the create admitted above
	mustNil(t, q.Recalculate(ctx, testCluster, "ns"))
	wantUsed(t, storedQuota(t, s, "ns", "q"), "pods=1,requests.cpu=300m")

	wantStatus(t, q.Admit(ctx, podCreate(testPod("ns", "big", "c:cpu=800m"))), metav1.StatusReasonForbidden,
		`pods "big" is forbidden: exceeded quota: q, requested: requests.cpu=800m, used: requests.cpu=300m, limited: requests.cpu=1`)

	// A dry run is checked but not charged.
	a := podCreate(testPod("ns", "dry", "c:cpu=100m"))
	a.DryRun = true
	mustNil(t, q.Admit(ctx, a))
	wantUsed(t, storedQuota(t, s, "ns", "q"), "pods=1,requests.cpu=300m")

	// Other namespaces and uncovered kinds are free.
	mustNil(t, q.Admit(ctx, podCreate(testPod("free", "p", "c"))))
	mustNil(t, q.Admit(ctx, createAttrs(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}, "", "configmaps")))
}

func TestResourceQuotaConstraintsAndScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	q := NewResourceQuota(s, nil)
	put(t, s, quota("ns", "compute", "limits.cpu=2,requests.memory=1Gi"))

	wantStatus(t, q.Admit(ctx, podCreate(testPod("ns", "p", "a:memory=1Mi", "b"))), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: a,b; requests.memory for: b`)
	// A limit stands in for a missing request, as pod defaulting does.
	mustNil(t, q.Admit(ctx, podCreate(testPod("ns", "p", "a:/cpu=1,memory=100Mi"))))
	wantUsed(t, storedQuota(t, s, "ns", "compute"), "limits.cpu=1,requests.memory=100Mi")

	// A BestEffort-scoped quota counts only pods that ask for nothing.
	be := quota("be", "be", "pods=1")
	be.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
	put(t, s, be)
	mustNil(t, q.Admit(ctx, podCreate(testPod("be", "x", "c"))))
	mustNil(t, q.Admit(ctx, podCreate(testPod("be", "y", "c:cpu=1"))))
	wantStatus(t, q.Admit(ctx, podCreate(testPod("be", "z", "c"))), metav1.StatusReasonForbidden,
		`pods "z" is forbidden: exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1`)
	wantUsed(t, storedQuota(t, s, "be", "be"), "pods=1")
}

func TestResourceQuotaObjectCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	q := NewResourceQuota(s, nil)
	put(t, s, quota("ns", "counts", "configmaps=1,count/configmaps=5,services.nodeports=2,count/deployments.apps=1"))
	put(t, s, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "untouched"},
		Spec: corev1.ResourceQuotaSpec{Hard: resources("secrets=1")}})

	cm := func(name string) *Attributes {
		return createAttrs(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}, "", "configmaps")
	}
	mustNil(t, q.Admit(ctx, cm("a")))
	wantStatus(t, q.Admit(ctx, cm("b")), metav1.StatusReasonForbidden,
		`configmaps "b" is forbidden: exceeded quota: counts, requested: configmaps=1, used: configmaps=1, limited: configmaps=1`)

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 1}, {Port: 2}, {Port: 3}}}}
	wantStatus(t, q.Admit(ctx, createAttrs(svc, "", "services")), metav1.StatusReasonForbidden,
		`services "s" is forbidden: exceeded quota: counts, requested: services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2`)
	// Turning a ClusterIP service into a NodePort one is charged the ports.
	old := svc.DeepCopy()
	old.Spec.Type, old.ResourceVersion = corev1.ServiceTypeClusterIP, "5"
	svc.Spec.Ports = svc.Spec.Ports[:2]
	upd := createAttrs(svc, "", "services")
	upd.Operation, upd.OldObject = Update, old
	mustNil(t, q.Admit(ctx, upd))

	deploy := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"}}
	mustNil(t, q.Admit(ctx, createAttrs(deploy, "apps", "deployments")))
	wantStatus(t, q.Admit(ctx, createAttrs(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "e"}}, "apps", "deployments")),
		metav1.StatusReasonForbidden,
		`deployments.apps "e" is forbidden: exceeded quota: counts, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`)
	wantUsed(t, storedQuota(t, s, "ns", "counts"), "configmaps=1,count/configmaps=1,services.nodeports=2,count/deployments.apps=1")
	if u := storedQuota(t, s, "ns", "untouched"); u.Status.Used != nil {
		t.Errorf("quota on other resources charged: %v", u.Status.Used)
	}
}

// Concurrent creates against one quota: exactly as many are admitted as it
// allows, whether the requests share a process (one plugin) or not (two
// plugins over one store, whose only coordination is the quota's
// resourceVersion).
func TestResourceQuotaConcurrentCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	counting := &conflictCounter{QuotaStore: s}
	plugins := []*ResourceQuota{NewResourceQuota(counting, nil), NewResourceQuota(counting, nil)}
	for round := range 20 {
		ns := fmt.Sprintf("round-%d", round)
		rq := quota(ns, "q", "pods=5")
		rq.Status.Used = resources("pods=0")
		put(t, s, rq)
		var admitted, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				err := plugins[i%2].Admit(ctx, podCreate(testPod(ns, fmt.Sprintf("p%d", i), "c")))
				switch {
				case err == nil:
					admitted.Add(1)
				case apierrors.IsForbidden(err):
					refused.Add(1)
				default:
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
		if admitted.Load() != 5 || refused.Load() != 15 {
			t.Fatalf("round %d: %d admitted, %d refused; want 5 and 15", round, admitted.Load(), refused.Load())
		}
		wantUsed(t, storedQuota(t, s, ns, "q"), "pods=5")
	}
	t.Logf("%d quota writes lost a race and were retried", counting.conflicts.Load())
}

// conflictCounter counts the quota writes that found the quota changed.
type conflictCounter struct {
	QuotaStore
	conflicts atomic.Int64
}

func (c *conflictCounter) Write(ctx context.Context, cluster string, w storage.Write) (storage.Object, error) {
	o, err := c.QuotaStore.Write(ctx, cluster, w)
	if errors.Is(err, storage.ErrConflict) {
		c.conflicts.Add(1)
	}
	return o, err
}

// A recount must not forget creates admitted but not stored yet, or the
// next creates could exceed the quota.
func TestResourceQuotaRecountKeepsPendingCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	q := NewResourceQuota(s, nil)
	put(t, s, quota("ns", "q", "pods=2"))
	mustNil(t, q.Admit(ctx, podCreate(testPod("ns", "a", "c"))))
	mustNil(t, q.Admit(ctx, podCreate(testPod("ns", "b", "c"))))
	put(t, s, testPod("ns", "a", "c")) // "b" is still on its way
	mustNil(t, q.Recalculate(ctx, testCluster, "ns"))
	wantUsed(t, storedQuota(t, s, "ns", "q"), "pods=2")
	if err := q.Admit(ctx, podCreate(testPod("ns", "c", "c"))); !apierrors.IsForbidden(err) {
		t.Errorf("third pod: %v, want Forbidden", err)
	}

	// A quota whose status was written by someone else keeps its JSON form.
	var raw map[string]any
	o, err := s.Get(ctx, testCluster, storage.Key{Resource: "/resourcequotas", Namespace: "ns", Name: "q"})
	mustNil(t, err)
	mustNil(t, json.Unmarshal(o.Data, &raw))
	if raw["metadata"].(map[string]any)["name"] != "q" {
		t.Errorf("stored quota = %s", o.Data)
	}
}
