package apiserver

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/pki"
	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
)

// tenantSecretNamespace holds, in the root cluster, one Secret per tenant
// with its credentials: encrypted at rest like every Secret, readable only
// by the root cluster's admins.
const tenantSecretNamespace = "kube-system"

func tenantSecretName(cluster string) string { return "tenant-" + cluster }

// tenantCredentials is what a logical cluster authenticates with.
type tenantCredentials struct {
	clientCAs *x509.CertPool
	issuer    *authn.ServiceAccountIssuer
	tokens    []authn.TokenAuthenticator
}

// tenants knows the logical clusters and their credentials. The root
// cluster's come from the certificate directory; a tenant's are read from
// its Secret on first use and kept.
type tenants struct {
	store  *storage.Store
	root   *tenantCredentials
	issuer string // the root issuer URL; tenants' are below it
	lookup authn.BoundLookup

	mu     sync.Mutex
	creds  map[string]*tenantCredentials
	exists map[string]time.Time // positive answers, with when they were read
}

// existsTTL bounds how long a deleted tenant's URLs keep working in a
// process that did not delete it.
const existsTTL = 2 * time.Second

func (t *tenants) Exists(ctx context.Context, name string) (bool, error) {
	if name == clusters.Root {
		return true, nil
	}
	t.mu.Lock()
	at, ok := t.exists[name]
	t.mu.Unlock()
	if ok && time.Since(at) < existsTTL {
		return true, nil
	}
	_, _, err := t.store.CurrentRV(ctx, name)
	if errors.Is(err, storage.ErrNoCluster) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	t.exists[name] = time.Now()
	t.mu.Unlock()
	return true, nil
}

// forget drops a deleted tenant's cached state.
func (t *tenants) forget(name string) {
	t.mu.Lock()
	delete(t.exists, name)
	delete(t.creds, name)
	t.mu.Unlock()
}

func (t *tenants) credentials(ctx context.Context, cluster string) (*tenantCredentials, error) {
	if cluster == clusters.Root {
		return t.root, nil
	}
	t.mu.Lock()
	c, ok := t.creds[cluster]
	t.mu.Unlock()
	if ok {
		return c, nil
	}
	o, err := t.store.Get(ctx, clusters.Root, storage.Key{Resource: "/secrets", Namespace: tenantSecretNamespace, Name: tenantSecretName(cluster)})
	if err != nil {
		return nil, fmt.Errorf("credentials of cluster %s: %w", cluster, err)
	}
	var sec corev1.Secret
	if err := json.Unmarshal(o.Data, &sec); err != nil {
		return nil, err
	}
	a, err := pki.LoadAuthority(pki.AuthorityPEM{CACert: sec.Data["ca.crt"], CAKey: sec.Data["ca.key"], SAKey: sec.Data["sa.key"]})
	if err != nil {
		return nil, err
	}
	issuerURL := t.issuer + "/clusters/" + cluster
	issuer, err := authn.NewServiceAccountIssuer(a.ServiceAccountKey, issuerURL)
	if err != nil {
		return nil, err
	}
	c = &tenantCredentials{clientCAs: a.ClientCAs(), issuer: issuer,
		tokens: []authn.TokenAuthenticator{authn.ServiceAccountTokens{Issuer: issuer, Lookup: t.lookup}}}
	t.mu.Lock()
	t.creds[cluster] = c
	t.mu.Unlock()
	return c, nil
}

func (t *tenants) clientCAs(ctx context.Context, cluster string) (*x509.CertPool, error) {
	c, err := t.credentials(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return c.clientCAs, nil
}

func (t *tenants) tokenAuthenticators(ctx context.Context, cluster string) ([]authn.TokenAuthenticator, error) {
	c, err := t.credentials(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return c.tokens, nil
}

func (t *tenants) issuerOf(ctx context.Context, cluster string) (*authn.ServiceAccountIssuer, error) {
	c, err := t.credentials(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return c.issuer, nil
}
