package authn

import (
	"context"
	"net/http"
)

// Authenticator identifies the sender of a request from one kind of
// credential. It returns ok=false with a nil error when the request carries
// no credential of its kind, so that a Union can ask the next one; an error
// means a credential was presented and is not acceptable, which must end in
// 401 rather than in a fallback to anonymous.
type Authenticator interface {
	Authenticate(r *http.Request) (u *User, ok bool, err error)
}

// TokenAuthenticator validates one kind of bearer token. It returns
// ok=false with a nil error for a token it does not recognise as its own, so
// that the next one can try, and an error for a token that is its own but
// invalid. auds lists the audiences the token was accepted for: the
// intersection of the token's audiences with AudiencesFrom(ctx). An
// authenticator whose tokens carry no audiences returns nil; see
// AudienceAgnostic.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (u *User, auds []string, ok bool, err error)
}
