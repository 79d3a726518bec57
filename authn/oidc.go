package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OIDCOptions configures an OIDC ID-token authenticator, mirroring
// kube-apiserver's --oidc-* flags.
type OIDCOptions struct {
	// IssuerURL must be https and equal the tokens' "iss" exactly.
	IssuerURL string
	// ClientID must be among the tokens' audiences.
	ClientID string
	// CAFile optionally names a PEM bundle to trust for the issuer's TLS
	// instead of the system roots. Ignored when HTTPClient is set.
	CAFile string
	// UsernameClaim names the claim holding the user name; "sub" if empty.
	UsernameClaim string
	// UsernamePrefix is prepended to user names. When empty and the claim
	// is not "email", it defaults to IssuerURL+"#" so that subjects from
	// different issuers cannot collide with each other or with local
	// users; "-" means no prefix.
	UsernamePrefix string
	// GroupsClaim optionally names a claim holding a group name or a list
	// of them; GroupsPrefix is prepended to each.
	GroupsClaim  string
	GroupsPrefix string
	// HTTPClient fetches discovery and keys; nil builds one from CAFile.
	HTTPClient *http.Client
}

// oidcAlgorithms are the signing algorithms accepted from an OIDC issuer.
var oidcAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}

const (
	// oidcRefetchInterval bounds how often an issuer is contacted: a flood
	// of tokens with made-up key ids must not become a flood of requests
	// to the issuer.
	oidcRefetchInterval = 10 * time.Second
	// oidcKeysMaxAge makes keys the issuer has withdrawn stop verifying
	// within this long, even if no token ever names an unknown key.
	oidcKeysMaxAge = time.Hour
	// oidcFetchTimeout bounds one discovery or JWKS request.
	oidcFetchTimeout = 10 * time.Second
)

// OIDC authenticates OpenID Connect ID tokens. Discovery and keys are
// fetched on first use, not at construction, so an unreachable issuer fails
// its tokens rather than the server's start. Its tokens are audience-bound
// to ClientID, not to the API audiences: wrap it in AudienceAgnostic.
type OIDC struct {
	issuer         string
	clientID       string
	usernameClaim  string
	usernamePrefix string
	groupsClaim    string
	groupsPrefix   string
	client         *http.Client
	now            func() time.Time

	// fetching serializes network fetches without holding mu, so that
	// tokens with known keys verify while a fetch is under way.
	fetching chan struct{}

	mu          sync.Mutex
	jwksURI     string // from discovery; empty until it succeeds
	keys        []oidcKey
	keysFetched time.Time // last successful JWKS fetch
	lastAttempt time.Time // last fetch attempt, successful or not
	lastErr     error     // error of the last attempt
}

type oidcKey struct {
	kid string
	alg string // from the JWK; empty means any algorithm fitting the key
	pub any
}

// NewOIDC validates opts and returns an authenticator; it makes no network
// request.
func NewOIDC(opts OIDCOptions) (*OIDC, error) {
	u, err := url.Parse(opts.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("oidc: issuer URL %q must be an https URL", opts.IssuerURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc: issuer URL %q must not have a query or fragment", opts.IssuerURL)
	}
	if opts.ClientID == "" {
		return nil, errors.New("oidc: client ID is required")
	}
	o := &OIDC{
		issuer:         opts.IssuerURL,
		clientID:       opts.ClientID,
		usernameClaim:  opts.UsernameClaim,
		usernamePrefix: opts.UsernamePrefix,
		groupsClaim:    opts.GroupsClaim,
		groupsPrefix:   opts.GroupsPrefix,
		client:         opts.HTTPClient,
		now:            time.Now,
		fetching:       make(chan struct{}, 1),
	}
	if o.usernameClaim == "" {
		o.usernameClaim = "sub"
	}
	switch {
	case o.usernamePrefix == "-":
		o.usernamePrefix = ""
	case o.usernamePrefix == "" && o.usernameClaim != "email":
		o.usernamePrefix = o.issuer + "#"
	}
	if o.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("oidc: CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("oidc: CA file %s holds no PEM certificates", opts.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		o.client = &http.Client{Transport: tr}
	}
	return o, nil
}

// AuthenticateToken implements TokenAuthenticator. Tokens naming another
// issuer are not ours (ok=false); it returns nil audiences.
func (o *OIDC) AuthenticateToken(ctx context.Context, token string) (*User, []string, bool, error) {
	iss, ok := peekIssuer(token)
	if !ok || iss != o.issuer {
		return nil, nil, false, nil
	}
	u, err := o.validate(ctx, token)
	if err != nil {
		return nil, nil, false, fmt.Errorf("oidc: %w", err)
	}
	return u, nil, true, nil
}

func (o *OIDC) validate(ctx context.Context, token string) (*User, error) {
	p := jwt.NewParser(jwt.WithValidMethods(oidcAlgorithms), jwt.WithoutClaimsValidation())
	claims := jwt.MapClaims{}
	_, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return o.verificationKeys(ctx, kid, t.Method.Alg())
	})
	if err != nil {
		return nil, err
	}

	if iss, _ := claims["iss"].(string); iss != o.issuer {
		return nil, fmt.Errorf("issuer %q is not %q", iss, o.issuer)
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return nil, fmt.Errorf("aud claim: %w", err)
	}
	if !slices.Contains(aud, o.clientID) {
		return nil, fmt.Errorf("token audiences %q do not include the client ID %q", []string(aud), o.clientID)
	}
	exp, errExp := claims.GetExpirationTime()
	nbf, errNbf := claims.GetNotBefore()
	iat, errIat := claims.GetIssuedAt()
	if err := errors.Join(errExp, errNbf, errIat); err != nil {
		return nil, fmt.Errorf("time claims: %w", err)
	}
	if err := checkTimes(o.now(), exp, nbf, iat); err != nil {
		return nil, err
	}

	name, err := o.username(claims)
	if err != nil {
		return nil, err
	}
	groups, err := o.groups(claims)
	if err != nil {
		return nil, err
	}
	return &User{Name: name, Groups: groups}, nil
}

func (o *OIDC) username(claims jwt.MapClaims) (string, error) {
	name, ok := claims[o.usernameClaim].(string)
	if !ok || name == "" {
		return "", fmt.Errorf("username claim %q is missing or not a non-empty string", o.usernameClaim)
	}
	if o.usernameClaim == "email" {
		// An unverified address may belong to someone else; issuers that do
		// not say are trusted, as in kube-apiserver.
		if v, present := claims["email_verified"]; present {
			if verified, isBool := v.(bool); !isBool || !verified {
				return "", errors.New("email is not verified")
			}
		}
	}
	return o.usernamePrefix + name, nil
}

func (o *OIDC) groups(claims jwt.MapClaims) ([]string, error) {
	if o.groupsClaim == "" {
		return nil, nil
	}
	v, present := claims[o.groupsClaim]
	if !present {
		return nil, nil
	}
	var groups []string
	// A single string is accepted because some issuers put a role name
	// there instead of a list.
	switch g := v.(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, e := range g {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("groups claim %q holds a non-string", o.groupsClaim)
			}
			groups = append(groups, s)
		}
	default:
		return nil, fmt.Errorf("groups claim %q is neither a string nor a list", o.groupsClaim)
	}
	for n := range groups {
		groups[n] = o.groupsPrefix + groups[n]
	}
	return groups, nil
}

// discoveryURL is where the issuer's OpenID configuration lives (OIDC
// Discovery §4: a trailing slash on the issuer is not doubled).
func (o *OIDC) discoveryURL() string {
	return strings.TrimSuffix(o.issuer, "/") + "/.well-known/openid-configuration"
}
