package authn

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuerName = "https://kubernetes.default.svc.cluster.local"
	testAPIAud     = "https://kubernetes.default.svc.cluster.local"
)

type saFixture struct {
	iss    *ServiceAccountIssuer
	lookup *fakeLookup
	auth   ServiceAccountTokens
	ctx    context.Context
}

func newSAFixture(t testing.TB) *saFixture {
	t.Helper()
	iss, err := NewServiceAccountIssuer(testRSAKey(t), testIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	l := &fakeLookup{}
	l.set("serviceaccounts", "default", "builder", "sa-uid", false)
	l.set("pods", "default", "web-0", "pod-uid", false)
	l.set("secrets", "default", "builder-token", "secret-uid", false)
	l.set("nodes", "", "node-a", "node-uid", false)
	return &saFixture{
		iss: iss, lookup: l,
		auth: ServiceAccountTokens{Issuer: iss, Lookup: l},
		ctx:  WithAudiences(context.Background(), []string{testAPIAud}),
	}
}

func baseClaims() TokenClaims {
	return TokenClaims{
		Audiences:         []string{testAPIAud},
		Expiry:            time.Now().Add(time.Hour),
		Namespace:         "default",
		ServiceAccount:    "builder",
		ServiceAccountUID: "sa-uid",
	}
}

func (f *saFixture) issue(t testing.TB, edit func(*TokenClaims)) string {
	t.Helper()
	c := baseClaims()
	if edit != nil {
		edit(&c)
	}
	tok, err := f.iss.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestServiceAccountTokenValid(t *testing.T) {
	f := newSAFixture(t)
	tok := f.issue(t, func(c *TokenClaims) {
		c.Audiences = []string{"vault", testAPIAud}
		c.Pod = &BoundObject{"web-0", "pod-uid"}
		c.Node = &BoundObject{"node-a", "node-uid"}
		c.ID = "abc"
	})
	u, auds, ok, err := f.auth.AuthenticateToken(f.ctx, tok)
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if !slices.Equal(auds, []string{testAPIAud}) {
		t.Fatalf("audiences = %q, want only the requested one", auds)
	}
	if u.Name != "system:serviceaccount:default:builder" || u.UID != "sa-uid" {
		t.Fatalf("user = %+v", u)
	}
	if !slices.Equal(u.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:default"}) {
		t.Fatalf("groups = %q", u.Groups)
	}
	wantExtra := map[string][]string{
		PodNameKey: {"web-0"}, PodUIDKey: {"pod-uid"},
		NodeNameKey: {"node-a"}, NodeUIDKey: {"node-uid"},
		CredentialIDKey: {"JTI=abc"},
	}
	if len(u.Extra) != len(wantExtra) {
		t.Fatalf("extra = %v", u.Extra)
	}
	for k, v := range wantExtra {
		if !slices.Equal(u.Extra[k], v) {
			t.Fatalf("extra[%s] = %q, want %q", k, u.Extra[k], v)
		}
	}

	// TokenReview for another audience the token also carries.
	ctx := WithAudiences(context.Background(), []string{"vault"})
	if _, auds, ok, err := f.auth.AuthenticateToken(ctx, tok); !ok || err != nil || !slices.Equal(auds, []string{"vault"}) {
		t.Fatalf("vault audience: ok=%v auds=%q err=%v", ok, auds, err)
	}
}

func TestServiceAccountTokenClock(t *testing.T) {
	f := newSAFixture(t)
	now := time.Now()
	for _, tc := range []struct {
		name string
		edit func(*TokenClaims)
		ok   bool
	}{
		{"expired", func(c *TokenClaims) { c.IssuedAt = now.Add(-2 * time.Hour); c.Expiry = now.Add(-time.Second) }, false},
		{"issuer clock a little ahead", func(c *TokenClaims) { c.IssuedAt = now.Add(30 * time.Second) }, true},
		{"issued well in the future", func(c *TokenClaims) { c.IssuedAt = now.Add(5 * time.Minute) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ok, err := f.auth.AuthenticateToken(f.ctx, f.issue(t, tc.edit))
			if ok != tc.ok || (err == nil) != tc.ok {
				t.Fatalf("ok=%v err=%v, want ok=%v", ok, err, tc.ok)
			}
		})
	}
}

func TestServiceAccountTokenAudience(t *testing.T) {
	f := newSAFixture(t)
	tok := f.issue(t, func(c *TokenClaims) { c.Audiences = []string{"vault"} })
	if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); ok || err == nil {
		t.Fatalf("token for another audience: ok=%v err=%v, want error", ok, err)
	}
	if _, _, ok, err := f.auth.AuthenticateToken(context.Background(), f.issue(t, nil)); ok || err == nil {
		t.Fatalf("no audiences requested: ok=%v err=%v, want error", ok, err)
	}
}

func TestServiceAccountTokenBoundObjects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bind   func(*TokenClaims)
		break_ func(*fakeLookup)
	}{
		{"sa deleted", nil, func(l *fakeLookup) { l.remove("serviceaccounts", "default", "builder") }},
		{"sa recreated", nil, func(l *fakeLookup) { l.set("serviceaccounts", "default", "builder", "new-uid", false) }},
		{"sa deleting", nil, func(l *fakeLookup) { l.set("serviceaccounts", "default", "builder", "sa-uid", true) }},
		{"lookup fails", nil, func(l *fakeLookup) { l.err = errors.New("db down") }},
		{"pod deleted", bindPod, func(l *fakeLookup) { l.remove("pods", "default", "web-0") }},
		{"pod recreated", bindPod, func(l *fakeLookup) { l.set("pods", "default", "web-0", "other", false) }},
		{"pod deleting", bindPod, func(l *fakeLookup) { l.set("pods", "default", "web-0", "pod-uid", true) }},
		{"secret deleted", bindSecret, func(l *fakeLookup) { l.remove("secrets", "default", "builder-token") }},
		{"secret recreated", bindSecret, func(l *fakeLookup) { l.set("secrets", "default", "builder-token", "x", false) }},
		{"secret deleting", bindSecret, func(l *fakeLookup) { l.set("secrets", "default", "builder-token", "secret-uid", true) }},
		{"node deleted", bindNode, func(l *fakeLookup) { l.remove("nodes", "", "node-a") }},
		{"node recreated", bindNode, func(l *fakeLookup) { l.set("nodes", "", "node-a", "x", false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSAFixture(t)
			tok := f.issue(t, tc.bind)
			if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); !ok || err != nil {
				t.Fatalf("before: ok=%v err=%v", ok, err)
			}
			tc.break_(f.lookup)
			if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); ok || err == nil {
				t.Fatalf("after: ok=%v err=%v, want error", ok, err)
			}
		})
	}

	// The node of a pod-bound token is not looked up.
	f := newSAFixture(t)
	tok := f.issue(t, func(c *TokenClaims) { bindPod(c); c.Node = &BoundObject{"gone", "x"} })
	if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); !ok || err != nil {
		t.Fatalf("pod-bound token with stale node: ok=%v err=%v", ok, err)
	}

	// Without a lookup nothing can be checked, so nothing is accepted.
	f.auth.Lookup = nil
	if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, f.issue(t, nil)); ok || err == nil {
		t.Fatalf("no lookup: ok=%v err=%v, want error", ok, err)
	}
}

