// Package admission runs the checks and mutations every write passes after
// decoding and before storage: a chain of plugins in kube-apiserver's order.
package admission

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
)

// Operation is the kind of write being admitted.
type Operation string

const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Attributes describe one write.
type Attributes struct {
	Cluster                  string
	Operation                Operation
	Group, Version, Resource string
	Subresource              string
	Namespace, Name          string
	Object, OldObject        runtime.Object
	DryRun                   bool
}

// Plugin is one admission step. Mutating plugins change a.Object; validating
// ones only return an error, which the REST layer sends as the Status.
type Plugin interface {
	Admit(ctx context.Context, a *Attributes) error
}

// Chain runs plugins in order, stopping at the first error.
type Chain []Plugin

// Admit runs the chain.
func (c Chain) Admit(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if err := p.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}
