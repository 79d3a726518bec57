// Package clusters names the logical cluster a request or a piece of work
// belongs to: one PostgreSQL database serves many isolated clusters, and
// every layer (authentication, authorization, storage, watch) keys its
// state by this name.
package clusters

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Root is the cluster that unprefixed URLs address, and the one tenants
// are managed from.
const Root = "root"

// URLPrefix starts the URLs of a named logical cluster:
// /clusters/NAME/api/v1/... is /api/v1/... of cluster NAME.
const URLPrefix = "/clusters/"

type key struct{}

// With returns ctx addressing cluster name.
func With(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, key{}, name)
}

// From returns the cluster ctx addresses: Root unless set.
func From(ctx context.Context) string {
	if c, ok := ctx.Value(key{}).(string); ok {
		return c
	}
	return Root
}

// IsSet reports whether ctx names a cluster explicitly.
func IsSet(ctx context.Context) bool {
	_, ok := ctx.Value(key{}).(string)
	return ok
}

// ValidName reports whether name can be a logical cluster's name: a DNS
// label, so it fits in URLs, certificate names and token issuers.
func ValidName(name string) bool { return len(validation.IsDNS1123Label(name)) == 0 }
