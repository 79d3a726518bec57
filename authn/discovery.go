package authn

import (
	"encoding/json"
	"fmt"
)

// OpenIDConfiguration returns the OIDC discovery document for the
// service-account issuer, served at
// <issuer>/.well-known/openid-configuration so that external systems (cloud
// IAM, Vault) can verify our tokens as ID tokens. jwksURI is where JWKS is
// served.
func (i *ServiceAccountIssuer) OpenIDConfiguration(jwksURI string) []byte {
	doc := struct {
		Issuer        string   `json:"issuer"`
		JWKSURI       string   `json:"jwks_uri"`
		ResponseTypes []string `json:"response_types_supported"`
		SubjectTypes  []string `json:"subject_types_supported"`
		SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
	}{
		Issuer:  i.issuer,
		JWKSURI: jwksURI,
		// We only ever mint ID-token-shaped JWTs, and the subject is the
		// same for every relying party.
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
		SigningAlgs:   i.algorithms(),
	}
	return mustJSON(doc)
}

// JWKS returns the JSON Web Key Set of every key that verifies our tokens.
func (i *ServiceAccountIssuer) JWKS() []byte {
	set := jwkSet{Keys: []jwk{}}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, k.jwk)
	}
	return mustJSON(set)
}

// mustJSON marshals values made only of strings and string slices, which
// cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return b
}
