package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgkube/pgkube/encryption"
	"github.com/pgkube/pgkube/internal/pgtest"
)

func transformer(t *testing.T, keys ...string) *encryption.Transformer {
	t.Helper()
	var ks strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&ks, "      - name: %s\n        secret: %s\n", k, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(k[:1]), 32)))
	}
	cfg := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n" +
		ks.String() + "  - identity: {}\n"
	tr, err := encryption.Parse([]byte(cfg))
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, cfg)
	}
	return tr
}

// plaintextRows counts row versions, live or historical, whose stored bytes
// contain needle.
func plaintextRows(t *testing.T, pool *pgxpool.Pool, needle string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM objects WHERE position($1::bytea IN data) > 0`, []byte(needle)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEncryptionAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.Pool(t, url)
	secret := func(name string) Key { return Key{Resource: "/secrets", Namespace: "ns", Name: name} }

	// Before encryption is configured: plaintext, as on an old database.
	plain := New(pool)
	create(t, plain, "root", secret("old"), "old-s3cret", nil, nil)
	if plaintextRows(t, pool, "old-s3cret") != 1 {
		t.Fatal("setup: the unencrypted secret should be stored in the clear")
	}

	s := New(pool, Encrypt(transformer(t, "alpha")))
	c := create(t, s, "root", secret("a"), "first-s3cret", nil, nil)
	update(t, s, "root", secret("a"), c.RV, "second-s3cret", nil, nil)
	cm := create(t, s, "root", pod("ns", "p"), "pod-visible", nil, nil)
	for _, needle := range []string{"first-s3cret", "second-s3cret"} {
		if n := plaintextRows(t, pool, needle); n != 0 {
			t.Errorf("%q is in the clear in %d rows", needle, n)
		}
	}
	if plaintextRows(t, pool, "pod-visible") != 1 {
		t.Error("pods are not configured for encryption but were transformed")
	}
	_ = cm

	// Every read path decrypts.
	g, err := s.Get(ctx, "root", secret("a"))
	if err != nil {
		t.Fatal(err)
	}
	checkData(t, g, "second-s3cret")
	l, err := s.List(ctx, "root", ListOptions{Resource: "/secrets"})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("list: %v, %d items", err, len(l.Items))
	}
	checkData(t, l.Items[0], "second-s3cret")
	checkData(t, l.Items[1], "old-s3cret")
	var visited []string
	if _, err := s.List(ctx, "root", ListOptions{Resource: "/secrets", Visit: func(o *Object) error {
		visited = append(visited, string(o.Data))
		return nil
	}}); err != nil || len(visited) != 2 || !strings.Contains(visited[0], "second-s3cret") {
		t.Errorf("visit list: %v %q", err, visited)
	}
	ch, err := s.Changes(ctx, "root", "/secrets", "", 0, 1<<62, 100)
	if err != nil || len(ch) != 3 {
		t.Fatalf("changes: %v, %d", err, len(ch))
	}
	checkData(t, ch[2].Object, "second-s3cret")
	checkData(t, *ch[2].Prev, "first-s3cret")

	// Ciphertext is bound to its location: a row copied to another name
	// does not decrypt.
	if _, err := pool.Exec(ctx, `UPDATE objects SET data = (SELECT data FROM objects WHERE name = 'a' AND superseded_rv IS NULL) WHERE name = 'old'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "root", secret("old")); err == nil {
		t.Error("a ciphertext moved to another object decrypted")
	}
	create(t, s, "root", secret("b"), "third-s3cret", nil, nil)
	if _, err := pool.Exec(ctx, `DELETE FROM objects WHERE name = 'old'`); err != nil {
		t.Fatal(err)
	}
	create(t, plain, "root", secret("old"), "old-s3cret", nil, nil)

	// Rotation: beta first, alpha still readable; re-encryption rewrites
	// every version, history included, and plaintext too.
	rotated := New(pool, Encrypt(transformer(t, "beta", "alpha")))
	n, err := rotated.Reencrypt(ctx, "/secrets")
	if err != nil || n != 4 {
		t.Fatalf("re-encrypt: rewrote %d rows, %v; want 4", n, err)
	}
	var notBeta int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM objects WHERE resource = '/secrets' AND position('k8s:enc:aesgcm:v1:beta:'::bytea IN data) <> 1`).Scan(&notBeta); err != nil {
		t.Fatal(err)
	}
	if notBeta != 0 {
		t.Errorf("%d secret rows not under the new key after re-encryption", notBeta)
	}
	if n, err := rotated.Reencrypt(ctx, "/secrets"); err != nil || n != 0 {
		t.Errorf("second re-encryption rewrote %d, %v; want 0", n, err)
	}
	// The old key can go now.
	betaOnly := New(pool, Encrypt(transformer(t, "beta")))
	for name, want := range map[string]string{"a": "second-s3cret", "b": "third-s3cret", "old": "old-s3cret"} {
		g, err := betaOnly.Get(ctx, "root", secret(name))
		if err != nil {
			t.Fatalf("get %s with only the new key: %v", name, err)
		}
		checkData(t, g, want)
	}
	if plaintextRows(t, pool, "s3cret") != 0 {
		t.Error("plaintext secret data left after re-encryption")
	}
}
