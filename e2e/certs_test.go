package e2e

import (
	"crypto/tls"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/pki"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// One CA for the test binary: `pgkube apiserver` processes and the shared
// `pgkube up` take it with --cert-dir, so one admin client reaches them all.
// Tests that check `pgkube up`'s own certificates leave it out.
var (
	certsOnce   sync.Once
	certsDir    string
	certsBundle *pki.Bundle
	certsErr    error
	adminClient *http.Client
)

func testCerts(t testing.TB) (string, *pki.Bundle) {
	certsOnce.Do(func() {
		if certsDir, certsErr = os.MkdirTemp("", "pgkube-certs-"); certsErr != nil {
			return
		}
		if certsBundle, certsErr = pki.Ensure(certsDir, pki.Options{}); certsErr != nil {
			return
		}
		cert, err := tls.X509KeyPair(certsBundle.AdminCertPEM, certsBundle.AdminKeyPEM)
		if err != nil {
			certsErr = err
			return
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: certsBundle.ClientCAs(), Certificates: []tls.Certificate{cert}}
		tr.MaxIdleConnsPerHost = 100
		adminClient = &http.Client{Transport: tr}
	})
	if certsErr != nil {
		t.Fatal(certsErr)
	}
	return certsDir, certsBundle
}

// adminHTTP is an HTTP client with the test CA's admin certificate
// (system:masters).
func adminHTTP(t testing.TB) *http.Client {
	testCerts(t)
	return adminClient
}

// adminConfig is a client-go config for an API server using the test CA, as
// the admin.
func adminConfig(t testing.TB, url string) *rest.Config {
	_, b := testCerts(t)
	return &rest.Config{Host: url, QPS: 1000, Burst: 1000, TLSClientConfig: rest.TLSClientConfig{
		CAData: b.CAPEM, CertData: b.AdminCertPEM, KeyData: b.AdminKeyPEM}}
}

// userConfig is a client-go config authenticating with a client
// certificate for user (CN) in groups (O), issued by the test CA.
func userConfig(t testing.TB, url, user string, groups ...string) *rest.Config {
	_, b := testCerts(t)
	cert, key, err := b.IssueClient(user, groups, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: url, QPS: 1000, Burst: 1000, TLSClientConfig: rest.TLSClientConfig{
		CAData: b.CAPEM, CertData: cert, KeyData: key}}
}

// probeClient checks readiness without credentials or trust, as a load
// balancer's health check does: /readyz is public.
var probeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a probe of a server the test started

func ready(url string) bool {
	resp, err := probeClient.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func withQPS(c *rest.Config, qps int) *rest.Config {
	c.QPS, c.Burst = float32(qps), qps
	return c
}

func yamlToUnstructured(y string, u *unstructured.Unstructured) error {
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return err
	}
	return u.UnmarshalJSON(j)
}
