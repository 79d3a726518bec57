package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Authority is a logical cluster's own credentials, kept in the database
// rather than in files: a CA for its client certificates and a key that
// signs its service-account tokens. Tenants get one each, so nothing one
// issues is trusted by another.
type Authority struct {
	CA                *x509.Certificate
	CAPEM             []byte
	caKey             crypto.Signer
	ServiceAccountKey crypto.Signer
}

// AuthorityPEM is an Authority's stored form.
type AuthorityPEM struct {
	CACert, CAKey, SAKey []byte
}

// NewAuthority makes fresh credentials. The service-account key is ECDSA
// P-256: quick to make, which matters when a tenant is created in
// milliseconds.
func NewAuthority() (*Authority, AuthorityPEM, error) {
	ca, caKey, err := newCA(time.Now())
	if err != nil {
		return nil, AuthorityPEM{}, err
	}
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, AuthorityPEM{}, fmt.Errorf("generate service account key: %w", err)
	}
	caKeyPEM, err := encodeKey(caKey)
	if err != nil {
		return nil, AuthorityPEM{}, err
	}
	saPEM, err := encodeKey(sa)
	if err != nil {
		return nil, AuthorityPEM{}, err
	}
	p := AuthorityPEM{CACert: encodeCert(ca.Raw), CAKey: caKeyPEM, SAKey: saPEM}
	return &Authority{CA: ca, CAPEM: p.CACert, caKey: caKey, ServiceAccountKey: sa}, p, nil
}

// LoadAuthority reads stored credentials.
func LoadAuthority(p AuthorityPEM) (*Authority, error) {
	ca, err := parseCert(p.CACert)
	if err != nil {
		return nil, fmt.Errorf("tenant CA: %w", err)
	}
	caKey, err := parseKey(p.CAKey)
	if err != nil {
		return nil, fmt.Errorf("tenant CA key: %w", err)
	}
	if !publicKeysEqual(ca.PublicKey, caKey.Public()) {
		return nil, errors.New("tenant CA key does not match its certificate")
	}
	sa, err := parseKey(p.SAKey)
	if err != nil {
		return nil, fmt.Errorf("tenant service account key: %w", err)
	}
	return &Authority{CA: ca, CAPEM: p.CACert, caKey: caKey, ServiceAccountKey: sa}, nil
}

// ClientCAs is a pool holding the authority's CA.
func (a *Authority) ClientCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.CA)
	return p
}

// IssueClient signs a client certificate for user cn in groups orgs.
func (a *Authority) IssueClient(cn string, orgs []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if cn == "" || ttl <= 0 {
		return nil, nil, errors.New("issue client certificate: need a name and a positive lifetime")
	}
	der, key, err := signLeaf(a.CA, a.caKey, leafSpec{commonName: cn, orgs: slices.Clone(orgs),
		usage: x509.ExtKeyUsageClientAuth, validity: ttl}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}
