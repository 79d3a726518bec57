package authn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

type authFunc func(r *http.Request) (*User, bool, error)

func (f authFunc) Authenticate(r *http.Request) (*User, bool, error) { return f(r) }

func returning(u *User, ok bool, err error) Authenticator {
	return authFunc(func(*http.Request) (*User, bool, error) { return u, ok, err })
}

func TestUnion(t *testing.T) {
	alice := &User{Name: "alice", Groups: []string{"dev"}}
	bob := &User{Name: "bob"}
	none := returning(nil, false, nil)
	bad := returning(nil, false, errors.New("bad token"))
	for _, tc := range []struct {
		name      string
		auths     []Authenticator
		anonymous bool
		want      string // user name, "" for not ok
		err       bool
	}{
		{name: "first ok wins", auths: []Authenticator{none, returning(alice, true, nil), returning(bob, true, nil)}, want: "alice"},
		{name: "no credentials, anonymous", auths: []Authenticator{none, none}, anonymous: true, want: Anonymous},
		{name: "no credentials, no anonymous", auths: []Authenticator{none}},
		{name: "rejected credential never anonymous", auths: []Authenticator{bad, none}, anonymous: true, err: true},
		{name: "later success beats earlier error", auths: []Authenticator{bad, returning(bob, true, nil)}, anonymous: true, want: "bob"},
		{name: "ok without user", auths: []Authenticator{returning(nil, true, nil)}, anonymous: true, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := Union{Authenticators: tc.auths, Anonymous: tc.anonymous}.Authenticate(httptest.NewRequest("GET", "/", nil))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.want == "" {
				if ok || u != nil {
					t.Fatalf("got %+v ok=%v, want not ok", u, ok)
				}
				return
			}
			if !ok || u.Name != tc.want {
				t.Fatalf("got %+v ok=%v, want %s", u, ok, tc.want)
			}
		})
	}
}

func TestUnionGroups(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	anon, _, _ := Union{Anonymous: true}.Authenticate(r)
	if !slices.Equal(anon.Groups, []string{AllUnauthenticated}) {
		t.Fatalf("anonymous groups = %q", anon.Groups)
	}

	static := NewStaticTokens(map[string]User{
		"t1": {Name: "alice", Groups: []string{"dev"}},
		"t2": {Name: "carol", Groups: []string{AllAuthenticated, "dev"}},
		"t3": {Name: Anonymous},
	})
	u := Union{Authenticators: []Authenticator{Bearer{Tokens: []TokenAuthenticator{static}}}}
	auth := func(tok string) *User {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		user, ok, err := u.Authenticate(r)
		if !ok || err != nil {
			t.Fatalf("%s: ok=%v err=%v", tok, ok, err)
		}
		return user
	}
	// Twice: adding the group must not accumulate in the stored user.
	for range 2 {
		if g := auth("t1").Groups; !slices.Equal(g, []string{"dev", AllAuthenticated}) {
			t.Fatalf("alice groups = %q", g)
		}
	}
	if g := auth("t2").Groups; !slices.Equal(g, []string{AllAuthenticated, "dev"}) {
		t.Fatalf("carol groups = %q, want system:authenticated once", g)
	}
	if g := auth("t3").Groups; slices.Contains(g, AllAuthenticated) {
		t.Fatalf("a token mapped to system:anonymous got %q", g)
	}
}
