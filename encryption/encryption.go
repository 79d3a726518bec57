// Package encryption protects chosen resources at rest: object data is
// encrypted with AES-GCM before it reaches PostgreSQL, configured by
// kube-apiserver's EncryptionConfiguration file so existing configs work.
//
// The first provider listed for a resource encrypts new writes; every
// provider listed can read. Rotating a key is: add the new key first, restart,
// let re-encryption rewrite old rows, then drop the old key.
package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the subset of apiserver.config.k8s.io/v1 EncryptionConfiguration
// pgkube reads.
type Config struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Resources  []ResourceConfig `json:"resources"`
}

// ResourceConfig lists providers, first one encrypting, for some resources
// ("secrets", "configmaps", "widgets.example.com").
type ResourceConfig struct {
	Resources []string         `json:"resources"`
	Providers []ProviderConfig `json:"providers"`
}

// ProviderConfig is one provider; exactly one field is set.
type ProviderConfig struct {
	AESGCM   *KeysConfig `json:"aesgcm,omitempty"`
	Identity *struct{}   `json:"identity,omitempty"`
	// Providers pgkube does not implement are refused at load, not ignored:
	// silently storing plaintext would be worse than not starting.
	AESCBC    *KeysConfig     `json:"aescbc,omitempty"`
	Secretbox *KeysConfig     `json:"secretbox,omitempty"`
	KMS       *map[string]any `json:"kms,omitempty"`
}

// KeysConfig lists named keys, base64 encoded.
type KeysConfig struct {
	Keys []KeyConfig `json:"keys"`
}

// KeyConfig is one key.
type KeyConfig struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

const gcmPrefix = "k8s:enc:aesgcm:v1:"

// provider encrypts (if it can) and recognises its own output.
type provider struct {
	name string // key name; "" for identity
	aead cipher.AEAD
}

func (p *provider) prefix() []byte { return []byte(gcmPrefix + p.name + ":") }

// rule is the provider list of one resource.
type rule struct {
	providers []*provider // providers[0] writes
}

// Transformer encrypts and decrypts object data by storage resource
// ("group/resource", core group empty: "/secrets").
type Transformer struct {
	rules map[string]*rule
}

// Load reads an EncryptionConfiguration file.
func Load(path string) (*Transformer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption config: %w", err)
	}
	t, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("encryption config %s: %w", path, err)
	}
	return t, nil
}

// Parse reads an EncryptionConfiguration document.
func Parse(raw []byte) (*Transformer, error) {
	var c Config
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return nil, err
	}
	if c.Kind != "EncryptionConfiguration" {
		return nil, fmt.Errorf("kind is %q, want EncryptionConfiguration", c.Kind)
	}
	t := &Transformer{rules: map[string]*rule{}}
	for i, rc := range c.Resources {
		if len(rc.Providers) == 0 {
			return nil, fmt.Errorf("resources[%d]: no providers", i)
		}
		r := &rule{}
		for j, pc := range rc.Providers {
			ps, err := providersOf(pc)
			if err != nil {
				return nil, fmt.Errorf("resources[%d].providers[%d]: %w", i, j, err)
			}
			r.providers = append(r.providers, ps...)
		}
		for _, res := range rc.Resources {
			key := storageResource(res)
			if _, dup := t.rules[key]; dup {
				return nil, fmt.Errorf("resource %q is listed twice", res)
			}
			t.rules[key] = r
		}
	}
	return t, nil
}

// storageResource turns "secrets" or "widgets.example.com" into the storage
// key "/secrets" or "example.com/widgets".
func storageResource(res string) string {
	name, group, _ := strings.Cut(res, ".")
	return group + "/" + name
}

