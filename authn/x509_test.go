package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/clusters"
)

// startMTLSServer starts a server that verifies client certificates against
// ca the way pgkube's API server must, and answers with what ClientCerts
// made of the request.
func startMTLSServer(t *testing.T, ca *testCA) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := ClientCerts{}.Authenticate(r)
		res := map[string]any{"ok": ok}
		if err != nil {
			res["err"] = err.Error()
		}
		if u != nil {
			res["user"] = u
		}
		_ = json.NewEncoder(w).Encode(res)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

type certResult struct {
	OK   bool   `json:"ok"`
	Err  string `json:"err"`
	User *User  `json:"user"`
}

func getWithCert(t *testing.T, srv *httptest.Server, cert *tls.Certificate) (certResult, error) {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		// Go's client withholds a certificate the server's CA list does not
		// name; force it out to exercise the server's verification.
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err != nil {
		return certResult{}, err
	}
	defer resp.Body.Close()
	var res certResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

func TestClientCerts(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	srv := startMTLSServer(t, ca)
	now := time.Now()

	der, key := ca.issue(t, "alice", []string{"dev", "ops"}, now.Add(-time.Minute), now.Add(time.Hour))
	res, err := getWithCert(t, srv, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.User == nil || res.User.Name != "alice" {
		t.Fatalf("valid certificate: %+v", res)
	}
	if !slices.Equal(res.User.Groups, []string{"dev", "ops", AllAuthenticated}) {
		t.Fatalf("groups = %q", res.User.Groups)
	}
	if id := res.User.Extra[CredentialIDKey]; len(id) != 1 || !strings.HasPrefix(id[0], "X509SHA256=") {
		t.Fatalf("credential id = %q", id)
	}

	res, err = getWithCert(t, srv, nil)
	if err != nil || res.OK || res.Err != "" {
		t.Fatalf("no certificate: %+v %v, want not ok without error", res, err)
	}

	der, key = ca.issue(t, "", []string{"dev"}, now.Add(-time.Minute), now.Add(time.Hour))
	res, err = getWithCert(t, srv, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	if err != nil || res.OK {
		t.Fatalf("certificate without CN: %+v %v, want not ok", res, err)
	}
}

// TestClientCertsRejectedByTLS documents the part of the contract the TLS
// layer keeps: certificates that are expired or from another CA never reach
// ClientCerts.
func TestClientCertsRejectedByTLS(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	srv := startMTLSServer(t, ca)
	now := time.Now()

	der, key := ca.issue(t, "old", nil, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if res, err := getWithCert(t, srv, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}); err == nil {
		t.Fatalf("expired certificate got through the handshake: %+v", res)
	}

	other := newTestCA(t, "other-ca")
	der, key = other.issue(t, "mallory", []string{SystemPrivileged}, now.Add(-time.Minute), now.Add(time.Hour))
	if res, err := getWithCert(t, srv, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}); err == nil {
		t.Fatalf("certificate from another CA got through the handshake: %+v", res)
	}
}

func TestClientCertsIgnoresUnverifiedPeers(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	der, _ := ca.issue(t, "mallory", []string{SystemPrivileged}, time.Now(), time.Now().Add(time.Hour))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if u, ok, err := (ClientCerts{}).Authenticate(r); ok || err != nil || u != nil {
		t.Fatalf("peer certificate without verified chain: %v %v %v, want not ok", u, ok, err)
	}
	r.TLS = nil
	if _, ok, err := (ClientCerts{}).Authenticate(r); ok || err != nil {
		t.Fatalf("plain HTTP: ok=%v err=%v", ok, err)
	}
}

// With per-cluster roots, a verified chain is remembered for those roots
// only, and only until the certificate expires.
func TestClientCertsVerifyCache(t *testing.T) {
	caA, caB := newTestCA(t, "a"), newTestCA(t, "b")
	der, _ := caA.issue(t, "alice", nil, time.Now().Add(-time.Minute), time.Now().Add(2*time.Second))
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := map[string]*x509.CertPool{"a": caA.pool, "b": caB.pool}
	cc := ClientCerts{Verified: NewVerifyCache(), Roots: func(_ context.Context, c string) (*x509.CertPool, error) { return roots[c], nil }}
	req := func(cluster string) (*User, bool, error) {
		r := httptest.NewRequest("GET", "/", nil).WithContext(clusters.With(context.Background(), cluster))
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		return cc.Authenticate(r)
	}
	for range 2 {
		if u, ok, err := req("a"); !ok || err != nil || u.Name != "alice" {
			t.Fatalf("in its own cluster: %v %v %v", u, ok, err)
		}
	}
	if _, ok, err := req("b"); ok || err == nil {
		t.Errorf("in another cluster after being cached for the first: ok=%v err=%v", ok, err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, ok, err := req("a"); ok || err == nil {
		t.Errorf("after expiry: ok=%v err=%v", ok, err)
	}
}
