package authn

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// chain is the authenticator stack an API server would run, with one valid
// credential of each token kind.
type chain struct {
	union      Union
	static     string
	sa, oidc   string
	validNames []string
}

func newChain(t testing.TB) *chain {
	t.Helper()
	sa := newSAFixture(t)
	oidc := newOIDCFixture(t, OIDCOptions{UsernamePrefix: "-"})
	static := NewStaticTokens(map[string]User{"static-token": {Name: "alice"}})
	apiAuds := []string{testAPIAud}
	return &chain{
		union: Union{
			Authenticators: []Authenticator{
				ClientCerts{},
				Bearer{Tokens: []TokenAuthenticator{
					AudienceAgnostic{Implicit: apiAuds, Token: static},
					sa.auth,
					AudienceAgnostic{Implicit: apiAuds, Token: oidc.auth},
				}},
			},
			Anonymous: true,
		},
		static:     "static-token",
		sa:         sa.issue(t, nil),
		oidc:       oidc.token(t, nil),
		validNames: []string{"alice", "system:serviceaccount:default:builder", "user-123"},
	}
}

func (c *chain) authenticate(header string) (*User, bool, error) {
	r := httptest.NewRequest("GET", "/api", nil)
	r = r.WithContext(WithAudiences(context.Background(), []string{testAPIAud}))
	r.Header.Set("Authorization", header)
	return c.union.Authenticate(r)
}

func TestChainAcceptsValidCredentials(t *testing.T) {
	c := newChain(t)
	for n, tok := range []string{c.static, c.sa, c.oidc} {
		u, ok, err := c.authenticate("Bearer " + tok)
		if !ok || err != nil || u.Name != c.validNames[n] || !u.InGroup(AllAuthenticated) {
			t.Fatalf("token %d: %+v ok=%v err=%v", n, u, ok, err)
		}
	}
	r := httptest.NewRequest("GET", "/api", nil)
	if u, ok, err := c.union.Authenticate(r); !ok || err != nil || u.Name != Anonymous {
		t.Fatalf("no credentials: %+v ok=%v err=%v", u, ok, err)
	}
}

// TestGarbageCredentials feeds malformed and hostile tokens through the
// whole chain: each must end in a prompt error, never in a panic, a hang,
// or anonymous access.
func TestGarbageCredentials(t *testing.T) {
	c := newChain(t)
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return string(b)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

	var inputs []string
	for range 20 {
		inputs = append(inputs, randomBytes(1+rng.IntN(200)))
	}
	for _, tok := range []string{c.sa, c.oidc} {
		for _, cut := range []int{1, 10, len(tok) / 2, strings.Index(tok, "."), strings.LastIndex(tok, "."), strings.LastIndex(tok, ".") + 1, len(tok) - 1} {
			inputs = append(inputs, tok[:cut])
		}
		inputs = append(inputs, tok+"x", tok+".", strings.Replace(tok, ".", "..", 1), strings.ToUpper(tok))
	}
	saClaims := jwt.MapClaims{"iss": testIssuerName, "aud": []string{testAPIAud}, "exp": time.Now().Add(time.Hour).Unix(), "sub": "system:serviceaccount:default:builder"}
	oidcClaims := jwt.MapClaims{"iss": newOIDCIssuerURL(c), "aud": testClientID, "exp": time.Now().Add(time.Hour).Unix(), "sub": "root"}
	inputs = append(inputs,
		mustNone(t, saClaims),
		mustNone(t, oidcClaims),
		b64(`{"alg":"none"}`)+"."+b64(`{"iss":"`+testIssuerName+`"}`)+".",
		b64(`{"alg":"RS256"}`)+"."+b64(strings.Repeat("[", 5000)+strings.Repeat("]", 5000))+".AAAA",
		b64(`{"alg":"RS256"}`)+"."+b64(`{"iss":"x","exp":1e400}`)+".AAAA",
		b64(`{"alg":"RS256","kid":{"x":1}}`)+"."+b64(`{"iss":"`+testIssuerName+`","exp":"soon"}`)+".AAAA",
		"..", "...", "a.b.c", "===.===.===", "\x00.\x00.\x00", "ünïcödé.tøken.sig",
		strings.Repeat("A", 1<<20),
		strings.Repeat("A", 1<<19)+"."+strings.Repeat("B", 1<<19)+".C",
		"{\"iss\":\""+testIssuerName+"\"}",
	)

	start := time.Now()
	for n, in := range inputs {
		callStart := time.Now()
		u, ok, err := c.authenticate("Bearer " + in)
		if ok || err == nil {
			t.Errorf("input %d (%.40q): user=%+v ok=%v err=%v, want an error", n, in, u, ok, err)
		}
		if d := time.Since(callStart); d > 2*time.Second {
			t.Errorf("input %d (%.40q) took %v", n, in, d)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%d garbage inputs took %v", len(inputs), d)
	}
}

// newOIDCIssuerURL digs the OIDC issuer out of the chain so garbage can
// claim it.
func newOIDCIssuerURL(c *chain) string {
	for _, ta := range c.union.Authenticators[1].(Bearer).Tokens {
		if aa, ok := ta.(AudienceAgnostic); ok {
			if o, ok := aa.Token.(*OIDC); ok {
				return o.issuer
			}
		}
	}
	return ""
}

// FuzzBearer drives arbitrary Authorization headers through the chain. Its
// seeds run in every `go test`; `go test -fuzz=FuzzBearer ./authn/` explores
// further.
func FuzzBearer(f *testing.F) {
	c := newChain(f)
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer  x", "bearer " + c.static, "Bearer " + c.static,
		"Bearer " + c.sa, "Bearer " + c.oidc, "Bearer " + c.sa[:len(c.sa)/2],
		"Bearer a.b.c", "Bearer ..", "Basic YWxpY2U6cHc=", "Bearer a b", "Bearer \x00",
		"Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMuY2x1c3Rlci5sb2NhbCJ9.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/api", nil)
		r = r.WithContext(WithAudiences(context.Background(), []string{testAPIAud}))
		r.Header = http.Header{"Authorization": {header}}
		u, ok, err := c.union.Authenticate(r)
		if ok && err != nil {
			t.Fatalf("ok with error %v", err)
		}
		if !ok {
			if err == nil {
				t.Fatal("not ok without error: Union with Anonymous must either accept or reject")
			}
			return
		}
		if u == nil {
			t.Fatal("ok without a user")
		}
		known := u.Name == Anonymous
		for _, n := range c.validNames {
			known = known || u.Name == n
		}
		if !known {
			t.Fatalf("authenticated as unexpected user %q", u.Name)
		}
	})
}
