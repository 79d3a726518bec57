package admission

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/storage"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

const testCluster = "root"

// newStore gives the test a Store on a fresh, migrated database.
func newStore(t testing.TB, opts ...storage.Option) *storage.Store {
	t.Helper()
	return storage.New(pgtest.Pool(t, pgtest.NewDatabase(t)), opts...)
}

// newCachedStore gives the test a Store and a ReadCache over it that hears
// of every commit, as the API server wires them. Storage runs commit hooks
// only after the writer has been answered, so a test that lists right
// after its own write first waits for the hook with heard.
func newCachedStore(t testing.TB) (s *storage.Store, c *ReadCache, heard func(o storage.Object)) {
	t.Helper()
	var last atomic.Int64
	s = newStore(t, storage.OnCommit(func(cluster string, objs []storage.Object) {
		c.Committed(cluster, objs)
		last.Store(objs[len(objs)-1].RV)
	}))
	c = NewReadCache(s, AdmissionCachedResources()...)
	heard = func(o storage.Object) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for last.Load() < o.RV {
			if time.Now().After(deadline) {
				t.Fatalf("commit hook for rv %d never ran", o.RV)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return s, c, heard
}

// storageKeyOf names where the REST layer keeps obj, and sets its kind as
// the stored JSON carries it.
func storageKeyOf(t testing.TB, obj runtime.Object) string {
	t.Helper()
	set := func(tm *metav1.TypeMeta, apiVersion, kind string) { tm.APIVersion, tm.Kind = apiVersion, kind }
	switch o := obj.(type) {
	case *corev1.Namespace:
		set(&o.TypeMeta, "v1", "Namespace")
		return "/namespaces"
	case *corev1.Pod:
		set(&o.TypeMeta, "v1", "Pod")
		return "/pods"
	case *corev1.ServiceAccount:
		set(&o.TypeMeta, "v1", "ServiceAccount")
		return "/serviceaccounts"
	case *corev1.LimitRange:
		set(&o.TypeMeta, "v1", "LimitRange")
		return "/limitranges"
	case *corev1.ResourceQuota:
		set(&o.TypeMeta, "v1", "ResourceQuota")
		return "/resourcequotas"
	case *corev1.Service:
		set(&o.TypeMeta, "v1", "Service")
		return "/services"
	case *corev1.ConfigMap:
		set(&o.TypeMeta, "v1", "ConfigMap")
		return "/configmaps"
	case *corev1.PersistentVolumeClaim:
		set(&o.TypeMeta, "v1", "PersistentVolumeClaim")
		return "/persistentvolumeclaims"
	case *schedulingv1.PriorityClass:
		set(&o.TypeMeta, "scheduling.k8s.io/v1", "PriorityClass")
		return "scheduling.k8s.io/priorityclasses"
	case *appsv1.Deployment:
		set(&o.TypeMeta, "apps/v1", "Deployment")
		return "apps/deployments"
	}
	t.Fatalf("no storage key for %T", obj)
	return ""
}

// put stores obj as the REST layer would: typed JSON with apiVersion,
// kind and the resourceVersion it is stored at.
func put(t testing.TB, s *storage.Store, obj runtime.Object) storage.Object {
	t.Helper()
	resource := storageKeyOf(t, obj)
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	if m.GetUID() == "" {
		m.SetUID(types.UID("uid-" + m.GetNamespace() + "-" + m.GetName()))
	}
	o, err := s.Write(context.Background(), testCluster, storage.Write{
		Op:     storage.Create,
		Key:    storage.Key{Resource: resource, Namespace: m.GetNamespace(), Name: m.GetName()},
		Labels: m.GetLabels(),
		Encode: func(rv int64) ([]byte, error) {
			m.SetResourceVersion(strconv.FormatInt(rv, 10))
			return json.Marshal(obj)
		},
	})
	if err != nil {
		t.Fatalf("store %s/%s: %v", m.GetNamespace(), m.GetName(), err)
	}
	return o
}

// get reads a stored object back into obj.
func get(t testing.TB, s *storage.Store, resource, namespace, name string, obj any) storage.Object {
	t.Helper()
	o, err := s.Get(context.Background(), testCluster, storage.Key{Resource: resource, Namespace: namespace, Name: name})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", resource, namespace, name, err)
	}
	if err := json.Unmarshal(o.Data, obj); err != nil {
		t.Fatal(err)
	}
	return o
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

// testPod is a pod with one container per name, each requesting what res
// says ("cpu=100m,memory=1Gi"; limits after a "/").
func testPod(ns, name string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, c := range containers {
		cname, res, _ := strings.Cut(c, ":")
		req, lim, _ := strings.Cut(res, "/")
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: cname, Image: "busybox",
			Resources: corev1.ResourceRequirements{Requests: resources(req), Limits: resources(lim)},
		})
	}
	return p
}

// resources parses "cpu=100m,memory=1Gi".
func resources(s string) corev1.ResourceList {
	if s == "" {
		return nil
	}
	out := corev1.ResourceList{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	return out
}

func createAttrs(obj runtime.Object, group, res string) *Attributes {
	m, _ := meta.Accessor(obj)
	return &Attributes{Cluster: testCluster, Operation: Create, Group: group, Version: "v1", Resource: res,
		Namespace: m.GetNamespace(), Name: m.GetName(), Object: obj}
}

func podCreate(p *corev1.Pod) *Attributes { return createAttrs(p, "", "pods") }

// wantStatus checks err is an API status of the reason and message given.
func wantStatus(t testing.TB, err error, reason metav1.StatusReason, msg string) {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want a %s status %q", err, err, reason, msg)
	}
	if se.ErrStatus.Reason != reason || se.ErrStatus.Message != msg {
		t.Fatalf("status = %s %q\nwant     %s %q", se.ErrStatus.Reason, se.ErrStatus.Message, reason, msg)
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
