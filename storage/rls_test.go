package storage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgkube/pgkube/internal/pgtest"
)

// asRole returns dbURL for an ordinary role with pgkube's privileges but no
// superuser bypass of row-level security.
func asRole(t *testing.T, dbURL, role string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		fmt.Sprintf(`DO $$ BEGIN CREATE ROLE %s LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`, role),
		fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s`, role),
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// TestRowLevelSecurity proves the tenants' isolation in the database itself:
// a store connected as an ordinary role works for every cluster through
// every path (each statement names its cluster), and raw SQL scoped to one
// cluster can neither read nor write another's rows.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	super := pgtest.NewDatabase(t)
	roleURL := asRole(t, super, "pgkube_rls_test")
	if _, err := New(pgtest.Pool(t, super)).exec(ctx, AllClusters, `INSERT INTO clusters (name) VALUES ('a'), ('b')`); err != nil {
		t.Fatal(err)
	}
	s := New(pgtest.Pool(t, roleURL))

	// Every path of the store, for two clusters.
	for _, c := range []string{"a", "b"} {
		create(t, s, c, pod("ns", "p"), "value-"+c, map[string]string{"app": c}, nil)
		o, err := s.Get(ctx, c, pod("ns", "p"))
		if err != nil {
			t.Fatalf("get in %s: %v", c, err)
		}
		checkData(t, o, "value-"+c)
		update(t, s, c, pod("ns", "p"), o.RV, "value2-"+c, nil, nil)
		l, err := s.List(ctx, c, ListOptions{Resource: "/pods"})
		if err != nil || len(l.Items) != 1 {
			t.Fatalf("list in %s: %v %d", c, err, len(l.Items))
		}
		cur, _, err := s.CurrentRV(ctx, c)
		if err != nil || cur != 2 {
			t.Fatalf("current rv of %s: %d %v", c, cur, err)
		}
		ch, err := s.Changes(ctx, c, "/pods", "", 0, cur, 10)
		if err != nil || len(ch) != 2 {
			t.Fatalf("changes of %s: %v %d", c, err, len(ch))
		}
		if ok, err := s.Allocate(ctx, c, "clusterip", "10.0.0.1", "ns/svc"); err != nil || !ok {
			t.Fatalf("allocate in %s: %v %v", c, ok, err)
		}
	}
	if err := s.Compact(ctx, time.Hour); err != nil {
		t.Fatalf("compact as an ordinary role: %v", err)
	}

	// Raw SQL as the ordinary role, scoped to a.
	conn, err := pgx.Connect(ctx, roleURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(q string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM objects`); n != 0 {
		t.Errorf("without a cluster set, %d object rows are visible", n)
	}
	if _, err := conn.Exec(ctx, `SET pgkube.cluster = 'a'`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM objects WHERE cluster = 'b'`,
		`SELECT count(*) FROM objects WHERE data::text LIKE '%value2-b%'`,
		`SELECT count(*) FROM clusters WHERE name = 'b'`,
		`SELECT count(*) FROM allocations WHERE cluster = 'b'`,
		`SELECT count(*) FROM rv_marks WHERE cluster = 'b'`,
	} {
		if n := count(q); n != 0 {
			t.Errorf("scoped to a, %q finds %d rows of b", q, n)
		}
	}
	if n := count(`SELECT count(*) FROM objects WHERE cluster = 'a'`); n == 0 {
		t.Error("scoped to a, a's own rows are invisible")
	}
	_, err = conn.Exec(ctx, `INSERT INTO objects (cluster, rv, resource, namespace, name, data) VALUES ('b', 999, '/pods', 'ns', 'x', '{}')`)
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("scoped to a, writing a row of b: %v", err)
	}
	tag, err := conn.Exec(ctx, `UPDATE objects SET data = '{}' WHERE cluster = 'b'`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("scoped to a, updating b's rows: %v, %d rows", err, tag.RowsAffected())
	}
	tag, err = conn.Exec(ctx, `DELETE FROM objects`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "b", pod("ns", "p")); err != nil {
		t.Errorf("b's object after a DELETE scoped to a: %v", err)
	} else {
		checkData(t, got, "value2-b")
	}
	_ = tag
}
