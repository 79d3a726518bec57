package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgkube/pgkube/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		// Deliberately left open: pgtest must cope with a careless prepare.
		_, err = conn.Exec(ctx, `CREATE TABLE widgets (name text PRIMARY KEY);
			INSERT INTO widgets VALUES ('seed')`)
		return err
	})
	os.Exit(pgtest.Main(m))
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func widgets(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name FROM widgets ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Parallel tests each see the template's content plus only their own writes.
func TestParallelDatabasesAreIsolated(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, pgtest.NewDatabase(t))
			own := fmt.Sprintf("w%d", i)
			if _, err := conn.Exec(context.Background(), "INSERT INTO widgets VALUES ($1)", own); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(widgets(t, conn)); got != fmt.Sprint([]string{"seed", own}) {
				t.Errorf("widgets = %s, want [seed %s]", got, own)
			}
		})
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.Database
		// Left open on purpose: the drop must not wait for it.
		if _, err := pgx.ConnectConfig(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	})

	cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test finished", name)
	}
}

func TestTemplateIsNotConnectable(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "pgtest_template"
	if conn, err := pgx.ConnectConfig(context.Background(), cfg); err == nil {
		conn.Close(context.Background())
		t.Error("connecting to the template succeeded; a test could break every later copy")
	}
}

func TestSetTemplateAfterNewDatabasePanics(t *testing.T) {
	t.Parallel()
	pgtest.NewDatabase(t)
	defer func() {
		if recover() == nil {
			t.Error("SetTemplate after NewDatabase did not panic")
		}
	}()
	pgtest.SetTemplate(nil)
}
