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

// Chain is kube-apiserver's two admission phases: mutating plugins run
// before the object is validated, validating ones after, so what they judge
// is what will be stored. Each phase runs its plugins in order and stops at
// the first error.
type Chain struct {
	Mutating   []Plugin
	Validating []Plugin
}

// Mutate runs the mutating phase.
func (c *Chain) Mutate(ctx context.Context, a *Attributes) error { return run(ctx, c.Mutating, a) }

// Validate runs the validating phase.
func (c *Chain) Validate(ctx context.Context, a *Attributes) error { return run(ctx, c.Validating, a) }

func run(ctx context.Context, plugins []Plugin, a *Attributes) error {
	for _, p := range plugins {
		if err := p.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}
