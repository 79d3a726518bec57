// Package authz decides whether a user may do what a request asks: RBAC
// over Roles, ClusterRoles and their bindings, the default policy pgkube
// bootstraps, escalation prevention and impersonation checks.
package authz

import (
	"context"

	"github.com/pgkube/pgkube/authn"
)

// Attributes describe one request to authorize, as kube-apiserver's
// authorizer.Attributes do.
type Attributes struct {
	// Cluster names the logical cluster the request addresses ("root"
	// today); every policy lookup is scoped by it because tenant clusters
	// will share one server.
	Cluster string

	User *authn.User
	Verb string
	// ResourceRequest is false for non-resource URLs (/healthz, /version,
	// /apis discovery); Path is then what is authorized.
	ResourceRequest bool
	Path            string

	Namespace   string
	APIGroup    string
	APIVersion  string
	Resource    string
	Subresource string
	Name        string
}

// Decision is an authorizer's answer.
type Decision int

const (
	// NoOpinion: this authorizer neither allows nor denies; the next one
	// decides, and if none does the request is denied.
	NoOpinion Decision = iota
	Allow
	Deny
)

// Authorizer answers one question: may a.User do a?
type Authorizer interface {
	// Authorize returns the decision and, for audit and error messages, a
	// human-readable reason (may be empty).
	Authorize(ctx context.Context, a Attributes) (Decision, string, error)
}
