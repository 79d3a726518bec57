package claim

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var rsKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}

func pod(name string, lbl string, owner types.UID) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("p-" + name),
		Labels: map[string]string{"app": lbl}}}
	if owner != "" {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: owner, Controller: &yes}}
	}
	return p
}

func TestClaim(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "rs", Namespace: "ns", UID: "rs-uid"}
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	patches := map[string]string{}
	checks := 0
	c := &Controller{
		Object: owner, Kind: rsKind,
		Match:    func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) },
		CanAdopt: func(context.Context) error { checks++; return nil },
		Patch: func(_ context.Context, o metav1.Object, p []byte) error {
			patches[o.GetName()] = string(p)
			return nil
		},
	}
	gone := pod("gone", "web", "")
	now := metav1.Now()
	gone.DeletionTimestamp = &now
	pods := []*corev1.Pod{
		pod("mine", "web", "rs-uid"),
		pod("strayed", "other", "rs-uid"),
		pod("orphan", "web", ""),
		pod("orphan2", "web", ""),
		pod("theirs", "web", "other-uid"),
		pod("unrelated", "other", ""),
		gone,
	}
	got, err := Objects(context.Background(), c, pods)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if len(names) != 3 || names[0] != "mine" || names[1] != "orphan" || names[2] != "orphan2" {
		t.Fatalf("claimed %v", names)
	}
	if len(patches) != 3 || checks != 1 {
		t.Fatalf("patches %v, %d adoption checks", patches, checks)
	}
	var adopt struct {
		Metadata struct {
			UID             types.UID               `json:"uid"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(patches["orphan"]), &adopt); err != nil {
		t.Fatal(err)
	}
	ref := adopt.Metadata.OwnerReferences
	if adopt.Metadata.UID != "p-orphan" || len(ref) != 1 || ref[0].UID != "rs-uid" || ref[0].Kind != "ReplicaSet" ||
		ref[0].APIVersion != "apps/v1" || !*ref[0].Controller || !*ref[0].BlockOwnerDeletion {
		t.Fatalf("adoption patch %s", patches["orphan"])
	}
	if want := `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"rs-uid"}],"uid":"p-strayed"}}`; patches["strayed"] != want {
		t.Fatalf("release patch %s, want %s", patches["strayed"], want)
	}

	// A controller being deleted neither adopts nor releases.
	owner.DeletionTimestamp = &now
	patches = map[string]string{}
	got, _ = Objects(context.Background(), c, pods)
	if len(got) != 1 || len(patches) != 0 {
		t.Fatalf("while deleted: claimed %d, patches %v", len(got), patches)
	}

	// A failed recheck stops adoption.
	owner.DeletionTimestamp = nil
	c.CanAdopt = RecheckDeletion("rs-uid", func(context.Context) (metav1.Object, error) {
		return &metav1.ObjectMeta{Name: "rs", UID: "new-uid"}, nil
	})
	patches = map[string]string{}
	got, err = Objects(context.Background(), c, pods)
	if err == nil || len(got) != 1 || patches["orphan"] != "" {
		t.Fatalf("replaced controller: err %v claimed %d patches %v", err, len(got), patches)
	}
	c.CanAdopt = func(context.Context) error { return errors.New("no") }
	if _, err := Objects(context.Background(), c, pods); err == nil {
		t.Fatal("no error from a refused adoption")
	}
}
