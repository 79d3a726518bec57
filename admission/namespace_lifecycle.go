package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NamespaceGetter reads a namespace from storage.
type NamespaceGetter interface {
	Get(ctx context.Context, cluster string, key storage.Key) (storage.Object, error)
}

// NamespaceLifecycle refuses creates in a namespace that does not exist or is
// terminating, and the deletion of the namespaces the system needs.
type NamespaceLifecycle struct {
	Store NamespaceGetter
}

// protectedNamespaces cannot be deleted, as upstream.
var protectedNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

func (p NamespaceLifecycle) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource == "namespaces" && a.Group == "" {
		if a.Operation == Delete && a.Subresource == "" && protectedNamespaces[a.Name] {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, a.Name,
				fmt.Errorf("this namespace may not be deleted"))
		}
		return nil
	}
	if a.Operation != Create || a.Namespace == "" || a.Subresource != "" {
		return nil
	}
	obj, err := p.Store.Get(ctx, a.Cluster, storage.Key{Resource: "/namespaces", Name: a.Namespace})
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, a.Namespace)
	}
	if err != nil {
		return err
	}
	var ns corev1.Namespace
	if err := json.Unmarshal(obj.Data, &ns); err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		e := apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, a.Name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metaCause(a.Namespace))
		return e
	}
	return nil
}

func metaCause(ns string) metav1.StatusCause {
	return metav1.StatusCause{Type: corev1.NamespaceTerminatingCause, Message: "namespace " + ns + " is being terminated", Field: "metadata.namespace"}
}
