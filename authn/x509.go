package authn

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pgkube/pgkube/clusters"
)

// CredentialIDKey is the User.Extra key naming the credential a user
// authenticated with, as kube-apiserver records it for audit.
const CredentialIDKey = "authentication.kubernetes.io/credential-id"

// ClientCerts authenticates requests by TLS client certificate: the user is
// the leaf's Subject CommonName and its groups the Subject Organizations
// plus system:authenticated.
//
// It trusts the TLS layer to have verified the chain: the server must be
// configured with ClientAuth tls.VerifyClientCertIfGiven and ClientCAs set
// to the client CA. The handshake then refuses certificates that are
// expired, not yet valid, lack the client-auth usage or come from another
// CA, so such certificates never reach Authenticate; only
// ConnectionState.VerifiedChains is consulted, never PeerCertificates, so a
// server that skips verification authenticates nobody by certificate.
//
// With Roots set, each logical cluster trusts its own CA instead: the
// server then only requests certificates (tls.RequestClientCert) and the
// chain is verified here against the CA of the cluster the request
// addresses, so a tenant's certificate is worth nothing in another cluster.
type ClientCerts struct {
	Roots func(ctx context.Context, cluster string) (*x509.CertPool, error)
	// Verified, if set, remembers chains verified against a cluster's
	// roots: a client sends the same certificate with every request, and
	// a signature check per request is most of what authenticating costs.
	Verified *VerifyCache
}

// VerifyCache remembers which certificates verified against which roots,
// until the certificate expires. It holds at most verifyCacheSize entries.
type VerifyCache struct {
	mu sync.Mutex
	m  map[chainKey]time.Time
}

type chainKey struct {
	sum   [sha256.Size]byte
	roots *x509.CertPool
}

const verifyCacheSize = 4096

// NewVerifyCache returns an empty cache.
func NewVerifyCache() *VerifyCache { return &VerifyCache{m: map[chainKey]time.Time{}} }

func (c *VerifyCache) known(k chainKey, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.m[k]
	return ok && now.Before(until)
}

func (c *VerifyCache) add(k chainKey, until time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= verifyCacheSize {
		for old := range c.m { // map order is random: evict one at random
			delete(c.m, old)
			break
		}
	}
	c.m[k] = until
}

// Authenticate implements Authenticator.
func (c ClientCerts) Authenticate(r *http.Request) (*User, bool, error) {
	if r.TLS == nil {
		return nil, false, nil
	}
	var leaf *x509.Certificate
	if c.Roots == nil {
		if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return nil, false, nil
		}
		leaf = r.TLS.VerifiedChains[0][0]
	} else {
		if len(r.TLS.PeerCertificates) == 0 {
			return nil, false, nil
		}
		roots, err := c.Roots(r.Context(), clusters.From(r.Context()))
		if err != nil {
			return nil, false, err
		}
		leaf = r.TLS.PeerCertificates[0]
		// The key covers the whole chain sent, so a known leaf with
		// other intermediates is verified again.
		h := sha256.New()
		for _, c := range r.TLS.PeerCertificates {
			h.Write(c.Raw)
		}
		key := chainKey{roots: roots}
		h.Sum(key.sum[:0])
		now := time.Now()
		if !c.Verified.known(key, now) {
			inter := x509.NewCertPool()
			for _, ic := range r.TLS.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				return nil, false, fmt.Errorf("client certificate: %w", err)
			}
			until := leaf.NotAfter
			for _, c := range chains[0] {
				if c.NotAfter.Before(until) {
					until = c.NotAfter
				}
			}
			c.Verified.add(key, until)
		}
	}
	// A certificate without a name identifies nobody; like kube-apiserver,
	// let other authenticators decide.
	if leaf.Subject.CommonName == "" {
		return nil, false, nil
	}
	sum := sha256.Sum256(leaf.Raw)
	groups := append([]string(nil), leaf.Subject.Organization...)
	if !slices.Contains(groups, AllAuthenticated) {
		groups = append(groups, AllAuthenticated)
	}
	return &User{
		Name:   leaf.Subject.CommonName,
		Groups: groups,
		Extra:  map[string][]string{CredentialIDKey: {"X509SHA256=" + hex.EncodeToString(sum[:])}},
	}, true, nil
}
