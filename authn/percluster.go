package authn

import (
	"context"

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
