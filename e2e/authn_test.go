package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/pgkube/pgkube/internal/pgtest"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// oidcIssuer is an OpenID Connect provider started by the test: discovery,
// keys, and tokens it signs.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
			"issuer": o.srv.URL, "jwks_uri": o.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{ //nolint:errcheck
			"kty": "RSA", "kid": "test-key", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	o.srv = httptest.NewTLSServer(mux)
	t.Cleanup(o.srv.Close)
	return o
}

func (o *oidcIssuer) caFile(t *testing.T) string {
	path := filepath.Join(tempDir(t), "oidc-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (o *oidcIssuer) token(t *testing.T, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "test-key"
	s, err := tok.SignedString(o.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encryptionConfig(t *testing.T, keys ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n")
	for _, k := range keys {
		secret := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(k[:1], 32)))
		fmt.Fprintf(&b, "      - name: %s\n        secret: %s\n", k, secret)
	}
	b.WriteString("  - identity: {}\n")
	path := filepath.Join(tempDir(t), "encryption.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuthenticationSources runs an API server with a static token file,
// an OIDC issuer (started here) and encryption at rest, then a second one
// with a rotated key on the same database.
func TestAuthenticationSources(t *testing.T) {
	ctx := context.Background()
	issuer := newOIDCIssuer(t)
	tokenFile := filepath.Join(tempDir(t), "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte("static-token-0123456789,alice,uid-alice,\"devs,ops\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewDatabase(t)
	url := startAPIServer(t, db, "--token-auth-file", tokenFile,
		"--oidc-issuer-url", issuer.srv.URL, "--oidc-client-id", "pgkube", "--oidc-ca-file", issuer.caFile(t),
		"--oidc-username-claim", "email", "--oidc-groups-claim", "groups", "--oidc-groups-prefix", "oidc:",
		"--encryption-provider-config", encryptionConfig(t, "first"))
	_, bundle := testCerts(t)
	whoami := func(token string) (authenticationv1.UserInfo, error) {
		cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: bundle.CAPEM}})
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return authenticationv1.UserInfo{}, err
		}
		return r.Status.UserInfo, nil
	}

	u, err := whoami("static-token-0123456789")
	if err != nil || u.Username != "alice" || u.UID != "uid-alice" || strings.Join(u.Groups, ",") != "devs,ops,system:authenticated" {
		t.Errorf("static token: %v %+v", err, u)
	}
	if _, err := whoami("static-token-wrong"); !apierrors.IsUnauthorized(err) {
		t.Errorf("unknown static token: %v, want 401", err)
	}

	now := time.Now()
	good := jwt.MapClaims{"iss": issuer.srv.URL, "aud": "pgkube", "sub": "1234", "email": "jane@example.com", "email_verified": true,
		"groups": []string{"eng", "sre"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	u, err = whoami(issuer.token(t, good))
	if err != nil || u.Username != "jane@example.com" || strings.Join(u.Groups, ",") != "oidc:eng,oidc:sre,system:authenticated" {
		t.Errorf("OIDC token: %v %+v", err, u)
	}
	for name, change := range map[string]func(jwt.MapClaims){
		"wrong audience":   func(c jwt.MapClaims) { c["aud"] = "someone-else" },
		"expired":          func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() },
		"unverified email": func(c jwt.MapClaims) { c["email_verified"] = false },
	} {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		change(c)
		if _, err := whoami(issuer.token(t, c)); !apierrors.IsUnauthorized(err) {
			t.Errorf("OIDC token, %s: %v, want 401", name, err)
		}
	}

	// Encryption with the first key, then a second server with a new key
	// in front: it re-encrypts every stored version.
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, url))
	namespace(t, admin, "rotate")
	for i := range 3 {
		if _, err := admin.CoreV1().Secrets("rotate").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("s", i)},
			StringData: map[string]string{"k": "rotation-canary"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(prefix string) int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM objects WHERE resource = '/secrets' AND position($1::bytea IN data) = 1`, []byte(prefix)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var secretRows int
	conn.QueryRow(ctx, `SELECT count(*) FROM objects WHERE resource = '/secrets'`).Scan(&secretRows) //nolint:errcheck
	if n := count("k8s:enc:aesgcm:v1:first:"); n != secretRows || n < 3 {
		t.Fatalf("%d of %d secret rows under the first key", n, secretRows)
	}
	url2 := startAPIServer(t, db, "--encryption-provider-config", encryptionConfig(t, "second", "first"))
	eventually(t, "re-encryption under the second key", func() error {
		if n := count("k8s:enc:aesgcm:v1:second:"); n != secretRows {
			return fmt.Errorf("%d of %d rows under the second key", n, secretRows)
		}
		return nil
	})
	// A server with only the new key reads everything.
	url3 := startAPIServer(t, db, "--encryption-provider-config", encryptionConfig(t, "second"))
	for _, u := range []string{url2, url3} {
		got, err := kubernetes.NewForConfigOrDie(adminConfig(t, u)).CoreV1().Secrets("rotate").Get(ctx, "s2", metav1.GetOptions{})
		if err != nil || string(got.Data["k"]) != "rotation-canary" {
			t.Errorf("read after rotation via %s: %v", u, err)
		}
	}
}
