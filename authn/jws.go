package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// maxTokenLen bounds the tokens worth decoding. Real service-account and
// ID tokens are a few KiB; anything far larger is garbage or an attempt to
// make the server spend time on base64 and JSON.
const maxTokenLen = 16 << 10

// clockSkew is how far in the future iat and nbf may lie, to tolerate
// issuers whose clocks run a little ahead. Expiry gets no such grace.
const clockSkew = 60 * time.Second

// peekIssuer returns the unverified "iss" of a compact JWS. ok is false when
// token does not even look like one, which tells an authenticator the token
// is not its kind before any signature work. The issuer is only a routing
// hint: it is trusted only once the signature has been checked.
func peekIssuer(token string) (iss string, ok bool) {
	if len(token) > maxTokenLen || strings.Count(token, ".") != 2 {
		return "", false
	}
	header, rest, _ := strings.Cut(token, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	if header == "" || payload == "" || !isBase64URL(header) || !isBase64URL(sig) {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", false
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return "", false
	}
	return c.Iss, true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// KeyID derives the JWS "kid" of a public key the way kube-apiserver does:
// the unpadded base64url SHA-256 of its PKIX DER encoding. Keeping the same
// derivation lets relying parties that cached kube-apiserver's JWKS match
// our tokens, and the hash does not reveal the key.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// jwk is one JSON Web Key (RFC 7517) holding a public RSA or EC key.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

var curvesByName = map[string]elliptic.Curve{
	"P-256": elliptic.P256(),
	"P-384": elliptic.P384(),
	"P-521": elliptic.P521(),
}

func publicJWK(pub crypto.PublicKey, kid, alg string) (jwk, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwk{
			Kty: "RSA", Kid: kid, Use: "sig", Alg: alg,
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		}, nil
	case *ecdsa.PublicKey:
		point, err := k.Bytes()
		if err != nil {
			return jwk{}, fmt.Errorf("encode EC key: %w", err)
		}
		// Uncompressed point: 0x04 || X || Y, coordinates of equal length.
		size := (len(point) - 1) / 2
		return jwk{
			Kty: "EC", Kid: kid, Use: "sig", Alg: alg,
			Crv: k.Curve.Params().Name,
			X:   base64.RawURLEncoding.EncodeToString(point[1 : 1+size]),
			Y:   base64.RawURLEncoding.EncodeToString(point[1+size:]),
		}, nil
	}
	return jwk{}, fmt.Errorf("unsupported public key type %T", pub)
}

// minRSABits is the smallest RSA modulus accepted from a JWKS; smaller keys
// are factorable in practice.
const minRSABits = 2048

// publicKey decodes the key a JWK holds.
func (k jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("RSA key: bad modulus")
		}
		e, err := base64.RawURLEncoding.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("RSA key: bad exponent")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key: %d-bit modulus is below %d bits", pub.N.BitLen(), minRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, errors.New("RSA key: bad exponent")
		}
		return pub, nil
	case "EC":
		curve, ok := curvesByName[k.Crv]
		if !ok {
			return nil, fmt.Errorf("EC key: unsupported curve %q", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, errors.New("EC key: bad coordinates")
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("EC key: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}

// signingAlg is the one JWS algorithm a service-account key signs with,
// the same choice kube-apiserver makes.
func signingAlg(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits is below %d", k.N.BitLen(), minRSABits)
		}
		return "RS256", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("unsupported EC curve %s", k.Curve.Params().Name)
	}
	return "", fmt.Errorf("unsupported key type %T, want RSA or ECDSA", pub)
}

// keyFitsAlg reports whether a token signed with alg could verify with pub;
// golang-jwt would reject the mismatch too, but filtering first keeps the
// error about the key set rather than about a key type.
func keyFitsAlg(pub crypto.PublicKey, alg string) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	}
	return false
}
