// Package claim decides which objects a controller owns through
// ownerReferences: it adopts orphans its selector matches and releases the
// objects it controls that its selector no longer matches, as upstream's
// controller-ref managers do.
package claim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Controller is the owning side of a claim.
type Controller struct {
	Object metav1.Object
	Kind   schema.GroupVersionKind
	// Match reports whether the controller's selector selects the object.
	Match func(metav1.Object) bool
	// CanAdopt is called at most once, before the first adoption; it
	// should re-read the controller uncached and fail when it is being
	// deleted or was replaced (see RecheckDeletion). Nil allows adoption.
	CanAdopt func(ctx context.Context) error
	// Patch applies a strategic merge patch to the dependent.
	Patch func(ctx context.Context, obj metav1.Object, patch []byte) error
}

// Objects returns those of objs the controller owns after adopting and
// releasing. Errors of individual adoptions or releases are joined into
// the returned error; the returned list is still the claimed set.
func Objects[T metav1.Object](ctx context.Context, c *Controller, objs []T) ([]T, error) {
	var claimed []T
	var errs []error
	canAdopt := onceErr(c.CanAdopt)
	for _, obj := range objs {
		ok, err := one(ctx, c, obj, canAdopt)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			claimed = append(claimed, obj)
		}
	}
	return claimed, joinErrs(errs)
}

func one(ctx context.Context, c *Controller, obj metav1.Object, canAdopt func(context.Context) error) (bool, error) {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref != nil {
		if ref.UID != c.Object.GetUID() {
			return false, nil // someone else's
		}
		if c.Match(obj) {
			return true, nil
		}
		// Ours but no longer selected: let it go, unless we are going away
		// ourselves (the garbage collector decides then).
		if c.Object.GetDeletionTimestamp() != nil {
			return false, nil
		}
		err := c.Patch(ctx, obj, ReleasePatch(obj.GetUID(), c.Object.GetUID()))
		if apierrors.IsNotFound(err) {
			err = nil
		}
		return false, err
	}
	// An orphan.
	if c.Object.GetDeletionTimestamp() != nil || !c.Match(obj) || obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if c.Object.GetNamespace() != "" && c.Object.GetNamespace() != obj.GetNamespace() {
		return false, nil
	}
	if err := canAdopt(ctx); err != nil {
		return false, fmt.Errorf("cannot adopt %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	err := c.Patch(ctx, obj, AdoptPatch(c.Object, c.Kind, obj.GetUID()))
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// AdoptPatch is the strategic merge patch that makes owner the controller
// of the object with uid dependent (the uid makes it a precondition).
func AdoptPatch(owner metav1.Object, kind schema.GroupVersionKind, dependent types.UID) []byte {
	yes := true
	p := map[string]any{"metadata": map[string]any{
		"uid": dependent,
		"ownerReferences": []metav1.OwnerReference{{
			APIVersion: kind.GroupVersion().String(), Kind: kind.Kind,
			Name: owner.GetName(), UID: owner.GetUID(),
			Controller: &yes, BlockOwnerDeletion: &yes,
		}},
	}}
	b, _ := json.Marshal(p)
	return b
}

// ReleasePatch is the strategic merge patch that removes owner's reference
// from the object with uid dependent.
func ReleasePatch(dependent, owner types.UID) []byte {
	p := map[string]any{"metadata": map[string]any{
		"uid":             dependent,
		"ownerReferences": []map[string]string{{"$patch": "delete", "uid": string(owner)}},
	}}
	b, _ := json.Marshal(p)
	return b
}

// RecheckDeletion builds a CanAdopt from an uncached read of the
// controller: adoption is refused when it is gone, replaced (another uid)
// or being deleted.
func RecheckDeletion(uid types.UID, get func(ctx context.Context) (metav1.Object, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh, err := get(ctx)
		if err != nil {
			return err
		}
		if fresh.GetUID() != uid {
			return fmt.Errorf("%s/%s was replaced (uid %s, expected %s)", fresh.GetNamespace(), fresh.GetName(), fresh.GetUID(), uid)
		}
		if fresh.GetDeletionTimestamp() != nil {
			return fmt.Errorf("%s/%s is being deleted", fresh.GetNamespace(), fresh.GetName())
		}
		return nil
	}
}

func onceErr(f func(context.Context) error) func(context.Context) error {
	if f == nil {
		return func(context.Context) error { return nil }
	}
	var once sync.Once
	var err error
	return func(ctx context.Context) error {
		once.Do(func() { err = f(ctx) })
		return err
	}
}

func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}
