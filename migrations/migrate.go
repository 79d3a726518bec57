// Package migrations holds pgkube's versioned SQL schema and applies it.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed sql/*.sql
var files embed.FS

// advisoryLock is an arbitrary constant shared by every pgkube process, so
// that API servers starting together against one database apply each
// migration exactly once.
const advisoryLock = 0x70676b75626531

type migration struct {
	version int
	name    string
	sql     string
}

func load() ([]migration, error) {
	entries, err := fs.ReadDir(files, "sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q: name must start with a number and '_'", e.Name())
		}
		body, err := fs.ReadFile(files, "sql/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Latest is the schema version this binary expects.
func Latest() int {
	ms, err := load()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Apply brings the database up to the latest schema. Each migration runs in
// its own transaction; the session-level advisory lock serialises concurrent
// callers.
func Apply(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := load()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Release()
	// Up to date already: nothing to lock or create, which also lets an
	// ordinary role without DDL rights (see GrantApp) start the server.
	if cur, err := Current(ctx, conn.Conn()); err == nil && cur >= ms[len(ms)-1].version {
		return nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLock); err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLock) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrations: bookkeeping table: %w", err)
	}
	current, err := Current(ctx, conn.Conn())
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrations: apply %s: %w", m.name, err)
		}
	}
	return nil
}

// ApplyURL connects to url and applies the migrations: for tools and test
// harnesses that prepare a database on their own.
func ApplyURL(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer pool.Close()
	return Apply(ctx, pool)
}

// Current reports the highest applied migration, 0 for an empty database.
func Current(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: a fresh database
			return 0, nil
		}
		return 0, fmt.Errorf("migrations: read version: %w", err)
	}
	return v, nil
}

// GrantApp lets role (created if missing, without superuser rights, so
// row-level security applies to it) use pgkube's tables: the API server
// then runs as it, while migrations run as the owner.
func GrantApp(ctx context.Context, url, role string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("grant %s: connect: %w", role, err)
	}
	defer pool.Close()
	ident := pgx.Identifier{role}.Sanitize()
	for _, q := range []string{
		`DO $$ BEGIN CREATE ROLE ` + ident + ` LOGIN NOSUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + ident,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("grant %s: %w", role, err)
		}
	}
	return nil
}
