package authn

import (
	"errors"
	"net/http"
	"strings"
)

// ErrInvalidBearerToken is returned when a request presents a bearer token
// that no TokenAuthenticator accepts.
var ErrInvalidBearerToken = errors.New("invalid bearer token")

// Bearer authenticates requests carrying "Authorization: Bearer <token>" by
// asking each TokenAuthenticator in turn.
type Bearer struct {
	Tokens []TokenAuthenticator
}

// Authenticate implements Authenticator. A request that presents a token no
// authenticator accepts gets an error, never ok=false: falling through to
// anonymous would turn a revoked or mistyped credential into a weaker
// identity instead of a 401.
//
// As in kube-apiserver, a header with another scheme, or "Bearer" with an
// empty token, is not a bearer credential at all (ok=false). Unlike it, a
// header with more than one token after the scheme, or several
// Authorization headers, is rejected instead of silently using the first.
func (b Bearer) Authenticate(r *http.Request) (*User, bool, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return nil, false, nil
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return nil, false, nil
	}
	if token == "" || token[0] == ' ' {
		return nil, false, nil
	}
	if len(values) > 1 {
		return nil, false, errors.New("more than one Authorization header")
	}
	if strings.ContainsAny(token, " \t") {
		return nil, false, errors.New("malformed bearer token: more than one value after the scheme")
	}

	var errs []error
	for _, ta := range b.Tokens {
		u, _, ok, err := ta.AuthenticateToken(r.Context(), token)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok && u != nil {
			// Nothing later in the chain (audit, proxying) needs the
			// credential; dropping it keeps it from being forwarded or
			// logged.
			r.Header.Del("Authorization")
			return u, true, nil
		}
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return nil, false, ErrInvalidBearerToken
}
