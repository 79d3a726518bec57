package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Permissions of what Ensure writes: private keys for the owner only,
// certificates for anyone (they are public).
const (
	keyPerm  = 0o600
	certPerm = 0o644
)

// writeFileAtomic replaces dir/name with data so that a reader, or a
// process that crashes half-way, sees either the old file or the new one,
// never a torn mixture.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	_, err = f.Write(data)
	if err == nil {
		// Chmod rather than the create mode, which the umask would alter.
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// parseCert returns the first certificate in a PEM file.
func parseCert(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKey accepts PKCS#8 as written here and the PKCS#1 and SEC 1 forms
// openssl and older tools write, so an operator can drop in their own key.
func parseKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}

// readPair reads a certificate and its key and checks they belong together.
func readPair(dir, certName, keyName string) (certPEM, keyPEM []byte, cert *x509.Certificate, key crypto.Signer, err error) {
	if certPEM, err = os.ReadFile(filepath.Join(dir, certName)); err != nil {
		return nil, nil, nil, nil, err
	}
	if keyPEM, err = os.ReadFile(filepath.Join(dir, keyName)); err != nil {
		return nil, nil, nil, nil, err
	}
	if cert, err = parseCert(certPEM); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", certName, err)
	}
	if key, err = parseKey(keyPEM); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", keyName, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, nil, nil, nil, fmt.Errorf("%s does not match %s", keyName, certName)
	}
	return certPEM, keyPEM, cert, key, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
