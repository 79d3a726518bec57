package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxOIDCDocument bounds discovery and JWKS responses read into memory.
const maxOIDCDocument = 1 << 20

// verificationKeys returns the keys that may have signed a token with the
// given kid and alg, fetching discovery and keys first if needed.
func (o *OIDC) verificationKeys(ctx context.Context, kid, alg string) (any, error) {
	keys, fetched := o.cachedKeys()
	stale := keys == nil || o.now().Sub(fetched) > oidcKeysMaxAge
	if stale || (kid != "" && !hasKid(keys, kid)) {
		fresh, err := o.refresh(ctx)
		if err != nil && fresh == nil {
			return nil, err
		}
		keys = fresh
	}
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if (k.alg == "" || k.alg == alg) && keyFitsAlg(k.pub, alg) {
			set.Keys = append(set.Keys, k.pub)
		}
	}
	if len(set.Keys) == 0 {
		if kid != "" {
			return nil, fmt.Errorf("issuer has no %s key with id %q", alg, kid)
		}
		return nil, fmt.Errorf("issuer has no %s key", alg)
	}
	return set, nil
}

func (o *OIDC) cachedKeys() ([]oidcKey, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys, o.keysFetched
}

func hasKid(keys []oidcKey, kid string) bool {
	for _, k := range keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// refresh fetches discovery (until it once succeeds) and the JWKS, at most
// once per oidcRefetchInterval. Callers arriving within the interval get
// the current keys, nil if there are none, and the last error. The keys
// are kept when a refetch fails, so an issuer outage does not stop tokens
// signed with keys already known.
func (o *OIDC) refresh(ctx context.Context) ([]oidcKey, error) {
	select {
	case o.fetching <- struct{}{}:
		defer func() { <-o.fetching }()
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for issuer keys: %w", ctx.Err())
	}

	o.mu.Lock()
	now := o.now()
	if !o.lastAttempt.IsZero() && now.Sub(o.lastAttempt) < oidcRefetchInterval {
		keys, err := o.keys, o.lastErr
		o.mu.Unlock()
		if keys == nil && err == nil {
			err = errors.New("issuer keys are not available yet")
		}
		return keys, err
	}
	o.lastAttempt = now
	jwksURI := o.jwksURI
	o.mu.Unlock()

	// The fetch outlives a request that gives up: its result serves every
	// later token, and the timeout still bounds it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), oidcFetchTimeout)
	defer cancel()
	var err error
	if jwksURI == "" {
		jwksURI, err = o.discover(fctx)
	}
	var keys []oidcKey
	if err == nil {
		keys, err = o.fetchKeys(fctx, jwksURI)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastErr = err
	if err != nil {
		return o.keys, err
	}
	o.jwksURI = jwksURI
	o.keys = keys
	o.keysFetched = now
	return keys, nil
}

func (o *OIDC) discover(ctx context.Context) (string, error) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := o.getJSON(ctx, o.discoveryURL(), &doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	// OIDC Discovery §4.3: a document for another issuer could let that
	// issuer's keys vouch for ours.
	if doc.Issuer != o.issuer {
		return "", fmt.Errorf("discovery: document is for issuer %q, not %q", doc.Issuer, o.issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("discovery: jwks_uri %q is not an https URL", doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

// fetchKeys loads the JWKS, skipping keys it cannot use (encryption keys,
// symmetric keys, unsupported curves) rather than failing on them, since
// issuers commonly publish keys for other purposes alongside.
func (o *OIDC) fetchKeys(ctx context.Context, jwksURI string) ([]oidcKey, error) {
	var set jwkSet
	if err := o.getJSON(ctx, jwksURI, &set); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	keys := []oidcKey{}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			continue
		}
		keys = append(keys, oidcKey{kid: k.Kid, alg: k.Alg, pub: pub})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keys: %s has no usable signing key", jwksURI)
	}
	return keys, nil
}

func (o *OIDC) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOIDCDocument+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxOIDCDocument {
		return fmt.Errorf("GET %s: response larger than %d bytes", u, maxOIDCDocument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
