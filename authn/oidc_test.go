package authn

import (
	"context"
	"crypto/ecdsa"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testClientID = "pgkube"

type oidcFixture struct {
	ti   *testIssuer
	key  *ecdsa.PrivateKey
	auth *OIDC
}

func newOIDCFixture(t testing.TB, opts OIDCOptions) *oidcFixture {
	t.Helper()
	ti := newTestIssuer(t)
	key := testECKey(t)
	ti.setKey("k1", key)
	opts.IssuerURL = ti.url
	if opts.ClientID == "" {
		opts.ClientID = testClientID
	}
	if opts.HTTPClient == nil && opts.CAFile == "" {
		opts.HTTPClient = ti.srv.Client()
	}
	a, err := NewOIDC(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &oidcFixture{ti: ti, key: key, auth: a}
}

func (f *oidcFixture) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": f.ti.url, "sub": "user-123", "aud": testClientID,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": "jane@example.com", "email_verified": true,
		"groups": []string{"dev", "ops"},
	}
}

func (f *oidcFixture) token(t testing.TB, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := f.claims()
	if edit != nil {
		edit(c)
	}
	return signToken(t, f.key, "k1", c)
}

func TestOIDCValid(t *testing.T) {
	f := newOIDCFixture(t, OIDCOptions{GroupsClaim: "groups", GroupsPrefix: "oidc:"})
	if f.ti.discoveryHits.Load() != 0 {
		t.Fatal("NewOIDC contacted the issuer")
	}
	u, auds, ok, err := f.auth.AuthenticateToken(context.Background(), f.token(t, nil))
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if auds != nil {
		t.Fatalf("audiences = %q, want nil (audience-agnostic)", auds)
	}
	if want := f.ti.url + "#user-123"; u.Name != want {
		t.Fatalf("name = %q, want %q (default prefix)", u.Name, want)
	}
	if !slices.Equal(u.Groups, []string{"oidc:dev", "oidc:ops"}) {
		t.Fatalf("groups = %q", u.Groups)
	}

	// aud as an array holding the client ID among others, groups as a
	// single string.
	tok := f.token(t, func(c jwt.MapClaims) {
		c["aud"] = []string{"other", testClientID}
		c["groups"] = "admins"
	})
	if u, _, ok, err := f.auth.AuthenticateToken(context.Background(), tok); !ok || err != nil || !slices.Equal(u.Groups, []string{"oidc:admins"}) {
		t.Fatalf("string groups: %+v ok=%v err=%v", u, ok, err)
	}
	if n := f.ti.discoveryHits.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times, want once", n)
	}
	if n := f.ti.jwksHits.Load(); n != 1 {
		t.Fatalf("keys fetched %d times, want once", n)
	}
}

func TestOIDCUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts OIDCOptions
		edit func(jwt.MapClaims)
		want string // "" for an error
	}{
		{"no prefix", OIDCOptions{UsernamePrefix: "-"}, nil, "user-123"},
		{"custom prefix", OIDCOptions{UsernamePrefix: "corp:"}, nil, "corp:user-123"},
		{"email unprefixed", OIDCOptions{UsernameClaim: "email"}, nil, "jane@example.com"},
		{"email unverified", OIDCOptions{UsernameClaim: "email"}, func(c jwt.MapClaims) { c["email_verified"] = false }, ""},
		{"email_verified not a bool", OIDCOptions{UsernameClaim: "email"}, func(c jwt.MapClaims) { c["email_verified"] = "true" }, ""},
		{"email_verified absent", OIDCOptions{UsernameClaim: "email"}, func(c jwt.MapClaims) { delete(c, "email_verified") }, "jane@example.com"},
		{"claim missing", OIDCOptions{UsernameClaim: "preferred_username"}, nil, ""},
		{"claim not a string", OIDCOptions{UsernamePrefix: "-"}, func(c jwt.MapClaims) { c["sub"] = 42 }, ""},
		{"bad groups", OIDCOptions{GroupsClaim: "groups"}, func(c jwt.MapClaims) { c["groups"] = []any{"a", 1} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOIDCFixture(t, tc.opts)
			u, _, ok, err := f.auth.AuthenticateToken(context.Background(), f.token(t, tc.edit))
			if tc.want == "" {
				if ok || err == nil {
					t.Fatalf("got %+v ok=%v err=%v, want error", u, ok, err)
				}
				return
			}
			if !ok || err != nil || u.Name != tc.want {
				t.Fatalf("got %+v ok=%v err=%v, want %q", u, ok, err, tc.want)
			}
		})
	}
}

