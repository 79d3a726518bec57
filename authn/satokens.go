package authn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BoundLookup reports the current state of an object a token refers to.
// resource is "serviceaccounts", "pods", "secrets" or "nodes"; namespace is
// empty for nodes. found=false with a nil error means the object does not
// exist; an error means the lookup itself failed.
type BoundLookup interface {
	LookupUID(ctx context.Context, resource, namespace, name string) (uid string, deleting bool, found bool, err error)
}

// ServiceAccountTokens validates tokens signed by Issuer. Each token is
// checked against the live objects through Lookup, so deleting the service
// account, or the pod or secret the token is bound to, revokes it at once.
type ServiceAccountTokens struct {
	Issuer *ServiceAccountIssuer
	Lookup BoundLookup
}

// AuthenticateToken implements TokenAuthenticator. A token that is not a
// JWT or names another issuer is not ours (ok=false, nil error); one that
// names our issuer and fails any check is an error.
func (t ServiceAccountTokens) AuthenticateToken(ctx context.Context, token string) (*User, []string, bool, error) {
	if t.Issuer == nil {
		return nil, nil, false, nil
	}
	iss, ok := peekIssuer(token)
	if !ok || iss != t.Issuer.issuer {
		return nil, nil, false, nil
	}
	u, auds, err := t.validate(ctx, token)
	if err != nil {
		return nil, nil, false, fmt.Errorf("service account token: %w", err)
	}
	return u, auds, true, nil
}

func (t ServiceAccountTokens) validate(ctx context.Context, token string) (*User, []string, error) {
	i := t.Issuer
	// Claims are checked below by hand: golang-jwt applies one leeway to
	// exp, nbf and iat alike, and expiry should get none.
	p := jwt.NewParser(jwt.WithValidMethods(i.algorithms()), jwt.WithoutClaimsValidation())
	var c saClaims
	if _, err := p.ParseWithClaims(token, &c, i.keyFunc); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	if c.Issuer != i.issuer {
		return nil, nil, fmt.Errorf("issuer %q is not %q", c.Issuer, i.issuer)
	}
	if err := checkTimes(now, c.ExpiresAt, c.NotBefore, c.IssuedAt); err != nil {
		return nil, nil, err
	}
	wanted := AudiencesFrom(ctx)
	auds := intersectAudiences(c.Audience, wanted)
	if len(auds) == 0 {
		return nil, nil, fmt.Errorf("token audiences %q are not among the wanted %q", []string(c.Audience), wanted)
	}
	k := c.Kubernetes
	if k == nil || k.Namespace == "" || k.ServiceAccount.Name == "" || k.ServiceAccount.UID == "" {
		return nil, nil, errors.New("token lacks the kubernetes.io service account claims")
	}
	if c.Subject != ServiceAccountUsername(k.Namespace, k.ServiceAccount.Name) {
		return nil, nil, errors.New("token subject does not match its service account")
	}
	if err := t.checkBound(ctx, k); err != nil {
		return nil, nil, err
	}

	u := &User{
		Name:   ServiceAccountUsername(k.Namespace, k.ServiceAccount.Name),
		UID:    k.ServiceAccount.UID,
		Groups: []string{ServiceAccountGroup, ServiceAccountGroup + ":" + k.Namespace},
		Extra:  map[string][]string{},
	}
	if k.Pod != nil {
		u.Extra[PodNameKey] = []string{k.Pod.Name}
		u.Extra[PodUIDKey] = []string{k.Pod.UID}
	}
	if k.Node != nil && k.Node.Name != "" {
		u.Extra[NodeNameKey] = []string{k.Node.Name}
		if k.Node.UID != "" {
			u.Extra[NodeUIDKey] = []string{k.Node.UID}
		}
	}
	if c.ID != "" {
		u.Extra[CredentialIDKey] = []string{"JTI=" + c.ID}
	}
	if len(u.Extra) == 0 {
		u.Extra = nil
	}
	return u, auds, nil
}

// keyFunc picks the verifying key by "kid". A token without one is tried
// against every key, as kube-apiserver does for tokens from before key ids.
func (i *ServiceAccountIssuer) keyFunc(tok *jwt.Token) (any, error) {
	kid, _ := tok.Header["kid"].(string)
	alg := tok.Method.Alg()
	if kid != "" {
		k := i.keyByID(kid)
		if k == nil {
			return nil, fmt.Errorf("no key with id %q", kid)
		}
		if k.alg != alg {
			return nil, fmt.Errorf("key %q signs with %s, not %s", kid, k.alg, alg)
		}
		return k.pub, nil
	}
	var set jwt.VerificationKeySet
	for _, k := range i.keys {
		if k.alg == alg {
			set.Keys = append(set.Keys, k.pub)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key for algorithm %s", alg)
	}
	return set, nil
}

// checkTimes enforces exp strictly and allows clockSkew on nbf and iat.
func checkTimes(now time.Time, exp, nbf, iat *jwt.NumericDate) error {
	if exp == nil {
		return errors.New("token has no expiry")
	}
	if !now.Before(exp.Time) {
		return fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf != nil && nbf.After(now.Add(clockSkew)) {
		return fmt.Errorf("token is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if iat != nil && iat.After(now.Add(clockSkew)) {
		return fmt.Errorf("token is issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkBound makes sure every object the token names still exists with the
// UID it was issued for and is not being deleted: a recreated object of the
// same name is a different object and must not inherit the token.
func (t ServiceAccountTokens) checkBound(ctx context.Context, k *k8sClaims) error {
	if t.Lookup == nil {
		return errors.New("no lookup configured to check the service account")
	}
	type check struct {
		resource, namespace string
		ref                 *objectRef
	}
	checks := []check{{"serviceaccounts", k.Namespace, &k.ServiceAccount}}
	if k.Secret != nil {
		checks = append(checks, check{"secrets", k.Namespace, k.Secret})
	}
	if k.Pod != nil {
		checks = append(checks, check{"pods", k.Namespace, k.Pod})
	}
	// The node of a pod-bound token is informational: the pod check already
	// ties the token's life to the pod. A node-only token lives with the node.
	if k.Node != nil && k.Pod == nil {
		checks = append(checks, check{"nodes", "", k.Node})
	}
	for _, c := range checks {
		if c.ref.Name == "" || c.ref.UID == "" {
			return fmt.Errorf("token names a %s without name or uid", c.resource)
		}
		uid, deleting, found, err := t.Lookup.LookupUID(ctx, c.resource, c.namespace, c.ref.Name)
		what := c.resource + " " + c.ref.Name
		if c.namespace != "" {
			what = c.resource + " " + c.namespace + "/" + c.ref.Name
		}
		switch {
		case err != nil:
			return fmt.Errorf("look up %s: %w", what, err)
		case !found:
			return fmt.Errorf("%s no longer exists", what)
		case uid != c.ref.UID:
			return fmt.Errorf("%s has uid %s, token was issued for %s", what, uid, c.ref.UID)
		case deleting:
			return fmt.Errorf("%s is being deleted", what)
		}
	}
	return nil
}