func bindPod(c *TokenClaims)    { c.Pod = &BoundObject{"web-0", "pod-uid"} }
func bindSecret(c *TokenClaims) { c.Secret = &BoundObject{"builder-token", "secret-uid"} }
func bindNode(c *TokenClaims)   { c.Node = &BoundObject{"node-a", "node-uid"} }

func TestServiceAccountTokenKeyRotation(t *testing.T) {
	f := newSAFixture(t)
	old := f.issue(t, nil)

	// New signing key; the old one still verifies.
	oldPub := f.iss.signer.Public()
	rotated, err := NewServiceAccountIssuer(testECKey(t), testIssuerName, oldPub)
	if err != nil {
		t.Fatal(err)
	}
	auth := ServiceAccountTokens{Issuer: rotated, Lookup: f.lookup}
	if _, _, ok, err := auth.AuthenticateToken(f.ctx, old); !ok || err != nil {
		t.Fatalf("token from the previous key: ok=%v err=%v", ok, err)
	}
	fresh, err := rotated.Issue(baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := auth.AuthenticateToken(f.ctx, fresh); !ok || err != nil {
		t.Fatalf("token from the new key: ok=%v err=%v", ok, err)
	}
	// Dropping the old key revokes its tokens.
	if _, _, ok, err := (ServiceAccountTokens{Issuer: mustIssuer(t, rotated)}).AuthenticateToken(f.ctx, old); ok || err == nil {
		t.Fatalf("token from a dropped key: ok=%v err=%v", ok, err)
	}
}

// mustIssuer rebuilds iss without its extra keys.
func mustIssuer(t *testing.T, iss *ServiceAccountIssuer) *ServiceAccountIssuer {
	t.Helper()
	i, err := NewServiceAccountIssuer(iss.signer, iss.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestServiceAccountTokenForgeries feeds tokens that claim our issuer but
// were not signed by our key: all must fail with an error.
func TestServiceAccountTokenForgeries(t *testing.T) {
	f := newSAFixture(t)
	good := f.issue(t, nil)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])

	claims := jwt.MapClaims{
		"iss": testIssuerName, "sub": "system:serviceaccount:default:builder",
		"aud": []string{testAPIAud}, "exp": time.Now().Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]any{"name": "builder", "uid": "sa-uid"}},
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// The classic confusion: HMAC keyed with the public key, which a
	// verifier that trusts the header's alg would accept.
	pubDER, _ := x509.MarshalPKIXPublicKey(f.iss.signer.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacTok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hmacTok.Header["kid"] = f.iss.KeyID()
	hs256, err := hmacTok.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := signToken(t, testRSAKey(t), f.iss.KeyID(), claims)
	noKid := signToken(t, testECKey(t), "", claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(
		[]byte(strings.Replace(string(payload), `"builder"`, `"admin"`, 1))) + "." + parts[2]
	unknownKid := signToken(t, testRSAKey(t), "some-other-kid", claims)

	for name, tok := range map[string]string{
		"alg none":          none,
		"HS256 with pubkey": hs256,
		"other key":         otherKey,
		"no kid, other key": noKid,
		"tampered payload":  tampered,
		"unknown kid":       unknownKid,
		"signature dropped": parts[0] + "." + parts[1] + ".",
	} {
		if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); ok || err == nil {
			t.Errorf("%s: ok=%v err=%v, want error", name, ok, err)
		}
	}
}

func TestServiceAccountTokenNotOurs(t *testing.T) {
	f := newSAFixture(t)
	other := signToken(t, testECKey(t), "k", jwt.MapClaims{"iss": "https://accounts.example", "aud": "x", "exp": time.Now().Add(time.Hour).Unix()})
	huge := f.issue(t, func(c *TokenClaims) { c.Audiences = append(c.Audiences, strings.Repeat("a", maxTokenLen)) })
	for name, tok := range map[string]string{
		"other issuer":     other,
		"static token":     "s3cret",
		"two parts":        "abc.def",
		"bad base64":       "a.b!c.d",
		"payload not JSON": "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".sig",
		"too long":         huge,
		"empty":            "",
	} {
		if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, tok); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want not ours", name, ok, err)
		}
	}
}

func TestServiceAccountTokenWithoutKid(t *testing.T) {
	// Tokens from before key ids were introduced carry none; they are
	// tried against every key.
	f := newSAFixture(t)
	tok, err := f.iss.Issue(baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	var c saClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	signed := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	s, err := signed.SignedString(f.iss.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := f.auth.AuthenticateToken(f.ctx, s); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
}
