package server

import (
	"slices"
	"testing"

	"github.com/pgkube/pgkube/registry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The garbage collector's finalizers a delete leaves, as kube-apiserver
// chooses them.
func TestGCFinalizers(t *testing.T) {
	const orphan, fg = metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents
	policy := func(p metav1.DeletionPropagation) *metav1.DeleteOptions {
		return &metav1.DeleteOptions{PropagationPolicy: &p}
	}
	yes := true
	cases := []struct {
		name   string
		kind   registry.GCPolicy
		have   []string
		opts   *metav1.DeleteOptions
		want   []string
		change bool
	}{
		{"background by default", registry.DeleteDependents, nil, &metav1.DeleteOptions{}, nil, false},
		{"legacy kinds orphan by default", registry.OrphanDependents, nil, &metav1.DeleteOptions{}, []string{orphan}, true},
		{"legacy kind asked for background", registry.OrphanDependents, nil, policy(metav1.DeletePropagationBackground), nil, false},
		{"foreground", registry.DeleteDependents, []string{"x"}, policy(metav1.DeletePropagationForeground), []string{"x", fg}, true},
		{"a new policy replaces the old", registry.DeleteDependents, []string{fg, "x"}, policy(metav1.DeletePropagationOrphan), []string{"x", orphan}, true},
		{"background removes both", registry.DeleteDependents, []string{fg, orphan}, policy(metav1.DeletePropagationBackground), nil, true},
		{"no policy keeps what is there", registry.DeleteDependents, []string{fg}, &metav1.DeleteOptions{}, []string{fg}, false},
		{"orphanDependents", registry.DeleteDependents, nil, &metav1.DeleteOptions{OrphanDependents: &yes}, []string{orphan}, true},
		{"events never", registry.NoGarbageCollection, nil, policy(metav1.DeletePropagationForeground), nil, false},
	}
	for _, c := range cases {
		got, changed := gcFinalizers(c.kind, c.have, c.opts)
		if !slices.Equal(got, c.want) || changed != c.change {
			t.Errorf("%s: got %v (changed %v), want %v (changed %v)", c.name, got, changed, c.want, c.change)
		}
	}
}
