package encryption

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseRefusesWhatItCannotHonour(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n"
	for name, tc := range map[string]struct{ body, want string }{
		"kms":        {"  - kms: {name: x}\n", "unsupported provider"},
		"aescbc":     {"  - aescbc: {keys: [{name: k, secret: AAAAAAAAAAAAAAAAAAAAAA==}]}\n", "unsupported provider"},
		"short key":  {"  - aesgcm: {keys: [{name: k, secret: AAAA}]}\n", "want 16, 24 or 32"},
		"not base64": {"  - aesgcm: {keys: [{name: k, secret: '!!'}]}\n", "not base64"},
		"no keys":    {"  - aesgcm: {keys: []}\n", "no keys"},
		"colon name": {"  - aesgcm: {keys: [{name: 'a:b', secret: AAAAAAAAAAAAAAAAAAAAAA==}]}\n", "without ':'"},
		"unknown":    {"  - aesgcm: {keys: [{name: k, secret: AAAAAAAAAAAAAAAAAAAAAA==}], extra: 1}\n", "unknown field"},
	} {
		_, err := Parse([]byte(head + tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
	if _, err := Parse([]byte("kind: Other\n")); err == nil {
		t.Error("a document of another kind was accepted")
	}
}

func TestNewConfigRoundTrip(t *testing.T) {
	raw, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Parse(raw)
	if err != nil {
		t.Fatalf("generated config does not parse: %v\n%s", err, raw)
	}
	if !tr.Encrypting("/secrets") || tr.Encrypting("/configmaps") {
		t.Fatal("generated config should encrypt secrets only")
	}
	sealed, err := tr.Encrypt("/secrets", "root//secrets/ns/a", []byte(`{"data":"x"}`))
	if err != nil || !bytes.HasPrefix(sealed, []byte("k8s:enc:aesgcm:v1:key1:")) {
		t.Fatalf("encrypt: %v %q", err, sealed)
	}
	plain, stale, err := tr.Decrypt("/secrets", "root//secrets/ns/a", sealed)
	if err != nil || stale || string(plain) != `{"data":"x"}` {
		t.Errorf("decrypt = %q, %v, %v", plain, stale, err)
	}
	if _, _, err := tr.Decrypt("/secrets", "root//secrets/ns/a", sealed[:len(sealed)-1]); err == nil {
		t.Error("a truncated ciphertext decrypted")
	}
	if _, stale, _ := tr.Decrypt("/secrets", "x", []byte(`{"plain":1}`)); !stale {
		t.Error("plaintext under an encrypting config should be stale")
	}
}
