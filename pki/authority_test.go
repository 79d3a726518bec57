package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestAuthorityRoundTripAndIsolation(t *testing.T) {
	a, stored, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadAuthority(stored)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := loaded.IssueClient("admin", []string{"system:masters"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	opts := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	opts.Roots = a.ClientCAs()
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("a certificate from the reloaded authority does not verify with the original CA: %v", err)
	}
	opts.Roots = b.ClientCAs()
	if _, err := leaf.Verify(opts); err == nil {
		t.Error("a certificate of one authority verified with another's CA")
	}
	stored.CAKey = stored.SAKey
	if _, err := LoadAuthority(stored); err == nil {
		t.Error("a CA key that does not match its certificate was accepted")
	}
}
