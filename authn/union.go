package authn

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Union authenticates a request with the first of its Authenticators that
// recognises the request's credentials.
type Union struct {
	Authenticators []Authenticator
	// Anonymous lets a request with no credentials at all through as
	// system:anonymous. A request whose credentials are rejected never is.
	Anonymous bool
}

// Authenticate implements Authenticator. An authenticator's error does not
// stop the later ones, as in kube-apiserver: a request with a good client
// certificate and a stale token is still the certificate's user. If none
// succeeds, any error wins over anonymous access.
func (u Union) Authenticate(r *http.Request) (*User, bool, error) {
	var errs []error
	for i, a := range u.Authenticators {
		user, ok, err := a.Authenticate(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if user == nil || user.Name == "" {
			errs = append(errs, fmt.Errorf("authenticator %d (%T) accepted the request without naming a user", i, a))
			continue
		}
		return withAuthenticatedGroup(user), true, nil
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	if u.Anonymous {
		return &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}, true, nil
	}
	return nil, false, nil
}

// withAuthenticatedGroup returns a copy of u in system:authenticated,
// unless u is anonymous (an authenticator such as a static token file may
// map a credential to system:anonymous on purpose).
func withAuthenticatedGroup(u *User) *User {
	c := u.clone()
	if c.Name == Anonymous || slices.Contains(c.Groups, AllUnauthenticated) || slices.Contains(c.Groups, AllAuthenticated) {
		return c
	}
	c.Groups = append(c.Groups, AllAuthenticated)
	return c
}
