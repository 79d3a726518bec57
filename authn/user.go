// Package authn decides who a request comes from: client certificates,
// bearer tokens (static, service-account JWTs, OIDC) or nobody (anonymous).
// Its answer, a User, travels in the request's context to authz, admission
// and audit.
package authn

import "context"

// Well-known user and group names, as kube-apiserver uses them.
const (
	Anonymous           = "system:anonymous"
	AllUnauthenticated  = "system:unauthenticated"
	AllAuthenticated    = "system:authenticated"
	SystemPrivileged    = "system:masters"
	ServiceAccountGroup = "system:serviceaccounts"
	// ServiceAccountPrefix starts a service account's user name:
	// system:serviceaccount:NAMESPACE:NAME.
	ServiceAccountPrefix = "system:serviceaccount:"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
	// FromRoot: the root cluster's credentials, acting in another cluster
	// (see FromRoot). No request header can set it, so impersonation
	// never does.
	FromRoot bool
}

// InGroup reports whether u belongs to group g.
func (u *User) InGroup(g string) bool {
	for _, x := range u.Groups {
		if x == g {
			return true
		}
	}
	return false
}

type userKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user ctx carries, or nil.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// clone returns a deep copy of u, so that a caller adding groups cannot
// change a user an authenticator keeps (static tokens hand out the same
// entry for every request).
func (u *User) clone() *User {
	c := &User{Name: u.Name, UID: u.UID, Groups: append([]string(nil), u.Groups...), FromRoot: u.FromRoot}
	if u.Extra != nil {
		c.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			c.Extra[k] = append([]string(nil), v...)
		}
	}
	return c
}
