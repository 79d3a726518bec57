package admission

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadCacheSeesOwnWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c, heard := newCachedStore(t)
	key := storage.Key{Resource: "/serviceaccounts", Namespace: "ns", Name: "default"}

	// A miss is remembered, and forgotten once this process writes the
	// object: at once, before the commit hook has necessarily run.
	if _, err := c.Get(ctx, testCluster, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get before create: %v", err)
	}
	put(t, s, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "default"}})
	if _, err := c.Get(ctx, testCluster, key); err != nil {
		t.Fatalf("get after create: %v", err)
	}

	list := func(ns string) int {
		res, err := c.List(ctx, testCluster, storage.ListOptions{Resource: "/limitranges", Namespace: ns})
		mustNil(t, err)
		return len(res.Items)
	}
	if n := list("ns"); n != 0 {
		t.Fatalf("%d limit ranges", n)
	}
	heard(put(t, s, limitRange("ns", "l")))
	if n := list("ns"); n != 1 {
		t.Errorf("after create: %d limit ranges, want 1", n)
	}
	if n := list(""); n != 1 {
		t.Errorf("all namespaces: %d limit ranges, want 1", n)
	}

	// Resources it was not asked to cache are always read from storage.
	put(t, s, testPod("ns", "p", "c"))
	res, err := c.List(ctx, testCluster, storage.ListOptions{Resource: "/pods", Namespace: "ns"})
	mustNil(t, err)
	if len(res.Items) != 1 {
		t.Errorf("%d pods", len(res.Items))
	}
}

func TestWarnings(t *testing.T) {
	AddWarning(context.Background(), "dropped") // no collector: no effect
	ctx, w := WithWarnings(context.Background())
	AddWarning(ctx, "a")
	AddWarning(ctx, "b")
	AddWarning(ctx, "a")
	if got := w.List(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("warnings = %q", got)
	}
}
