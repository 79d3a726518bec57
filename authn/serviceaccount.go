package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ServiceAccountIssuer signs service-account tokens with the server's key
// and knows every public key that still verifies them, so that tokens
// signed before a key rotation stay valid until they expire.
type ServiceAccountIssuer struct {
	issuer string
	signer crypto.Signer
	alg    string
	kid    string
	keys   []verifyKey
}

type verifyKey struct {
	kid string
	alg string
	pub crypto.PublicKey
	jwk jwk
}

// NewServiceAccountIssuer returns an issuer that signs with key (RSA of at
// least 2048 bits → RS256, ECDSA P-256 → ES256; P-384 and P-521 get ES384
// and ES512 as in kube-apiserver) and names itself issuer in "iss".
// publicKeys are extra keys whose signatures are still accepted, typically
// the previous signing key's.
func NewServiceAccountIssuer(key crypto.Signer, issuer string, publicKeys ...crypto.PublicKey) (*ServiceAccountIssuer, error) {
	if key == nil {
		return nil, errors.New("service account issuer: no signing key")
	}
	if issuer == "" {
		return nil, errors.New("service account issuer: empty issuer")
	}
	i := &ServiceAccountIssuer{issuer: issuer, signer: key}
	all := append([]crypto.PublicKey{key.Public()}, publicKeys...)
	for n, pub := range all {
		alg, err := signingAlg(pub)
		if err != nil {
			return nil, fmt.Errorf("service account issuer: key %d: %w", n, err)
		}
		kid, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("service account issuer: key %d: %w", n, err)
		}
		if n == 0 {
			i.alg, i.kid = alg, kid
		}
		if i.keyByID(kid) != nil {
			continue
		}
		// Encoding now rather than in JWKS turns a malformed key into an
		// error at startup instead of a broken discovery endpoint.
		j, err := publicJWK(pub, kid, alg)
		if err != nil {
			return nil, fmt.Errorf("service account issuer: key %d: %w", n, err)
		}
		i.keys = append(i.keys, verifyKey{kid: kid, alg: alg, pub: pub, jwk: j})
	}
	return i, nil
}

// Issuer returns the "iss" the issuer signs and accepts.
func (i *ServiceAccountIssuer) Issuer() string { return i.issuer }

// KeyID returns the "kid" of the signing key.
func (i *ServiceAccountIssuer) KeyID() string { return i.kid }

func (i *ServiceAccountIssuer) keyByID(kid string) *verifyKey {
	for n := range i.keys {
		if i.keys[n].kid == kid {
			return &i.keys[n]
		}
	}
	return nil
}

// algorithms lists the JWS algorithms our keys produce, without repeats.
func (i *ServiceAccountIssuer) algorithms() []string {
	var algs []string
	for _, k := range i.keys {
		seen := false
		for _, a := range algs {
			seen = seen || a == k.alg
		}
		if !seen {
			algs = append(algs, k.alg)
		}
	}
	return algs
}

// BoundObject names an object a token is bound to: the token dies with it.
type BoundObject struct {
	Name string
	UID  string
}

// TokenClaims describes a bound service-account token to issue.
type TokenClaims struct {
	Audiences []string
	Expiry    time.Time
	// IssuedAt defaults to now; it is also the token's "nbf".
	IssuedAt          time.Time
	Namespace         string
	ServiceAccount    string
	ServiceAccountUID string
	// At most one of Pod and Secret; Node may accompany Pod (the node the
	// pod runs on) or stand alone.
	Pod, Secret, Node *BoundObject
	// WarnAfter marks when a token that was given an extended lifetime
	// should be reported as stale.
	WarnAfter *time.Time
	// ID is the "jti"; a random UUID when empty.
	ID string
}

// Extra keys kube-apiserver sets for service-account users.
const (
	PodNameKey  = "authentication.kubernetes.io/pod-name"
	PodUIDKey   = "authentication.kubernetes.io/pod-uid"
	NodeNameKey = "authentication.kubernetes.io/node-name"
	NodeUIDKey  = "authentication.kubernetes.io/node-uid"
)

// ServiceAccountUsername returns system:serviceaccount:NAMESPACE:NAME.
func ServiceAccountUsername(namespace, name string) string {
	return ServiceAccountPrefix + namespace + ":" + name
}