func TestOIDCRejects(t *testing.T) {
	f := newOIDCFixture(t, OIDCOptions{})
	now := time.Now()
	good := f.token(t, nil)
	parts := strings.Split(good, ".")
	otherSig := strings.Split(f.token(t, func(c jwt.MapClaims) { c["sub"] = "someone-else" }), ".")[2]
	for name, tok := range map[string]string{
		"wrong audience":     f.token(t, func(c jwt.MapClaims) { c["aud"] = "someone-else" }),
		"no audience":        f.token(t, func(c jwt.MapClaims) { delete(c, "aud") }),
		"expired":            f.token(t, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() }),
		"no expiry":          f.token(t, func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid":      f.token(t, func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() }),
		"unknown key":        signToken(t, testECKey(t), "k2", f.claims()),
		"known kid, bad key": signToken(t, testECKey(t), "k1", f.claims()),
		"bad signature":      parts[0] + "." + parts[1] + "." + otherSig,
		"alg none":           mustNone(t, f.claims()),
	} {
		if _, _, ok, err := f.auth.AuthenticateToken(context.Background(), tok); ok || err == nil {
			t.Errorf("%s: ok=%v err=%v, want error", name, ok, err)
		}
	}

	// Another issuer's token is left for the next authenticator.
	other := f.token(t, func(c jwt.MapClaims) { c["iss"] = "https://elsewhere.example" })
	if _, _, ok, err := f.auth.AuthenticateToken(context.Background(), other); ok || err != nil {
		t.Fatalf("wrong issuer: ok=%v err=%v, want not ours", ok, err)
	}
}

func mustNone(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCKeyRotationAndRateLimit(t *testing.T) {
	f := newOIDCFixture(t, OIDCOptions{})
	clock := time.Now()
	var mu sync.Mutex
	f.auth.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	ctx := context.Background()

	if _, _, ok, err := f.auth.AuthenticateToken(ctx, f.token(t, nil)); !ok || err != nil {
		t.Fatalf("first token: ok=%v err=%v", ok, err)
	}

	// The issuer rotates to a new key right after we fetched: within the
	// rate limit we do not ask again, however many unknown kids arrive.
	k2 := testRSAKey(t)
	f.ti.setKey("k2", k2)
	rotated := signToken(t, k2, "k2", f.claims())
	for range 5 {
		if _, _, ok, err := f.auth.AuthenticateToken(ctx, rotated); ok || err == nil {
			t.Fatalf("within rate limit: ok=%v err=%v", ok, err)
		}
	}
	if n := f.ti.jwksHits.Load(); n != 1 {
		t.Fatalf("keys fetched %d times within the rate limit, want 1", n)
	}

	advance(oidcRefetchInterval + time.Second)
	if _, _, ok, err := f.auth.AuthenticateToken(ctx, rotated); !ok || err != nil {
		t.Fatalf("after the interval: ok=%v err=%v", ok, err)
	}
	if n := f.ti.jwksHits.Load(); n != 2 {
		t.Fatalf("keys fetched %d times, want 2", n)
	}
	// Known keys need no fetch.
	if _, _, ok, err := f.auth.AuthenticateToken(ctx, f.token(t, nil)); !ok || err != nil {
		t.Fatalf("old key: ok=%v err=%v", ok, err)
	}
	if n := f.ti.jwksHits.Load(); n != 2 {
		t.Fatalf("keys fetched %d times, want still 2", n)
	}
	if n := f.ti.discoveryHits.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times, want once", n)
	}

	// Keys past their maximum age are refetched, so a key the issuer
	// withdrew stops working.
	f.ti.mu.Lock()
	delete(f.ti.keys, "k1")
	f.ti.mu.Unlock()
	advance(oidcKeysMaxAge + time.Second)
	if _, _, ok, err := f.auth.AuthenticateToken(ctx, f.token(t, nil)); ok || err == nil {
		t.Fatalf("withdrawn key: ok=%v err=%v, want error", ok, err)
	}
}

