package admission

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Getter reads one object's current version from storage.
type Getter interface {
	Get(ctx context.Context, cluster string, key storage.Key) (storage.Object, error)
}

// Lister reads the current objects of one resource.
type Lister interface {
	List(ctx context.Context, cluster string, opts storage.ListOptions) (storage.ListResult, error)
}

// Reader reads objects one by one and by resource: a *storage.Store or a
// ReadCache in front of one.
type Reader interface {
	Getter
	Lister
}

// Storage keys of the objects the plugins read.
const (
	podsKey            = "/pods"
	serviceAccountsKey = "/serviceaccounts"
	limitRangesKey     = "/limitranges"
	resourceQuotasKey  = "/resourcequotas"
	priorityClassesKey = "scheduling.k8s.io/priorityclasses"
)

// forbidden builds the Forbidden status kube-apiserver's admission returns:
// named after the request, or after the object when the request has no
// name yet.
func forbidden(a *Attributes, err error) error {
	if apierrors.IsForbidden(err) {
		return err
	}
	name := a.Name
	if name == "" {
		name = "Unknown"
		if m, merr := meta.Accessor(a.Object); merr == nil {
			if m.GetName() != "" {
				name = m.GetName()
			} else if m.GetGenerateName() != "" {
				name = m.GetGenerateName()
			}
		}
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, name, err)
}

// coreResource tells whether the request is for resource in the core group.
func coreResource(a *Attributes, resource string) bool {
	return a.Group == "" && a.Resource == resource
}

// listAs reads and decodes every object of resource in namespace.
func listAs[T any](ctx context.Context, l Lister, cluster, resource, namespace string) ([]T, error) {
	res, err := l.List(ctx, cluster, storage.ListOptions{Resource: resource, Namespace: namespace})
	if err != nil {
		return nil, err
	}
	out := make([]T, len(res.Items))
	for i, o := range res.Items {
		if err := json.Unmarshal(o.Data, &out[i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", o.Key, err)
		}
	}
	return out, nil
}

// Validator is the validating half of a plugin that also mutates
// (ServiceAccount, Priority, LimitRanger): its Admit goes in
// Chain.Mutating, its Validate in Chain.Validating.
type Validator interface {
	Validate(ctx context.Context, a *Attributes) error
}

// ValidatingHalf makes v's Validate a Plugin for Chain.Validating.
func ValidatingHalf(v Validator) Plugin { return validatingHalf{v} }

type validatingHalf struct{ v Validator }

func (h validatingHalf) Admit(ctx context.Context, a *Attributes) error { return h.v.Validate(ctx, a) }
