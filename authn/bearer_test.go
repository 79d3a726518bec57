package authn

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
)

// tokenFunc adapts a function to TokenAuthenticator.
type tokenFunc func(ctx context.Context, token string) (*User, []string, bool, error)

func (f tokenFunc) AuthenticateToken(ctx context.Context, token string) (*User, []string, bool, error) {
	return f(ctx, token)
}

func TestBearer(t *testing.T) {
	static := NewStaticTokens(map[string]User{"good": {Name: "alice"}})
	failing := tokenFunc(func(context.Context, string) (*User, []string, bool, error) {
		return nil, nil, false, errors.New("backend down")
	})
	for _, tc := range []struct {
		name    string
		headers []string
		tokens  []TokenAuthenticator
		ok      bool
		err     bool
	}{
		{name: "no header", tokens: []TokenAuthenticator{static}},
		{name: "other scheme", headers: []string{"Basic Z29vZA=="}, tokens: []TokenAuthenticator{static}},
		{name: "scheme only", headers: []string{"Bearer"}, tokens: []TokenAuthenticator{static}},
		{name: "empty token", headers: []string{"Bearer "}, tokens: []TokenAuthenticator{static}},
		{name: "space before token", headers: []string{"Bearer  good"}, tokens: []TokenAuthenticator{static}},
		{name: "valid", headers: []string{"Bearer good"}, tokens: []TokenAuthenticator{static}, ok: true},
		{name: "scheme case", headers: []string{"bEaReR good"}, tokens: []TokenAuthenticator{static}, ok: true},
		{name: "surrounding space", headers: []string{"  Bearer good  "}, tokens: []TokenAuthenticator{static}, ok: true},
		{name: "unknown token", headers: []string{"Bearer bad"}, tokens: []TokenAuthenticator{static}, err: true},
		{name: "no authenticators", headers: []string{"Bearer good"}, err: true},
		{name: "two tokens", headers: []string{"Bearer good extra"}, tokens: []TokenAuthenticator{static}, err: true},
		{name: "two headers", headers: []string{"Bearer good", "Bearer good"}, tokens: []TokenAuthenticator{static}, err: true},
		{name: "error then success", headers: []string{"Bearer good"}, tokens: []TokenAuthenticator{failing, static}, ok: true},
		{name: "error only", headers: []string{"Bearer good"}, tokens: []TokenAuthenticator{failing}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tc.headers {
				r.Header.Add("Authorization", h)
			}
			u, ok, err := Bearer{Tokens: tc.tokens}.Authenticate(r)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("ok=%v err=%v, want ok=%v err=%v", ok, err, tc.ok, tc.err)
			}
			if ok && (u == nil || u.Name != "alice") {
				t.Fatalf("user = %+v", u)
			}
			if ok && r.Header.Get("Authorization") != "" {
				t.Fatal("accepted credential left in the request")
			}
		})
	}
}

func TestBearerUnknownTokenIsErrInvalidBearerToken(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer nope")
	_, _, err := Bearer{Tokens: []TokenAuthenticator{NewStaticTokens(nil)}}.Authenticate(r)
	if !errors.Is(err, ErrInvalidBearerToken) {
		t.Fatalf("err = %v, want ErrInvalidBearerToken", err)
	}
}
