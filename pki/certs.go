package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how close to expiry a certificate is re-issued, so a
	// long-running cluster restarted now and then never serves an expired
	// one.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clients whose clocks are a little behind ours.
	backdate = 5 * time.Minute
)

func newECKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func newSerial() (*big.Int, error) {
	// 127 random bits: positive and within the 20 octets RFC 5280 allows.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// newCA makes a self-signed CA that may sign leaves only (no
// intermediates), which is all pgkube needs.
func newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := newECKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pgkube-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return cert, key, nil
}

// leafSpec describes a certificate to sign with the CA.
type leafSpec struct {
	commonName string
	orgs       []string
	dnsNames   []string
	ips        []net.IP
	usage      x509.ExtKeyUsage
	validity   time.Duration
}

// signLeaf returns a new key and a certificate for it signed by the CA.
// The certificate never outlives the CA: a client would reject the chain
// from then on anyway.
func signLeaf(ca *x509.Certificate, caKey crypto.Signer, s leafSpec, now time.Time) (der []byte, key crypto.Signer, err error) {
	k, err := newECKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(s.validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.commonName, Organization: s.orgs},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{s.usage},
		DNSNames:     s.dnsNames,
		IPAddresses:  s.ips,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", s.commonName, err)
	}
	return der, k, nil
}

// usable reports whether cert chains to ca for the given usage and stays
// valid for at least renewBefore more.
func usable(cert, ca *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) bool {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err == nil && cert.NotAfter.Sub(now) > renewBefore
}
