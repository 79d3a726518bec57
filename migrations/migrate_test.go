package migrations

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgkube/pgkube/internal/pgtest"
)

// No template: every test starts from an empty database, as a fresh
// installation does.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}

type appliedRow struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

func applied(t *testing.T, pool *pgxpool.Pool) []appliedRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[appliedRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantApplied checks that schema_migrations holds exactly one row per
// embedded migration file.
func wantApplied(t *testing.T, pool *pgxpool.Pool) []appliedRow {
	t.Helper()
	ms, err := load()
	if err != nil {
		t.Fatal(err)
	}
	got := applied(t, pool)
	if len(got) != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d (one per migration): %+v", len(got), len(ms), got)
	}
	for i, m := range ms {
		if got[i].Version != m.version || got[i].Name != m.name {
			t.Errorf("schema_migrations[%d] = %d %q, want %d %q", i, got[i].Version, got[i].Name, m.version, m.name)
		}
	}
	return got
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func countRoot(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM clusters WHERE name = 'root'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLoad(t *testing.T) {
	ms, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].version <= ms[i-1].version {
			t.Errorf("migrations not strictly increasing: %s (%d) after %s (%d)", ms[i].name, ms[i].version, ms[i-1].name, ms[i-1].version)
		}
	}
	if got, want := Latest(), ms[len(ms)-1].version; got != want {
		t.Errorf("Latest() = %d, want %d", got, want)
	}
}

func TestCurrentOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t, pgtest.NewDatabase(t))
	v, err := Current(context.Background(), pool)
	if err != nil {
		t.Fatalf("Current on an empty database: %v", err)
	}
	if v != 0 {
		t.Errorf("Current on an empty database = %d, want 0", v)
	}
}

func TestApplyEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t, pgtest.NewDatabase(t))
	if tableExists(t, pool, "objects") {
		t.Fatal("fresh database already has an objects table; the test would prove nothing")
	}
	if err := Apply(ctx, pool); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantApplied(t, pool)
	v, err := Current(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if v != Latest() {
		t.Errorf("Current after Apply = %d, want Latest() = %d", v, Latest())
	}
	for _, table := range []string{"clusters", "objects", "allocations", "rv_marks", "schema_migrations"} {
		if !tableExists(t, pool, table) {
			t.Errorf("table %s missing after Apply", table)
		}
	}
	if n := countRoot(t, pool); n != 1 {
		t.Errorf("%d root clusters after Apply, want 1", n)
	}
	var rv, compacted int64
	if err := pool.QueryRow(ctx, `SELECT rv, compacted_rv FROM clusters WHERE name = 'root'`).Scan(&rv, &compacted); err != nil {
		t.Fatal(err)
	}
	if rv != 0 || compacted != 0 {
		t.Errorf("root cluster starts at rv=%d compacted=%d, want 0 0", rv, compacted)
	}
	// Apply must release its session lock, although its connection stays
	// open in the pool: another session can take it. (Advisory locks are
	// reentrant, so asking through the same pool would prove nothing.)
	other, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var got bool
	if err := other.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, advisoryLock).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got {
		t.Error("advisory lock still held after Apply returned")
	}
}

func TestApplyTwiceIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t, pgtest.NewDatabase(t))
	if err := Apply(ctx, pool); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	before := wantApplied(t, pool)
	// Data written between runs must survive a second Apply.
	if _, err := pool.Exec(ctx, `INSERT INTO clusters (name, rv) VALUES ('tenant', 42)`); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, pool); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	after := wantApplied(t, pool)
	for i := range before {
		if !before[i].AppliedAt.Equal(after[i].AppliedAt) {
			t.Errorf("migration %s re-applied: applied_at %v then %v", before[i].Name, before[i].AppliedAt, after[i].AppliedAt)
		}
	}
	if n := countRoot(t, pool); n != 1 {
		t.Errorf("%d root clusters after second Apply, want 1", n)
	}
	var rv int64
	if err := pool.QueryRow(ctx, `SELECT rv FROM clusters WHERE name = 'tenant'`).Scan(&rv); err != nil {
		t.Fatalf("data written between Applies lost: %v", err)
	}
	if rv != 42 {
		t.Errorf("tenant rv = %d after second Apply, want 42", rv)
	}
}

// API servers starting together against one database: each has its own
// pool, all Apply at once, and every migration runs exactly once.
func TestApplyConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	const n = 8
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		pools[i] = pgtest.Pool(t, url)
		// Open the connection up front, so that the calls below really
		// start together rather than staggered by connection setup.
		if err := pools[i].Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, pool := range pools {
		wg.Go(func() {
			<-start
			errs[i] = Apply(ctx, pool)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply #%d: %v", i, err)
		}
	}
	wantApplied(t, pools[0])
	if n := countRoot(t, pools[0]); n != 1 {
		t.Errorf("%d root clusters after concurrent Apply, want 1", n)
	}
}

// A cancelled Apply reports the error and leaves nothing half-applied.
func TestApplyCancelled(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t, pgtest.NewDatabase(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Apply(ctx, pool); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	if err := Apply(context.Background(), pool); err != nil {
		t.Fatalf("Apply after a cancelled one: %v", err)
	}
	wantApplied(t, pool)
}

func ExampleLatest() {
	fmt.Println(Latest() > 0)
	// Output: true
}
