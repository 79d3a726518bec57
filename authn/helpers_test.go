package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key := testECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate signed by the CA, valid from notBefore to
// notAfter; dns makes it a serving certificate, otherwise a client one.
func (ca *testCA) issue(t testing.TB, cn string, orgs []string, notBefore, notAfter time.Time, dns ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := testECKey(t)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
	}
	if len(dns) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// fakeLookup answers BoundLookup from a map keyed "resource/namespace/name".
type fakeLookup struct {
	mu      sync.Mutex
	objects map[string]fakeObject
	err     error
}

type fakeObject struct {
	uid      string
	deleting bool
}

func (f *fakeLookup) set(resource, namespace, name, uid string, deleting bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string]fakeObject{}
	}
	f.objects[resource+"/"+namespace+"/"+name] = fakeObject{uid, deleting}
}

func (f *fakeLookup) remove(resource, namespace, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, resource+"/"+namespace+"/"+name)
}

func (f *fakeLookup) LookupUID(_ context.Context, resource, namespace, name string) (string, bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", false, false, f.err
	}
	o, ok := f.objects[resource+"/"+namespace+"/"+name]
	return o.uid, o.deleting, ok, nil
}

// testIssuer is an OIDC identity provider over TLS serving discovery and a
// JWKS whose keys a test can swap.
type testIssuer struct {
	srv  *httptest.Server
	url  string
	mu   sync.Mutex
	keys map[string]crypto.Signer // kid → key
	// docIssuer overrides the issuer the discovery document names.
	docIssuer string
	// failDiscovery makes discovery answer 500.
	failDiscovery bool

	discoveryHits atomic.Int32
	jwksHits      atomic.Int32
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	ti := &testIssuer{keys: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveryHits.Add(1)
		ti.mu.Lock()
		iss, fail := ti.url, ti.failDiscovery
		if ti.docIssuer != "" {
			iss = ti.docIssuer
		}
		ti.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":   iss,
			"jwks_uri": ti.url + "/keys",
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		set := jwkSet{Keys: []jwk{{Kty: "oct", Kid: "symmetric"}}} // must be skipped
		for kid, k := range ti.keys {
			alg := "RS256"
			if _, ok := k.(*ecdsa.PrivateKey); ok {
				alg = "ES256"
			}
			j, err := publicJWK(k.Public(), kid, alg)
			if err != nil {
				panic(err)
			}
			set.Keys = append(set.Keys, j)
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	ti.srv = httptest.NewTLSServer(mux)
	ti.url = ti.srv.URL
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) setKey(kid string, k crypto.Signer) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.keys[kid] = k
}

// sign returns a token with the given claims, signed by key under kid.
func signToken(t testing.TB, key crypto.Signer, kid string, claims jwt.MapClaims) string {
	t.Helper()
	method := jwt.SigningMethod(jwt.SigningMethodRS256)
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		method = jwt.SigningMethodES256
	}
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeCAFile writes the test server's certificate as a PEM CA bundle.
func writeCAFile(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
