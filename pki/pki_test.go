package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustEnsure(t *testing.T, dir string, opts Options) *Bundle {
	t.Helper()
	b, err := Ensure(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	b1 := mustEnsure(t, dir, Options{})

	if b1.CA.Subject.CommonName != "pgkube-ca" || !b1.CA.IsCA {
		t.Fatalf("CA subject %v IsCA=%v", b1.CA.Subject, b1.CA.IsCA)
	}
	if k, ok := b1.CA.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("CA key is %T, want ECDSA P-256", b1.CA.PublicKey)
	}
	if life := b1.CA.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Fatalf("CA valid for only %v", life)
	}
	if life := b1.ServingCert.Leaf.NotAfter.Sub(time.Now()); life < 360*24*time.Hour || life > 366*24*time.Hour {
		t.Fatalf("serving certificate valid for %v, want a year", life)
	}
	sa, ok := b1.ServiceAccountKey.(*rsa.PrivateKey)
	if !ok || sa.N.BitLen() != 2048 {
		t.Fatalf("service account key is %T, want RSA 2048", b1.ServiceAccountKey)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, SAPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := encodePublicKey(sa.Public()); !bytes.Equal(pubPEM, want) {
		t.Fatal("sa.pub does not hold the service account public key")
	}
	saPEM, _ := os.ReadFile(filepath.Join(dir, SAKeyFile))
	if !bytes.HasPrefix(saPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatal("sa.key is not PKCS#8 PEM")
	}

	for name, want := range map[string]fs.FileMode{
		CACertFile: 0o644, CAKeyFile: 0o600, ServingCertFile: 0o644, ServingKeyFile: 0o600,
		SAKeyFile: 0o600, SAPubFile: 0o644, AdminCertFile: 0o644, AdminKeyFile: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}

	b2 := mustEnsure(t, dir, Options{})
	if !bytes.Equal(b1.CAPEM, b2.CAPEM) {
		t.Fatal("second Ensure made a new CA")
	}
	if !bytes.Equal(b1.ServingCert.Certificate[0], b2.ServingCert.Certificate[0]) {
		t.Fatal("second Ensure re-issued a serving certificate that was fine")
	}
	if !bytes.Equal(b1.AdminCertPEM, b2.AdminCertPEM) {
		t.Fatal("second Ensure re-issued the admin certificate")
	}
	if !sa.Equal(b2.ServiceAccountKey) {
		t.Fatal("second Ensure made a new service account key")
	}

	b3, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b3.CAPEM, b1.CAPEM) || !bytes.Equal(b3.ServingCert.Certificate[0], b1.ServingCert.Certificate[0]) ||
		!bytes.Equal(b3.AdminKeyPEM, b1.AdminKeyPEM) || !sa.Equal(b3.ServiceAccountKey) {
		t.Fatal("Load returned something other than what Ensure wrote")
	}
	if _, _, err := b3.IssueClient("x", nil, time.Hour); err != nil {
		t.Fatalf("loaded bundle cannot issue: %v", err)
	}
}

func TestServingCertificate(t *testing.T) {
	dir := t.TempDir()
	b := mustEnsure(t, dir, Options{
		Hosts:     []string{"api.example.com", "192.0.2.10", "[2001:db8::1]", "0.0.0.0", ""},
		ServiceIP: net.ParseIP("10.96.0.1"),
	})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	leaf := b.ServingCert.Leaf
	for _, name := range []string{
		"127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "10.96.0.1", "api.example.com", "192.0.2.10", "2001:db8::1",
	} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if slices.ContainsFunc(leaf.IPAddresses, net.IP.IsUnspecified) {
		t.Errorf("unspecified address in SANs: %v", leaf.IPAddresses)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example"}); err == nil {
		t.Error("certificate verifies for a name it was not issued for")
	}

	// A real handshake, as kubectl would make it.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{b.ServingCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, sn := range []string{"kubernetes.default.svc", "127.0.0.1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: sn})
		if err != nil {
			t.Fatalf("handshake as %s: %v", sn, err)
		}
		c.Close()
	}
}

