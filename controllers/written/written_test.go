package written

import (
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func obj(name, uid, rv string) *corev1.Endpoints {
	return &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("u-" + uid), ResourceVersion: rv}}
}

func TestTracker(t *testing.T) {
	owner := framework.Key{Cluster: "c", Namespace: "ns", Name: "svc"}
	cache := map[string]metav1.Object{}
	get := func(k framework.Key) metav1.Object {
		if k.Cluster != "c" {
			t.Fatalf("looked up in cluster %q", k.Cluster)
		}
		return cache[k.Name]
	}
	tr := New()
	if tr.IsStale(owner, get) {
		t.Fatal("stale with no writes")
	}
	// Created: stale until the cache has it at that version or later.
	tr.Wrote(owner, obj("a", "1", "10"))
	if !tr.IsStale(owner, get) {
		t.Error("not stale before the cache saw the creation")
	}
	cache["a"] = obj("a", "1", "9")
	if !tr.IsStale(owner, get) {
		t.Error("not stale with an older version cached")
	}
	cache["a"] = obj("a", "1", "12")
	if tr.IsStale(owner, get) {
		t.Error("stale with a newer version cached")
	}
	// Deleted: stale while the cache still has it.
	tr.Deleted(owner, obj("a", "1", "12"))
	if !tr.IsStale(owner, get) {
		t.Error("not stale while the deleted object is cached")
	}
	cache["a"] = obj("a", "2", "20") // replaced by another object
	if tr.IsStale(owner, get) {
		t.Error("stale although the deleted object was replaced")
	}
	// A created object deleted by someone else: the informer says so.
	tr.Wrote(owner, obj("b", "3", "30"))
	tr.Gone(owner, obj("b", "3", "30"))
	if tr.IsStale(owner, get) {
		t.Error("stale after Gone")
	}
	// Records expire.
	now := time.Now()
	tr.now = func() time.Time { return now }
	tr.Wrote(owner, obj("c", "4", "40"))
	tr.now = func() time.Time { return now.Add(TTL + time.Second) }
	if tr.IsStale(owner, get) {
		t.Error("stale after the TTL")
	}
	// Unparseable versions are not waited for.
	tr.Wrote(owner, obj("d", "5", "abc"))
	if tr.IsStale(owner, get) {
		t.Error("stale on a resourceVersion that is not a number")
	}
}
