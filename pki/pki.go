// Package pki creates and keeps the certificates and keys a pgkube cluster
// runs on: a CA, the API server's serving certificate, the service-account
// signing key and an admin client certificate, stored as PEM files in one
// directory.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files in the directory.
const (
	CACertFile      = "ca.crt"
	CAKeyFile       = "ca.key"
	ServingCertFile = "apiserver.crt"
	ServingKeyFile  = "apiserver.key"
	SAKeyFile       = "sa.key"
	SAPubFile       = "sa.pub"
	AdminCertFile   = "admin.crt"
	AdminKeyFile    = "admin.key"
	lockFile        = ".lock"
)

// AdminGroup is the group of the admin certificate: kube-apiserver's
// superuser group, which RBAC lets do anything.
const AdminGroup = "system:masters"

// defaultDNSNames are the names in-cluster clients and kubectl use for the
// API server.
var defaultDNSNames = []string{
	"localhost",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// Options says what the serving certificate must cover besides the
// defaults (localhost, 127.0.0.1, ::1 and the kubernetes.default names).
type Options struct {
	// Hosts are extra names or IP addresses, e.g. the listen host.
	// Unspecified addresses (0.0.0.0, ::) are ignored: no client dials them.
	Hosts []string
	// ServiceIP is the kubernetes Service's cluster IP, e.g. 10.96.0.1.
	ServiceIP net.IP
}

// Bundle is the cluster's loaded credentials.
type Bundle struct {
	CAPEM []byte
	CA    *x509.Certificate
	// ServingCert is the API server's certificate, with Leaf set.
	ServingCert tls.Certificate
	// ServiceAccountKey signs service-account tokens.
	ServiceAccountKey crypto.Signer
	// AdminCertPEM and AdminKeyPEM are a client certificate for CN admin in
	// system:masters, for kubeconfigs.
	AdminCertPEM []byte
	AdminKeyPEM  []byte

	caKey crypto.Signer
}

// ClientCAs returns a pool holding the CA, for tls.Config.ClientCAs.
func (b *Bundle) ClientCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.CA)
	return p
}

// IssueClient signs a client certificate for user cn in groups orgs, valid
// for ttl (but never beyond the CA).
func (b *Bundle) IssueClient(cn string, orgs []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		return nil, nil, errors.New("issue client certificate: empty common name")
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("issue client certificate: ttl %v is not positive", ttl)
	}
	if b.caKey == nil {
		return nil, nil, errors.New("issue client certificate: bundle has no CA key")
	}
	der, key, err := signLeaf(b.CA, b.caKey, leafSpec{
		commonName: cn, orgs: slices.Clone(orgs), usage: x509.ExtKeyUsageClientAuth, validity: ttl,
	}, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: %w", err)
	}
	return encodeCert(der), keyPEM, nil
}

// Ensure loads the credentials in dir, creating whatever is missing. The
// serving certificate is re-issued from the same CA when it lacks a name
// or address opts asks for, or expires within 30 days; the admin
// certificate likewise when it nears expiry. The CA and the
// service-account key are never replaced once they exist, since that would
// invalidate every kubeconfig and token handed out; a damaged one is an
// error for a human to resolve.
//
// Concurrent calls on the same dir, from goroutines or processes, are
// serialized by a lock file and end with one consistent set.
func Ensure(dir string, opts Options) (*Bundle, error) {
	if dir == "" {
		return nil, errors.New("pki: empty directory")
	}
	dns, ips, err := requestedSANs(opts)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	unlock, err := lockDir(dir, true)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer unlock()
	b, err := ensureLocked(dir, dns, ips, time.Now())
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	return b, nil
}

// Load reads the credentials in dir without creating or renewing anything.
// A missing file yields an error satisfying errors.Is(err, fs.ErrNotExist).
func Load(dir string) (*Bundle, error) {
	unlock, err := lockDir(dir, false)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer unlock()
	b := &Bundle{}
	if err := b.loadCA(dir); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	if err := b.loadServing(dir); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	if err := b.loadAdmin(dir); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	if b.ServiceAccountKey, err = loadSAKey(dir); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	return b, nil
}

func ensureLocked(dir string, dns []string, ips []net.IP, now time.Time) (*Bundle, error) {
	b := &Bundle{}
	freshCA := false
	switch err := b.loadCA(dir); {
	case errors.Is(err, fs.ErrNotExist) && !exists(dir, CACertFile):
		// Only a missing certificate means "no CA yet"; ca.key alone is
		// the leftover of a first run that died before writing ca.crt.
		if err := b.createCA(dir, now); err != nil {
			return nil, err
		}
		freshCA = true
	case err != nil:
		return nil, err
	}
	if !now.Before(b.CA.NotAfter) {
		return nil, fmt.Errorf("CA expired at %s; move the directory aside to create a new cluster CA", b.CA.NotAfter.Format(time.RFC3339))
	}

	if err := b.ensureServing(dir, dns, ips, now, freshCA); err != nil {
		return nil, err
	}
	if err := b.ensureAdmin(dir, now, freshCA); err != nil {
		return nil, err
	}
	if err := b.ensureSAKey(dir); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return b, nil
}

func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

func (b *Bundle) loadCA(dir string) error {
	certPEM, _, cert, key, err := readPair(dir, CACertFile, CAKeyFile)
	if err != nil {
		return err
	}
	if !cert.IsCA {
		return fmt.Errorf("%s is not a CA certificate", CACertFile)
	}
	b.CAPEM, b.CA, b.caKey = certPEM, cert, key
	return nil
}

