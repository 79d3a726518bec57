package gc

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
)

func TestFromDiscovery(t *testing.T) {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	lists := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: all},
			{Name: "pods/status", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "update"}},
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: all},
			{Name: "namespaces", Kind: "Namespace", Verbs: all},
			{Name: "componentstatuses", Kind: "ComponentStatus", Verbs: []string{"get", "list"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: all}}},
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{{Name: "widgets", Kind: "Widget", Namespaced: true, Verbs: all}}},
	}
	kinds, watchable := fromDiscovery(lists, func(gr schema.GroupResource) bool { return gr.Group != "example.com" })
	var got []string
	for gvr := range watchable {
		got = append(got, gvr.String())
	}
	slices.Sort(got)
	want := []string{"apps/v1, Resource=replicasets", "/v1, Resource=namespaces", "/v1, Resource=pods"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("watched %v, want %v (no events, no subresources, only deletable ones, no custom ones)", got, want)
	}
	if ki, ok := kinds[schema.GroupKind{Kind: "Namespace"}]; !ok || ki.namespaced || ki.gvr.Resource != "namespaces" {
		t.Errorf("Namespace maps to %+v", ki)
	}
	if _, ok := kinds[schema.GroupKind{Kind: "ComponentStatus"}]; !ok {
		t.Errorf("kinds that cannot be watched still map (owners may be of any kind)")
	}
	if _, ok := kinds[schema.GroupKind{Group: "example.com", Kind: "Widget"}]; ok {
		t.Errorf("a resource keep refused is mapped")
	}
}

func TestHandlerEnqueues(t *testing.T) {
	g := &Controller{
		builtin: map[schema.GroupKind]kindInfo{
			{Kind: "ConfigMap"}: {gvr: cmGVR, namespaced: true},
		},
		rediscovered: map[string]time.Time{},
		queue:        workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[item]()),
	}
	defer g.queue.ShutDown()
	h := &handler{g: g, gvr: cmGVR}
	drain := func() []string {
		var out []string
		for g.queue.Len() > 0 {
			it, _ := g.queue.Get()
			out = append(out, it.Name)
			g.queue.Done(it)
			g.queue.Forget(it)
		}
		slices.Sort(out)
		return out
	}
	yes, no := true, false
	plain := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "ns", UID: "p"}}
	h.OnAdd(plain, true)
	if got := drain(); len(got) != 0 {
		t.Errorf("an object without owners queued: %v", got)
	}
	dep := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "dep", Namespace: "ns", UID: "d",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "o", BlockOwnerDeletion: &yes}}}}
	h.OnAdd(dep, true)
	if got := drain(); !slices.Equal(got, []string{"dep"}) {
		t.Errorf("queued %v", got)
	}
	// A status-only change: nothing.
	dep2 := dep.DeepCopy()
	dep2.ResourceVersion = "2"
	h.OnUpdate(dep, dep2)
	if got := drain(); len(got) != 0 {
		t.Errorf("queued %v on an update that changes no owner or finalizer", got)
	}
	// Unblocking the owner: the owner gets a look (it may wait for us).
	dep3 := dep2.DeepCopy()
	dep3.OwnerReferences[0].BlockOwnerDeletion = &no
	h.OnUpdate(dep2, dep3)
	if got := drain(); !slices.Equal(got, []string{"dep", "owner"}) {
		t.Errorf("queued %v, want the dependent and its owner", got)
	}
	// Deleted: itself (for its dependents) and its owners.
	h.OnDelete(dep)
	if got := drain(); !slices.Equal(got, []string{"dep", "owner"}) {
		t.Errorf("queued %v", got)
	}
}