func TestEnsureReissuesForNewHost(t *testing.T) {
	dir := t.TempDir()
	b1 := mustEnsure(t, dir, Options{Hosts: []string{"first.example"}})
	b2 := mustEnsure(t, dir, Options{Hosts: []string{"192.0.2.7"}})
	if !bytes.Equal(b1.CAPEM, b2.CAPEM) {
		t.Fatal("new host made a new CA")
	}
	if bytes.Equal(b1.ServingCert.Certificate[0], b2.ServingCert.Certificate[0]) {
		t.Fatal("serving certificate was not re-issued for a new address")
	}
	leaf := b2.ServingCert.Leaf
	if !slices.Contains(leaf.DNSNames, "first.example") || !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP("192.0.2.7").Equal) {
		t.Fatalf("re-issued certificate lost or lacks names: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	// Asking for either again changes nothing.
	b3 := mustEnsure(t, dir, Options{Hosts: []string{"first.example"}})
	if !bytes.Equal(b2.ServingCert.Certificate[0], b3.ServingCert.Certificate[0]) {
		t.Fatal("serving certificate re-issued although it covers the host")
	}
}

// TestEnsureRenewsExpiring plants leaf certificates 10 days from expiry.
func TestEnsureRenewsExpiring(t *testing.T) {
	dir := t.TempDir()
	b := mustEnsure(t, dir, Options{})
	now := time.Now()
	for _, f := range []struct {
		cert, key string
		spec      leafSpec
	}{
		{ServingCertFile, ServingKeyFile, leafSpec{commonName: "old", dnsNames: defaultDNSNames, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, usage: x509.ExtKeyUsageServerAuth, validity: 10 * 24 * time.Hour}},
		{AdminCertFile, AdminKeyFile, leafSpec{commonName: "admin", orgs: []string{AdminGroup}, usage: x509.ExtKeyUsageClientAuth, validity: 10 * 24 * time.Hour}},
	} {
		der, key, err := signLeaf(b.CA, b.caKey, f.spec, now)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := encodeKey(key)
		if err := writeFileAtomic(dir, f.key, keyPEM, keyPerm); err != nil {
			t.Fatal(err)
		}
		if err := writeFileAtomic(dir, f.cert, encodeCert(der), certPerm); err != nil {
			t.Fatal(err)
		}
	}
	b2 := mustEnsure(t, dir, Options{})
	if !bytes.Equal(b.CAPEM, b2.CAPEM) {
		t.Fatal("renewal made a new CA")
	}
	if life := b2.ServingCert.Leaf.NotAfter.Sub(now); life < 360*24*time.Hour {
		t.Fatalf("serving certificate not renewed: valid for %v", life)
	}
	admin, err := parseCert(b2.AdminCertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if life := admin.NotAfter.Sub(now); life < 360*24*time.Hour {
		t.Fatalf("admin certificate not renewed: valid for %v", life)
	}
}

func TestAdminCertificate(t *testing.T) {
	b := mustEnsure(t, t.TempDir(), Options{})
	pair, err := tls.X509KeyPair(b.AdminCertPEM, b.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf.Subject.CommonName != "admin" || !slices.Equal(pair.Leaf.Subject.Organization, []string{AdminGroup}) {
		t.Fatalf("admin subject = %v", pair.Leaf.Subject)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: b.ClientCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
}

func TestIssueClient(t *testing.T) {
	b := mustEnsure(t, t.TempDir(), Options{})
	certPEM, keyPEM, err := b.IssueClient("jane", []string{"dev", "ops"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "jane" || !slices.Equal(leaf.Subject.Organization, []string{"dev", "ops"}) {
		t.Fatalf("subject = %v", leaf.Subject)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.ClientCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.ClientCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client certificate also verifies for serving")
	}
	if d := leaf.NotAfter.Sub(time.Now()); d > 2*time.Hour || d < time.Hour {
		t.Fatalf("valid for %v, want about 2h", d)
	}
	if _, _, err := b.IssueClient("", nil, time.Hour); err == nil {
		t.Error("empty CN accepted")
	}
	if _, _, err := b.IssueClient("x", nil, 0); err == nil {
		t.Error("zero ttl accepted")
	}
	if _, _, err := (&Bundle{CA: b.CA}).IssueClient("x", nil, time.Hour); err == nil {
		t.Error("bundle without CA key issued a certificate")
	}
}

func TestEnsureConcurrentGoroutines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	const n = 6
	bundles := make([]*Bundle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { bundles[i], errs[i] = Ensure(dir, Options{}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(bundles[i].CAPEM, bundles[0].CAPEM) {
			t.Fatalf("goroutine %d got a different CA", i)
		}
		if !bundles[i].ServiceAccountKey.(*rsa.PrivateKey).Equal(bundles[0].ServiceAccountKey) {
			t.Fatalf("goroutine %d got a different service account key", i)
		}
	}
	onDisk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk.CAPEM, bundles[0].CAPEM) {
		t.Fatal("files on disk hold another CA")
	}
	if _, err := onDisk.ServingCert.Leaf.Verify(x509.VerifyOptions{Roots: onDisk.ClientCAs(), DNSName: "localhost"}); err != nil {
		t.Fatalf("serving certificate on disk does not chain to the CA on disk: %v", err)
	}
}

const helperDirEnv = "PGKUBE_PKI_TEST_HELPER_DIR"

// TestHelperEnsureProcess is not a test: TestEnsureConcurrentProcesses runs
// the test binary with it to get independent processes calling Ensure.
func TestHelperEnsureProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("only runs as a helper process")
	}
	b, err := Ensure(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sum := sha256.Sum256(b.CAPEM)
	fmt.Printf("CA=%s\n", hex.EncodeToString(sum[:]))
}

func TestEnsureConcurrentProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	const n = 3
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEnsureProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
			outs[i], errs[i] = cmd.CombinedOutput()
		})
	}
	// This process joins in too.
	local, localErr := Ensure(dir, Options{})
	wg.Wait()
	if localErr != nil {
		t.Fatal(localErr)
	}
	sum := sha256.Sum256(local.CAPEM)
	want := "CA=" + hex.EncodeToString(sum[:])
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
		if !strings.Contains(string(outs[i]), want) {
			t.Fatalf("process %d saw another CA:\n%s\nwant %s", i, outs[i], want)
		}
	}
}

func TestEnsureDamagedCA(t *testing.T) {
	// ca.key left over from a run that died before writing ca.crt: start
	// afresh.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustEnsure(t, dir, Options{})

	// A CA certificate without its key cannot be silently replaced.
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, Options{}); err == nil {
		t.Fatal("missing CA key: no error")
	}

	// Nor can one whose key belongs to something else.
	other := t.TempDir()
	mustEnsure(t, other, Options{})
	key, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, Options{}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched CA key: err = %v", err)
	}
}

func TestEnsureRejectsBadHosts(t *testing.T) {
	for _, h := range []string{"host:6443", "https://host", "two words"} {
		if _, err := Ensure(t.TempDir(), Options{Hosts: []string{h}}); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
	if _, err := Ensure("", Options{}); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}