func (b *Bundle) createCA(dir string, now time.Time) error {
	cert, key, err := newCA(now)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	// Key before certificate: a crash in between leaves no ca.crt, which
	// the next run treats as no CA.
	if err := writeFileAtomic(dir, CAKeyFile, keyPEM, keyPerm); err != nil {
		return err
	}
	certPEM := encodeCert(cert.Raw)
	if err := writeFileAtomic(dir, CACertFile, certPEM, certPerm); err != nil {
		return err
	}
	b.CAPEM, b.CA, b.caKey = certPEM, cert, key
	return nil
}

func (b *Bundle) loadServing(dir string) error {
	certPEM, keyPEM, _, _, err := readPair(dir, ServingCertFile, ServingKeyFile)
	if err != nil {
		return err
	}
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", ServingCertFile, err)
	}
	b.ServingCert = tc
	return nil
}

func (b *Bundle) ensureServing(dir string, dns []string, ips []net.IP, now time.Time, freshCA bool) error {
	if !freshCA && b.loadServing(dir) == nil {
		leaf := b.ServingCert.Leaf
		if usable(leaf, b.CA, x509.ExtKeyUsageServerAuth, now) && coversSANs(leaf, dns, ips) {
			return nil
		}
		// Keep the names the old certificate had, so that processes asking
		// for different listen addresses do not take turns re-issuing it.
		if leaf.CheckSignatureFrom(b.CA) == nil {
			dns, ips = mergeSANs(dns, ips, leaf.DNSNames, leaf.IPAddresses)
		}
	}
	der, key, err := signLeaf(b.CA, b.caKey, leafSpec{
		commonName: "pgkube-apiserver", dnsNames: dns, ips: ips,
		usage: x509.ExtKeyUsageServerAuth, validity: leafValidity,
	}, now)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := encodeCert(der)
	if err := writeFileAtomic(dir, ServingKeyFile, keyPEM, keyPerm); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, ServingCertFile, certPEM, certPerm); err != nil {
		return err
	}
	return b.loadServing(dir)
}

func (b *Bundle) loadAdmin(dir string) error {
	certPEM, keyPEM, _, _, err := readPair(dir, AdminCertFile, AdminKeyFile)
	if err != nil {
		return err
	}
	b.AdminCertPEM, b.AdminKeyPEM = certPEM, keyPEM
	return nil
}

func (b *Bundle) ensureAdmin(dir string, now time.Time, freshCA bool) error {
	if !freshCA && b.loadAdmin(dir) == nil {
		cert, err := parseCert(b.AdminCertPEM)
		if err == nil && usable(cert, b.CA, x509.ExtKeyUsageClientAuth, now) {
			return nil
		}
	}
	der, key, err := signLeaf(b.CA, b.caKey, leafSpec{
		commonName: "admin", orgs: []string{AdminGroup},
		usage: x509.ExtKeyUsageClientAuth, validity: leafValidity,
	}, now)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := encodeCert(der)
	if err := writeFileAtomic(dir, AdminKeyFile, keyPEM, keyPerm); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, AdminCertFile, certPEM, certPerm); err != nil {
		return err
	}
	b.AdminCertPEM, b.AdminKeyPEM = certPEM, keyPEM
	return nil
}

func loadSAKey(dir string) (crypto.Signer, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, SAKeyFile))
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SAKeyFile, err)
	}
	return key, nil
}

func (b *Bundle) ensureSAKey(dir string) error {
	key, err := loadSAKey(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("generate service account key: %w", err)
		}
		keyPEM, err := encodeKey(rk)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(dir, SAKeyFile, keyPEM, keyPerm); err != nil {
			return err
		}
		key = rk
	case err != nil:
		return err
	}
	// sa.pub is derived; rewrite it whenever it is missing or stale.
	pubPEM, err := encodePublicKey(key.Public())
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(filepath.Join(dir, SAPubFile)); err != nil || string(old) != string(pubPEM) {
		if err := writeFileAtomic(dir, SAPubFile, pubPEM, certPerm); err != nil {
			return err
		}
	}
	b.ServiceAccountKey = key
	return nil
}

// requestedSANs returns the serving certificate's required names and
// addresses: the defaults plus opts.
func requestedSANs(opts Options) ([]string, []net.IP, error) {
	dns := slices.Clone(defaultDNSNames)
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	if opts.ServiceIP != nil {
		if opts.ServiceIP.To16() == nil || opts.ServiceIP.IsUnspecified() {
			return nil, nil, fmt.Errorf("service IP %v is not a usable address", opts.ServiceIP)
		}
		ips = append(ips, opts.ServiceIP)
	}
	for _, h := range opts.Hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
			continue
		}
		if strings.ContainsAny(h, " \t/:@[]") {
			return nil, nil, fmt.Errorf("host %q is neither a DNS name nor an IP address", h)
		}
		dns = append(dns, strings.ToLower(h))
	}
	dns, ips = mergeSANs(nil, nil, dns, ips)
	return dns, ips, nil
}

// mergeSANs returns the union of two sets of names and addresses, without
// repeats, in first-seen order.
func mergeSANs(dns []string, ips []net.IP, moreDNS []string, moreIPs []net.IP) ([]string, []net.IP) {
	var outDNS []string
	for _, d := range slices.Concat(dns, moreDNS) {
		if !slices.Contains(outDNS, d) {
			outDNS = append(outDNS, d)
		}
	}
	var outIPs []net.IP
	for _, ip := range slices.Concat(ips, moreIPs) {
		if !slices.ContainsFunc(outIPs, ip.Equal) {
			outIPs = append(outIPs, ip)
		}
	}
	return outDNS, outIPs
}

// coversSANs reports whether cert names every one of dns and ips.
func coversSANs(cert *x509.Certificate, dns []string, ips []net.IP) bool {
	for _, d := range dns {
		if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, d) }) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}
