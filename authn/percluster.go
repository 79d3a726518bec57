package authn

import (
	"context"
	"net/http"

	"github.com/pgkube/pgkube/clusters"
)

// PerCluster authenticates tokens with the authenticators of the logical
// cluster a request addresses: each tenant has its own service-account
// issuer, and the root cluster's static and OIDC tokens mean nothing in a
// tenant.
type PerCluster struct {
	For func(ctx context.Context, cluster string) ([]TokenAuthenticator, error)
}

// AuthenticateToken implements TokenAuthenticator.
func (p PerCluster) AuthenticateToken(ctx context.Context, token string) (*User, []string, bool, error) {
	list, err := p.For(ctx, clusters.From(ctx))
	if err != nil {
		return nil, nil, false, err
	}
	var firstErr error
	for _, t := range list {
		u, auds, ok, err := t.AuthenticateToken(ctx, token)
		if ok {
			return u, auds, true, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, false, firstErr
}

// FromRoot lets the root cluster's system identities act in every logical
// cluster: pgkube's controller manager and scheduler run once for all
// tenants, with root credentials, and write to /clusters/NAME/. Only users
// in one of Groups qualify; a tenant's credentials never reach beyond
// their own cluster, and the root's ordinary users do not reach tenants.
type FromRoot struct {
	Authenticator Authenticator
	Groups        []string
}

// Authenticate implements Authenticator.
func (f FromRoot) Authenticate(r *http.Request) (*User, bool, error) {
	ctx := r.Context()
	if clusters.From(ctx) == clusters.Root {
		return nil, false, nil
	}
	u, ok, err := f.Authenticator.Authenticate(r.WithContext(clusters.With(ctx, clusters.Root)))
	if err != nil || !ok {
		return nil, false, nil // not root's either: the cluster's own verdict stands
	}
	for _, g := range f.Groups {
		if u.InGroup(g) {
			u = u.clone()
			u.FromRoot = true
			return u, true, nil
		}
	}
	return nil, false, nil
}