func providersOf(pc ProviderConfig) ([]*provider, error) {
	switch {
	case pc.Identity != nil:
		return []*provider{{}}, nil
	case pc.AESGCM != nil:
		if len(pc.AESGCM.Keys) == 0 {
			return nil, errors.New("aesgcm: no keys")
		}
		var ps []*provider
		for _, k := range pc.AESGCM.Keys {
			secret, err := base64.StdEncoding.DecodeString(k.Secret)
			if err != nil {
				return nil, fmt.Errorf("aesgcm key %q: secret is not base64: %w", k.Name, err)
			}
			if n := len(secret); n != 16 && n != 24 && n != 32 {
				return nil, fmt.Errorf("aesgcm key %q: %d bytes, want 16, 24 or 32", k.Name, n)
			}
			if k.Name == "" || strings.Contains(k.Name, ":") {
				return nil, fmt.Errorf("aesgcm key name %q: must be non-empty without ':'", k.Name)
			}
			block, err := aes.NewCipher(secret)
			if err != nil {
				return nil, err
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return nil, err
			}
			ps = append(ps, &provider{name: k.Name, aead: aead})
		}
		return ps, nil
	default:
		return nil, errors.New("unsupported provider (pgkube implements aesgcm and identity)")
	}
}

// Encrypting reports whether resource's data is transformed at all.
func (t *Transformer) Encrypting(resource string) bool {
	if t == nil {
		return false
	}
	_, ok := t.rules[resource]
	return ok
}

// Encrypt turns plain data of the object at location (which binds the
// ciphertext to it: a row copied elsewhere does not decrypt) into its
// stored form.
func (t *Transformer) Encrypt(resource, location string, plain []byte) ([]byte, error) {
	r := t.rule(resource)
	if r == nil || r.providers[0].aead == nil {
		return plain, nil
	}
	p := r.providers[0]
	prefix := p.prefix()
	out := make([]byte, len(prefix), len(prefix)+p.aead.NonceSize()+len(plain)+p.aead.Overhead())
	copy(out, prefix)
	nonce := out[len(out) : len(out)+p.aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	out = out[:len(out)+len(nonce)]
	return p.aead.Seal(out, nonce, plain, []byte(location)), nil
}

// Decrypt turns stored data back into plain data. stale reports that it was
// not written by the resource's current first provider, so re-encryption
// should rewrite it.
func (t *Transformer) Decrypt(resource, location string, stored []byte) (plain []byte, stale bool, err error) {
	r := t.rule(resource)
	if !bytes.HasPrefix(stored, []byte("k8s:enc:")) {
		// Plaintext: written before encryption was configured, or by
		// identity.
		return stored, r != nil && r.providers[0].aead != nil, nil
	}
	if r == nil {
		return nil, false, fmt.Errorf("decrypt %s: data is encrypted but no provider is configured for it", location)
	}
	for i, p := range r.providers {
		if p.aead == nil || !bytes.HasPrefix(stored, p.prefix()) {
			continue
		}
		body := stored[len(p.prefix()):]
		if len(body) < p.aead.NonceSize() {
			return nil, false, fmt.Errorf("decrypt %s: ciphertext too short", location)
		}
		plain, err := p.aead.Open(nil, body[:p.aead.NonceSize()], body[p.aead.NonceSize():], []byte(location))
		if err != nil {
			return nil, false, fmt.Errorf("decrypt %s with key %q: %w", location, p.name, err)
		}
		return plain, i != 0, nil
	}
	return nil, false, fmt.Errorf("decrypt %s: no configured key matches the stored data", location)
}

func (t *Transformer) rule(resource string) *rule {
	if t == nil {
		return nil
	}
	return t.rules[resource]
}

// NewConfig returns an EncryptionConfiguration that encrypts Secrets with a
// fresh random AES-256 key, for `pgkube up`'s first start.
func NewConfig() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	c := Config{APIVersion: "apiserver.config.k8s.io/v1", Kind: "EncryptionConfiguration", Resources: []ResourceConfig{{
		Resources: []string{"secrets"},
		Providers: []ProviderConfig{
			{AESGCM: &KeysConfig{Keys: []KeyConfig{{Name: "key1", Secret: base64.StdEncoding.EncodeToString(key)}}}},
			{Identity: &struct{}{}},
		},
	}}}
	return yaml.Marshal(c)
}

// Resources lists the storage resources the configuration covers.
func (t *Transformer) Resources() []string {
	out := make([]string, 0, len(t.rules))
	for r := range t.rules {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
