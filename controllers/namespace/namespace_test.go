package namespace

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var widgets = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func obj(apiVersion, kind, ns, name string, finalizers ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetFinalizers(finalizers)
	return u
}

// setup is a controller over fakes holding namespace "doomed" (deleted,
// with the kubernetes finalizer) and content.
func setup(t *testing.T, content ...runtime.Object) (*Controller, *fake.Clientset, *dynfake.FakeDynamicClient) {
	now := metav1.Now()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed", UID: "u1", DeletionTimestamp: &now},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}}
	cs := fake.NewClientset(ns)
	// finalize: the API server removes a deleted namespace without finalizers.
	cs.PrependReactor("create", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "finalize" {
			return false, nil, nil
		}
		want := a.(k8stesting.CreateAction).GetObject().(*corev1.Namespace)
		tr := cs.Tracker()
		cur, err := tr.Get(corev1.SchemeGroupVersion.WithResource("namespaces"), "", want.Name)
		if err != nil {
			return true, nil, err
		}
		n := cur.(*corev1.Namespace).DeepCopy()
		n.Spec.Finalizers = want.Spec.Finalizers
		if len(n.Spec.Finalizers) == 0 && n.DeletionTimestamp != nil {
			return true, n, tr.Delete(corev1.SchemeGroupVersion.WithResource("namespaces"), "", n.Name)
		}
		return true, n, tr.Update(corev1.SchemeGroupVersion.WithResource("namespaces"), n, "")
	})
	scheme := runtime.NewScheme()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "pods"}: "PodList", {Version: "v1", Resource: "configmaps"}: "ConfigMapList", widgets: "WidgetList"},
		content...)
	// deletecollection: delete what has no finalizers, mark the rest.
	dyn.PrependReactor("delete-collection", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		gvr, ns := a.GetResource(), a.GetNamespace()
		kinds := map[string]string{"pods": "Pod", "configmaps": "ConfigMap", "widgets": "Widget"}
		l, err := dyn.Tracker().List(gvr, schema.GroupVersionKind{Group: gvr.Group, Version: gvr.Version, Kind: kinds[gvr.Resource]}, ns)
		if err != nil {
			return true, nil, err
		}
		items, _ := l.(*unstructured.UnstructuredList)
		for i := range items.Items {
			it := &items.Items[i]
			if len(it.GetFinalizers()) > 0 {
				now := metav1.Now()
				it.SetDeletionTimestamp(&now)
				if err := dyn.Tracker().Update(gvr, it, ns); err != nil {
					return true, nil, err
				}
				continue
			}
			if err := dyn.Tracker().Delete(gvr, ns, it.GetName()); err != nil {
				return true, nil, err
			}
		}
		return true, nil, nil
	})
	// delete: as the API server, mark what finalizers hold.
	dyn.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		cur, err := dyn.Tracker().Get(d.GetResource(), d.GetNamespace(), d.GetName())
		if err != nil {
			return true, nil, err
		}
		u := cur.(*unstructured.Unstructured)
		if len(u.GetFinalizers()) == 0 {
			return true, nil, dyn.Tracker().Delete(d.GetResource(), d.GetNamespace(), d.GetName())
		}
		now := metav1.Now()
		u.SetDeletionTimestamp(&now)
		return true, u, dyn.Tracker().Update(d.GetResource(), u, d.GetNamespace())
	})
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	clients.SetDynamic("root", dyn)
	r, err := New(&framework.Context{Factory: framework.NewFactory(clients, 0), Clients: clients, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := r.(*Controller)
	c.discover = func(string) ([]*metav1.APIResourceList, error) {
		all := metav1.Verbs{"list", "delete", "deletecollection"}
		return []*metav1.APIResourceList{
			{GroupVersion: "v1", APIResources: []metav1.APIResource{
				{Name: "pods", Namespaced: true, Kind: "Pod", Verbs: all},
				{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: metav1.Verbs{"list", "delete"}}}},
			{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
				{Name: "widgets", Namespaced: true, Kind: "Widget", Verbs: all}}},
		}, nil
	}
	return c, cs, dyn
}

