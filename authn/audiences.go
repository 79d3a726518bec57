package authn

import (
	"context"
	"slices"
)

type audiencesKey struct{}

// WithAudiences returns ctx carrying the audiences the caller wants a token
// to be valid for: the API audiences for ordinary requests, spec.audiences
// for a TokenReview.
func WithAudiences(ctx context.Context, auds []string) context.Context {
	return context.WithValue(ctx, audiencesKey{}, slices.Clone(auds))
}

// AudiencesFrom returns the audiences ctx carries, or nil. No audiences
// means no audience-bound token is acceptable: failing closed keeps a caller
// that forgot WithAudiences from accepting tokens minted for someone else.
func AudiencesFrom(ctx context.Context) []string {
	auds, _ := ctx.Value(audiencesKey{}).([]string)
	return auds
}

// intersectAudiences returns the wanted audiences that have also been
// granted, in the order they were wanted.
func intersectAudiences(granted, wanted []string) []string {
	var out []string
	for _, w := range wanted {
		if slices.Contains(granted, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// AudienceAgnostic adapts a TokenAuthenticator whose tokens say nothing
// about audiences (static tokens, OIDC ID tokens for the API server's client
// ID) to the audience model: such tokens are good for the API server only,
// so they are accepted only when the caller asks for one of the Implicit
// (API) audiences. Without it, a TokenReview asking "is this token valid for
// my-webhook?" would be told yes for any static token.
type AudienceAgnostic struct {
	Implicit []string
	Token    TokenAuthenticator
}

// AuthenticateToken implements TokenAuthenticator.
func (a AudienceAgnostic) AuthenticateToken(ctx context.Context, token string) (*User, []string, bool, error) {
	auds := intersectAudiences(a.Implicit, AudiencesFrom(ctx))
	if len(auds) == 0 {
		return nil, nil, false, nil
	}
	u, _, ok, err := a.Token.AuthenticateToken(ctx, token)
	if err != nil || !ok {
		return nil, nil, false, err
	}
	return u, auds, true, nil
}
