package storage

import (
	"fmt"
	"testing"
)

func TestRecentRemembersAndForgets(t *testing.T) {
	r := newRecent()
	k := Key{Resource: "/cm", Namespace: "n", Name: "a"}
	r.committed("root", []Object{{Key: k, RV: 1, Data: []byte("v1"), Labels: map[string]string{"x": "y"}}})
	if o, ok := r.get("root", k); !ok || o.RV != 1 || o.Labels != nil {
		t.Fatalf("get after write: %+v %v", o, ok)
	}
	if _, ok := r.get("other", k); ok {
		t.Fatal("clusters must not share entries")
	}
	r.committed("root", []Object{{Key: k, RV: 2, Data: []byte("v2")}})
	if o, _ := r.get("root", k); o.RV != 2 {
		t.Fatalf("newer write not remembered: %+v", o)
	}
	r.committed("root", []Object{{Key: k, RV: 3, Deleted: true}})
	if _, ok := r.get("root", k); ok {
		t.Fatal("a deleted object is still remembered")
	}
	// Churn of creates and deletes must not grow the bookkeeping.
	for i := 0; i < 100000; i++ {
		k := Key{Resource: "/cm", Name: fmt.Sprint(i % 10)}
		r.committed("root", []Object{{Key: k, RV: int64(i), Data: []byte("x")}})
		r.committed("root", []Object{{Key: k, RV: int64(i), Deleted: true}})
	}
	if len(r.order) > 2048 || len(r.items) != 0 {
		t.Fatalf("after churn: %d order entries, %d items", len(r.order), len(r.items))
	}
	// The byte bound evicts the oldest first.
	big := make([]byte, recentBytes/4)
	for i := 0; i < 5; i++ {
		r.committed("root", []Object{{Key: Key{Name: fmt.Sprint("big", i)}, RV: int64(i), Data: big}})
	}
	if _, ok := r.get("root", Key{Name: "big0"}); ok {
		t.Fatal("the oldest entry survived past the byte bound")
	}
	if _, ok := r.get("root", Key{Name: "big4"}); !ok || r.bytes > recentBytes {
		t.Fatalf("newest entry lost or bound exceeded: %d bytes", r.bytes)
	}
}
