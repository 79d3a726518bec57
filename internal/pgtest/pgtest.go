// Package pgtest gives tests a fresh PostgreSQL database each, cheaply: one
// embedded server per test binary, and per test a copy of a template
// database that is prepared (e.g. migrated) only once.
//
// Usage:
//
//	func TestMain(m *testing.M) {
//		pgtest.SetTemplate(migrate)
//		os.Exit(pgtest.Main(m))
//	}
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
//		...
//	}
//
// The server starts on the first NewDatabase, so test binaries whose
// selected tests need no database neither wait for nor require PostgreSQL.
// Set PGTEST_LOG to a file name to keep PostgreSQL's log for debugging.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgkube/pgkube/embedpg"
)

const templateName = "pgtest_template"

// The state below lives for the whole test binary: that is the point of
// sharing one server. Main owns its lifecycle.
var (
	inMain atomic.Bool
	srv    server

	tmplMu      sync.Mutex // also serializes CREATE DATABASE ... TEMPLATE
	tmplPrepare func(ctx context.Context, url string) error
	tmplFrozen  bool // set by the first NewDatabase; SetTemplate panics after
	tmplDone    bool
	tmplErr     error

	dbSeq atomic.Uint64
)

type server struct {
	once   sync.Once
	err    error
	dir    string
	pg     *embedpg.Server
	admin  *pgxpool.Pool // connected to the "postgres" database, never to a test database
	logOut *os.File
}

// Main runs the tests and then stops the server if any test started it.
// Call it from TestMain: os.Exit(pgtest.Main(m)). Cleanups run after the
// tests and before PostgreSQL stops, for shared servers that use it.
func Main(m *testing.M, cleanups ...func()) int {
	inMain.Store(true)
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	inMain.Store(false)
	if err := srv.shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// SetTemplate registers prepare to fill the template database from which
// every test database is copied; it runs once, with a URL to the template,
// on the first NewDatabase. Connections it leaves open are terminated
// afterwards, since PostgreSQL cannot copy a database that is in use.
// Call SetTemplate before the first NewDatabase, typically in TestMain.
func SetTemplate(prepare func(ctx context.Context, url string) error) {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	if tmplFrozen {
		panic("pgtest: SetTemplate called after NewDatabase")
	}
	tmplPrepare = prepare
}

// NewDatabase creates an empty database copied from the template and
// returns its URL. It is dropped when the test finishes, after the test's
// own cleanups (register those after calling NewDatabase), and with FORCE,
// so connections still open then do not block it. Safe for parallel tests.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if !inMain.Load() {
		t.Fatal("pgtest: NewDatabase needs TestMain to call pgtest.Main, which stops the server afterwards")
	}
	if err := srv.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	name := databaseName(t.Name(), dbSeq.Add(1))
	ident := pgx.Identifier{name}.Sanitize()
	if err := createFromTemplate(ctx, ident); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return srv.pg.URL(name)
}

func createFromTemplate(ctx context.Context, ident string) error {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	tmplFrozen = true
	if !tmplDone {
		tmplDone = true
		if tmplErr = prepareTemplate(ctx); tmplErr != nil {
			tmplErr = fmt.Errorf("preparing template database: %w", tmplErr)
		}
	}
	if tmplErr != nil {
		return tmplErr
	}
	if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+templateName); err != nil {
		return fmt.Errorf("creating database %s: %w", ident, err)
	}
	return nil
}

func prepareTemplate(ctx context.Context) error {
	if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+templateName); err != nil {
		return err
	}
	if tmplPrepare != nil {
		if err := tmplPrepare(ctx, srv.pg.URL(templateName)); err != nil {
			return err
		}
	}
	// Refusing new connections first means no test can accidentally
	// connect to the template and break every later copy.
	if _, err := srv.admin.Exec(ctx, "ALTER DATABASE "+templateName+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("freezing template: %w", err)
	}
	for {
		var n int
		err := srv.admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1`,
			templateName).Scan(&n)
		if err != nil {
			return fmt.Errorf("closing connections to template: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("closing connections to template: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName makes a name that shows which test a database belongs to
// (handy in pg_stat_activity and logs) and fits PostgreSQL's 63-byte limit.
func databaseName(testName string, seq uint64) string {
	name := fmt.Sprintf("t%d_%s", seq, strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(testName), "_"), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func (s *server) start() error {
	s.once.Do(func() { s.err = s.doStart() })
	return s.err
}

func (s *server) doStart() (err error) {
	// The parent must be traversable by others: when tests run as root,
	// PostgreSQL runs as an unprivileged user that has to reach its files.
	s.dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	defer func() {
		if err != nil {
			s.cleanup()
		}
	}()
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	var log io.Writer
	if path := os.Getenv("PGTEST_LOG"); path != "" {
		if s.logOut, err = os.Create(path); err != nil {
			return fmt.Errorf("opening PGTEST_LOG: %w", err)
		}
		log = s.logOut
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if s.pg, err = embedpg.Start(ctx, embedpg.Options{DataDir: filepath.Join(s.dir, "data"), Log: log}); err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	if s.admin, err = pgxpool.New(ctx, s.pg.URL("postgres")); err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return nil
}

// shutdown runs after all tests. A failed start has cleaned up already.
func (s *server) shutdown() error {
	if s.pg == nil || s.err != nil {
		return nil
	}
	return s.cleanup()
}

func (s *server) cleanup() error {
	var errs []error
	if s.admin != nil {
		s.admin.Close()
	}
	if s.pg != nil {
		if err := s.pg.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping PostgreSQL: %w", err))
		}
	}
	if s.logOut != nil {
		s.logOut.Close()
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing data directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Pool connects to url; the pool is closed when the test ends, before the
// database is dropped.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