func TestOIDCDiscoveryFailures(t *testing.T) {
	f := newOIDCFixture(t, OIDCOptions{})
	clock := time.Now()
	f.auth.now = func() time.Time { return clock }
	f.ti.mu.Lock()
	f.ti.failDiscovery = true
	f.ti.mu.Unlock()
	tok := f.token(t, nil)
	for range 3 {
		if _, _, ok, err := f.auth.AuthenticateToken(context.Background(), tok); ok || err == nil || !strings.Contains(err.Error(), "discovery") {
			t.Fatalf("issuer down: ok=%v err=%v", ok, err)
		}
	}
	if n := f.ti.discoveryHits.Load(); n != 1 {
		t.Fatalf("discovery tried %d times within the rate limit, want 1", n)
	}

	// Recovery once the interval has passed.
	f.ti.mu.Lock()
	f.ti.failDiscovery = false
	f.ti.mu.Unlock()
	clock = clock.Add(oidcRefetchInterval + time.Second)
	if _, _, ok, err := f.auth.AuthenticateToken(context.Background(), tok); !ok || err != nil {
		t.Fatalf("issuer back: ok=%v err=%v", ok, err)
	}

	// A discovery document naming another issuer is refused.
	g := newOIDCFixture(t, OIDCOptions{})
	g.ti.mu.Lock()
	g.ti.docIssuer = "https://evil.example"
	g.ti.mu.Unlock()
	if _, _, ok, err := g.auth.AuthenticateToken(context.Background(), g.token(t, nil)); ok || err == nil {
		t.Fatalf("mismatched discovery issuer: ok=%v err=%v", ok, err)
	}
}

func TestOIDCCAFile(t *testing.T) {
	ti := newTestIssuer(t)
	key := testECKey(t)
	ti.setKey("k1", key)
	a, err := NewOIDC(OIDCOptions{IssuerURL: ti.url, ClientID: testClientID, CAFile: writeCAFile(t, ti.srv)})
	if err != nil {
		t.Fatal(err)
	}
	f := &oidcFixture{ti: ti, key: key, auth: a}
	if _, _, ok, err := a.AuthenticateToken(context.Background(), f.token(t, nil)); !ok || err != nil {
		t.Fatalf("with CA file: ok=%v err=%v", ok, err)
	}

	// Without it the issuer's certificate is not trusted.
	b, err := NewOIDC(OIDCOptions{IssuerURL: ti.url, ClientID: testClientID})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := b.AuthenticateToken(context.Background(), f.token(t, nil)); ok || err == nil {
		t.Fatalf("untrusted issuer certificate: ok=%v err=%v", ok, err)
	}
}

func TestNewOIDCRejects(t *testing.T) {
	for name, opts := range map[string]OIDCOptions{
		"http issuer":  {IssuerURL: "http://issuer.example", ClientID: "c"},
		"no host":      {IssuerURL: "https://", ClientID: "c"},
		"query":        {IssuerURL: "https://issuer.example?x=1", ClientID: "c"},
		"no client id": {IssuerURL: "https://issuer.example"},
		"missing CA":   {IssuerURL: "https://issuer.example", ClientID: "c", CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewOIDC(opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