func count(t *testing.T, dyn *dynfake.FakeDynamicClient, gvr schema.GroupVersionResource) int {
	l, err := dyn.Resource(gvr).Namespace("doomed").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

func TestDeletesContentThenFinalizes(t *testing.T) {
	c, cs, dyn := setup(t,
		obj("v1", "Pod", "doomed", "p1"), obj("v1", "ConfigMap", "doomed", "c1"), obj("v1", "ConfigMap", "doomed", "c2"),
		obj("example.com/v1", "Widget", "doomed", "w1"), obj("v1", "ConfigMap", "kept", "elsewhere"))
	ctx := context.Background()
	if err := c.sync(ctx, framework.Key{Cluster: "root", Name: "doomed"}); err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []schema.GroupVersionResource{podsGVR, {Version: "v1", Resource: "configmaps"}, widgets} {
		if n := count(t, dyn, gvr); n != 0 {
			t.Errorf("%d %s left", n, gvr.Resource)
		}
	}
	if l, _ := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("kept").List(ctx, metav1.ListOptions{}); len(l.Items) != 1 {
		t.Errorf("another namespace's content was touched")
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace not finalized: %v", err)
	}
}

func TestFinalizerHoldsNamespace(t *testing.T) {
	c, cs, dyn := setup(t, obj("v1", "ConfigMap", "doomed", "held", "example.com/hold"), obj("example.com/v1", "Widget", "doomed", "w1"))
	ctx := context.Background()
	k := framework.Key{Cluster: "root", Name: "doomed"}
	if err := c.sync(ctx, k); err != nil {
		t.Fatal(err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace finalized with content left: %v", err)
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("phase %q", ns.Status.Phase)
	}
	if n := count(t, dyn, widgets); n != 0 {
		t.Errorf("widgets left: %d", n)
	}
	want := map[corev1.NamespaceConditionType]string{
		corev1.NamespaceDeletionDiscoveryFailure: "False ResourcesDiscovered",
		corev1.NamespaceDeletionGVParsingFailure: "False ParsedGroupVersions",
		corev1.NamespaceDeletionContentFailure:   "False ContentDeleted",
		corev1.NamespaceContentRemaining:         "True SomeResourcesRemain Some resources are remaining: configmaps. has 1 resource instances",
		corev1.NamespaceFinalizersRemaining:      "True SomeFinalizersRemain Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
	}
	if len(ns.Status.Conditions) != len(want) {
		t.Errorf("conditions: %+v", ns.Status.Conditions)
	}
	for _, cond := range ns.Status.Conditions {
		got := string(cond.Status) + " " + cond.Reason
		if cond.Status == corev1.ConditionTrue {
			got += " " + cond.Message
		}
		if got != want[cond.Type] {
			t.Errorf("condition %s: %q, want %q", cond.Type, got, want[cond.Type])
		}
	}
	if c.queue.Len() != 0 {
		t.Errorf("requeued at once; want after %v", finalizerWait)
	}

	// The finalizer goes: the next sync finalizes.
	u, _ := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("doomed").Get(ctx, "held", metav1.GetOptions{})
	if err := dyn.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "doomed", u.GetName()); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace not finalized once empty: %v", err)
	}
}

func TestDiscoveryFailureIsACondition(t *testing.T) {
	c, cs, _ := setup(t)
	c.discover = func(string) ([]*metav1.APIResourceList, error) { return nil, apierrors.NewServiceUnavailable("down") }
	ctx := context.Background()
	if err := c.sync(ctx, framework.Key{Cluster: "root", Name: "doomed"}); err == nil {
		t.Fatal("sync succeeded without discovery")
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, cond := range ns.Status.Conditions {
		if cond.Type == corev1.NamespaceDeletionDiscoveryFailure {
			found = cond.Status == corev1.ConditionTrue && cond.Reason == "DiscoveryFailed" && strings.Contains(cond.Message, "down")
		}
	}
	if !found {
		t.Errorf("no DiscoveryFailed condition: %+v", ns.Status.Conditions)
	}
}

func TestConditionTransitionTimes(t *testing.T) {
	var st corev1.NamespaceStatus
	t0 := metav1.NewTime(time.Unix(100, 0))
	t1 := metav1.NewTime(time.Unix(200, 0))
	var c conditions
	c.remaining(map[schema.GroupVersionResource]int{podsGVR: 2}, nil)
	if !c.apply(&st, t0) || len(st.Conditions) != 5 {
		t.Fatalf("first apply: %+v", st.Conditions)
	}
	// Same again: no change.
	var same conditions
	same.remaining(map[schema.GroupVersionResource]int{podsGVR: 2}, nil)
	if same.apply(&st, t1) {
		t.Error("unchanged conditions reported as changed")
	}
	// A new count: message changes, the transition time does not.
	var fewer conditions
	fewer.remaining(map[schema.GroupVersionResource]int{podsGVR: 1}, nil)
	if !fewer.apply(&st, t1) {
		t.Error("changed message not reported")
	}
	for _, cond := range st.Conditions {
		if cond.Type == corev1.NamespaceContentRemaining && (cond.LastTransitionTime != t0 || !strings.Contains(cond.Message, "pods. has 1 resource")) {
			t.Errorf("%+v", cond)
		}
	}
	// Settled: status flips, transition time moves.
	var done conditions
	done.apply(&st, t1)
	for _, cond := range st.Conditions {
		if cond.Type == corev1.NamespaceContentRemaining && (cond.Status != corev1.ConditionFalse || cond.LastTransitionTime != t1 || cond.Reason != "ContentRemoved") {
			t.Errorf("%+v", cond)
		}
	}
}
