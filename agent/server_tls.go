package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/pki"
)

// ServingTLS is the agent server's TLS: a serving certificate for hosts
// (the node's names and addresses; localhost and 127.0.0.1 are always
// added) signed by the cluster CA in certDir, and client certificates
// required, from that CA and for nodeconn.ClientCN only.
//
// The certificate is issued in memory at every start and never written:
// the agent shares the cert dir of `pgkube up`/`pgkube apiserver
// --cert-dir` (it must be able to read ca.key), so there is no second
// trust root to distribute and nothing to renew on disk. The API server
// trusts it because it trusts its own CA; a kubelet's bootstrap (CSR
// signed by the controller manager) is what a multi-machine setup would
// need instead.
func ServingTLS(certDir string, hosts []string) (*tls.Config, error) {
	certPEM, err := os.ReadFile(filepath.Join(certDir, pki.CACertFile))
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(certDir, pki.CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: %w", err)
	}
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: CA in %s: %w", certDir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: CA in %s: %w", certDir, err)
	}
	signer, ok := ca.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("agent serving certificate: CA key in %s cannot sign", certDir)
	}
	leaf, err := issueServing(caCert, signer, hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("agent serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{leaf},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != nodeconn.ClientCN {
				return errors.New("only the API server may connect")
			}
			return nil
		},
	}, nil
}

func issueServing(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := "pgkube-agent"
	if len(hosts) > 0 {
		cn = hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