// saClaims is the payload of a bound token, laid out as kube-apiserver
// writes it so that clients parsing tokens (e.g. to read the pod name) work
// unchanged.
type saClaims struct {
	jwt.RegisteredClaims
	Kubernetes *k8sClaims `json:"kubernetes.io,omitempty"`
}

type k8sClaims struct {
	Namespace      string           `json:"namespace,omitempty"`
	ServiceAccount objectRef        `json:"serviceaccount"`
	Pod            *objectRef       `json:"pod,omitempty"`
	Secret         *objectRef       `json:"secret,omitempty"`
	Node           *objectRef       `json:"node,omitempty"`
	WarnAfter      *jwt.NumericDate `json:"warnafter,omitempty"`
}

type objectRef struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

func refOf(b *BoundObject, kind string) (*objectRef, error) {
	if b == nil {
		return nil, nil
	}
	if b.Name == "" || b.UID == "" {
		return nil, fmt.Errorf("bound %s needs both name and uid", kind)
	}
	return &objectRef{Name: b.Name, UID: b.UID}, nil
}

// Issue signs a bound service-account token.
func (i *ServiceAccountIssuer) Issue(c TokenClaims) (string, error) {
	switch {
	case c.Namespace == "" || c.ServiceAccount == "" || c.ServiceAccountUID == "":
		return "", errors.New("issue token: namespace, service account name and uid are required")
	case len(c.Audiences) == 0:
		return "", errors.New("issue token: at least one audience is required")
	case c.Secret != nil && (c.Pod != nil || c.Node != nil):
		return "", errors.New("issue token: a token bound to a secret cannot also be bound to a pod or node")
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	if !c.Expiry.After(iat) {
		return "", errors.New("issue token: expiry must be after the issue time")
	}
	jti := c.ID
	if jti == "" {
		var err error
		if jti, err = randomUUID(); err != nil {
			return "", fmt.Errorf("issue token: %w", err)
		}
	}
	k := &k8sClaims{
		Namespace:      c.Namespace,
		ServiceAccount: objectRef{Name: c.ServiceAccount, UID: c.ServiceAccountUID},
	}
	var err error
	if k.Pod, err = refOf(c.Pod, "pod"); err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	if k.Secret, err = refOf(c.Secret, "secret"); err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	if k.Node, err = refOf(c.Node, "node"); err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	if c.WarnAfter != nil {
		k.WarnAfter = jwt.NewNumericDate(*c.WarnAfter)
	}
	claims := saClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   ServiceAccountUsername(c.Namespace, c.ServiceAccount),
			Audience:  append(jwt.ClaimStrings(nil), c.Audiences...),
			ExpiresAt: jwt.NewNumericDate(c.Expiry),
			IssuedAt:  jwt.NewNumericDate(iat),
			NotBefore: jwt.NewNumericDate(iat),
			ID:        jti,
		},
		Kubernetes: k,
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(i.alg), claims)
	tok.Header["kid"] = i.kid
	input, err := tok.SigningString()
	if err != nil {
		return "", fmt.Errorf("issue token: encode: %w", err)
	}
	sig, err := signJWS(i.signer, i.alg, input)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// signJWS signs through crypto.Signer rather than golang-jwt's own signers,
// which need the concrete private key: that way a key held in a KMS or HSM
// works too.
func signJWS(s crypto.Signer, alg, input string) ([]byte, error) {
	var digest []byte
	var h crypto.Hash
	switch alg {
	case "RS256", "ES256":
		sum := sha256.Sum256([]byte(input))
		digest, h = sum[:], crypto.SHA256
	case "ES384":
		sum := sha512.Sum384([]byte(input))
		digest, h = sum[:], crypto.SHA384
	case "ES512":
		sum := sha512.Sum512([]byte(input))
		digest, h = sum[:], crypto.SHA512
	default:
		return nil, fmt.Errorf("sign: unsupported algorithm %s", alg)
	}
	sig, err := s.Sign(rand.Reader, digest, h)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if alg[:2] != "ES" {
		return sig, nil
	}
	// crypto.Signer returns ECDSA signatures in ASN.1; JWS wants r||s,
	// each left-padded to the curve size (RFC 7518 §3.4).
	var rs struct{ R, S *big.Int }
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sign: %s needs an ECDSA key", alg)
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 ||
		rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*size || rs.S.BitLen() > 8*size {
		return nil, errors.New("sign: signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
