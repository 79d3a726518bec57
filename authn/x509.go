package authn

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
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
type ClientCerts struct{}

// Authenticate implements Authenticator.
func (ClientCerts) Authenticate(r *http.Request) (*User, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false, nil
	}
	leaf := r.TLS.VerifiedChains[0][0]
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
