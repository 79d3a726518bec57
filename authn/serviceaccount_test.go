package authn

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeSegment returns the JSON object in part n of a compact JWS.
func decodeSegment(t *testing.T, token string, n int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[n])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKeyIDMatchesKubeAPIServer pins the key id derivation to the value
// kube-apiserver computes for the same public key, so tokens and JWKS
// stay interchangeable with it.
func TestKeyIDMatchesKubeAPIServer(t *testing.T) {
	const pubPEM = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA249XwEo9k4tM8fMxV7zx
OhcrP+WvXn917koM5Qr2ZXs4vo26e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecI
zshKuv1gKIxbbLQMOuK1eA/4HALyEkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG
51RoiMgbQxaCyYxGfNLpLAZK9L0Tctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJU
j7OTh/AjjCnMnkgvKT2tpKxYQ59PgDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEi
B4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRM
WwIDAQAB
-----END PUBLIC KEY-----
`
	block, _ := pem.Decode([]byte(pubPEM))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU"; kid != want {
		t.Fatalf("KeyID = %q, want %q", kid, want)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestIssueClaimsLayout(t *testing.T) {
	key := testRSAKey(t)
	iss, err := NewServiceAccountIssuer(key, "https://kubernetes.default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(1_700_000_000, 0)
	warn := iat.Add(time.Hour)
	tok, err := iss.Issue(TokenClaims{
		Audiences:         []string{"https://kubernetes.default.svc.cluster.local"},
		IssuedAt:          iat,
		Expiry:            iat.Add(365 * 24 * time.Hour),
		Namespace:         "default",
		ServiceAccount:    "builder",
		ServiceAccountUID: "sa-uid",
		Pod:               &BoundObject{Name: "web-0", UID: "pod-uid"},
		Node:              &BoundObject{Name: "node-a", UID: "node-uid"},
		WarnAfter:         &warn,
	})
	if err != nil {
		t.Fatal(err)
	}

	h := decodeSegment(t, tok, 0)
	if h["alg"] != "RS256" || h["kid"] != iss.KeyID() {
		t.Fatalf("header = %v", h)
	}
	if want, _ := KeyID(key.Public()); iss.KeyID() != want {
		t.Fatalf("kid = %q, want %q", iss.KeyID(), want)
	}

	c := decodeSegment(t, tok, 1)
	want := map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:default:builder",
		// A single audience is still an array, as kube-apiserver writes it.
		"aud": []any{"https://kubernetes.default.svc.cluster.local"},
		"iat": float64(iat.Unix()),
		"nbf": float64(iat.Unix()),
		"exp": float64(iat.Add(365 * 24 * time.Hour).Unix()),
		"kubernetes.io": map[string]any{
			"namespace":      "default",
			"serviceaccount": map[string]any{"name": "builder", "uid": "sa-uid"},
			"pod":            map[string]any{"name": "web-0", "uid": "pod-uid"},
			"node":           map[string]any{"name": "node-a", "uid": "node-uid"},
			"warnafter":      float64(warn.Unix()),
		},
	}
	jti, _ := c["jti"].(string)
	if !uuidRE.MatchString(jti) {
		t.Fatalf("jti = %q, want a random UUID", jti)
	}
	delete(c, "jti")
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("claims:\n got %s\nwant %s", gotJSON, wantJSON)
	}

	tok2, err := iss.Issue(TokenClaims{
		Audiences: []string{"a"}, Expiry: time.Now().Add(time.Hour),
		Namespace: "ns", ServiceAccount: "sa", ServiceAccountUID: "u", ID: "fixed-id",
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := decodeSegment(t, tok2, 1)
	if c2["jti"] != "fixed-id" {
		t.Fatalf("jti = %v, want the given ID", c2["jti"])
	}
	k8s := c2["kubernetes.io"].(map[string]any)
	for _, absent := range []string{"pod", "secret", "node", "warnafter"} {
		if _, ok := k8s[absent]; ok {
			t.Fatalf("unbound token carries %q: %v", absent, k8s)
		}
	}
	iatNow, _ := c2["iat"].(float64)
	if d := time.Since(time.Unix(int64(iatNow), 0)); d < -time.Second || d > time.Minute {
		t.Fatalf("default iat is %v from now", d)
	}
}

func TestIssueRejects(t *testing.T) {
	iss, err := NewServiceAccountIssuer(testECKey(t), "pgkube")
	if err != nil {
		t.Fatal(err)
	}
	good := TokenClaims{
		Audiences: []string{"a"}, Expiry: time.Now().Add(time.Hour),
		Namespace: "ns", ServiceAccount: "sa", ServiceAccountUID: "u",
	}
	if _, err := iss.Issue(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*TokenClaims){
		"no audience":       func(c *TokenClaims) { c.Audiences = nil },
		"no namespace":      func(c *TokenClaims) { c.Namespace = "" },
		"no sa uid":         func(c *TokenClaims) { c.ServiceAccountUID = "" },
		"expired at birth":  func(c *TokenClaims) { c.Expiry = time.Now().Add(-time.Second) },
		"secret and pod":    func(c *TokenClaims) { c.Secret = &BoundObject{"s", "1"}; c.Pod = &BoundObject{"p", "2"} },
		"pod without uid":   func(c *TokenClaims) { c.Pod = &BoundObject{Name: "p"} },
		"node without name": func(c *TokenClaims) { c.Node = &BoundObject{UID: "n"} },
	} {
		c := good
		mutate(&c)
		if _, err := iss.Issue(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNewServiceAccountIssuerRejects(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServiceAccountIssuer(small, "x"); err == nil {
		t.Error("1024-bit RSA key accepted")
	}
	if _, err := NewServiceAccountIssuer(testECKey(t), ""); err == nil {
		t.Error("empty issuer accepted")
	}
	if _, err := NewServiceAccountIssuer(testECKey(t), "x", "not a key"); err == nil {
		t.Error("non-key verification key accepted")
	}
}

func TestIssuerDiscovery(t *testing.T) {
	rsaKey, ecKey := testRSAKey(t), testECKey(t)
	// The signing key listed again among the extra keys must appear once.
	iss, err := NewServiceAccountIssuer(ecKey, "https://pgkube.example", rsaKey.Public(), ecKey.Public())
	if err != nil {
		t.Fatal(err)
	}

	var cfg map[string]any
	if err := json.Unmarshal(iss.OpenIDConfiguration("https://pgkube.example/openid/v1/jwks"), &cfg); err != nil {
		t.Fatal(err)
	}
	wantCfg := `{"id_token_signing_alg_values_supported":["ES256","RS256"],"issuer":"https://pgkube.example","jwks_uri":"https://pgkube.example/openid/v1/jwks","response_types_supported":["id_token"],"subject_types_supported":["public"]}`
	if got, _ := json.Marshal(cfg); string(got) != wantCfg {
		t.Fatalf("openid-configuration:\n got %s\nwant %s", got, wantCfg)
	}

	var set jwkSet
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2: %s", len(set.Keys), iss.JWKS())
	}
	for n, want := range []crypto.PublicKey{ecKey.Public(), rsaKey.Public()} {
		k := set.Keys[n]
		kid, _ := KeyID(want)
		if k.Kid != kid || k.Use != "sig" {
			t.Fatalf("key %d: kid=%q use=%q", n, k.Kid, k.Use)
		}
		pub, err := k.publicKey()
		if err != nil {
			t.Fatalf("key %d: %v", n, err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
			t.Fatalf("key %d does not round-trip", n)
		}
	}
	if k := set.Keys[0]; k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.X == "" || k.Y == "" {
		t.Fatalf("EC key = %+v", k)
	}
	if k := set.Keys[1]; k.Kty != "RSA" || k.Alg != "RS256" || k.E != "AQAB" || k.N == "" {
		t.Fatalf("RSA key = %+v", k)
	}
	if !slices.Equal(iss.algorithms(), []string{"ES256", "RS256"}) {
		t.Fatalf("algorithms = %q", iss.algorithms())
	}
}
