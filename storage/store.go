// Package storage keeps every object of every logical cluster in PostgreSQL.
//
// Each write adds a row version to the objects table under the next
// resourceVersion of its logical cluster. Writes of one cluster are grouped
// into shared transactions (see batch.go) so that commit order equals
// resourceVersion order without paying one serialised fsync per write.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors a caller maps to API statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict: the object's current resourceVersion is not the expected one.
	ErrConflict = errors.New("resourceVersion conflict")
	// ErrCompacted: the requested resourceVersion is older than the kept history.
	ErrCompacted = errors.New("resourceVersion compacted")
	// ErrTooLarge: the requested resourceVersion has not been reached in time.
	ErrTooLarge = errors.New("resourceVersion too large")
	// ErrNoCluster: the logical cluster does not exist.
	ErrNoCluster = errors.New("logical cluster does not exist")
)

// Key names one object. Resource is the storage key "group/resource" (core
// group empty, e.g. "/pods"); Namespace is empty for cluster-scoped objects.
type Key struct {
	Resource  string
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return k.Resource + "/" + k.Name
	}
	return k.Resource + "/" + k.Namespace + "/" + k.Name
}

// Object is one stored version of an object.
type Object struct {
	Key
	// Cluster is set where a read spans clusters (the wildcard view and
	// the change log).
	Cluster string
	RV      int64
	Deleted bool // a tombstone: the state the object had when it was deleted
	Labels  map[string]string
	Fields  map[string]string
	Data    []byte
}

// Store is the PostgreSQL-backed object store.
type Store struct {
	pool     *pgxpool.Pool
	batchers *batchers
	// onCommit is told about every committed batch, in resourceVersion order
	// per cluster; the watch fan-out and caches hang off it.
	onCommit []func(cluster string, objs []Object)
	// observe, if set, is told how long each storage operation took.
	observe func(op string, d time.Duration)
	recent  *recent
	crypt   Transformer
	limits  Limits
}

// ObserveLatency registers a function told the duration of every storage
// operation ("get", "list", "write", "changes"), for metrics.
func ObserveLatency(f func(op string, d time.Duration)) Option {
	return func(s *Store) { s.observe = f }
}

// timed reports an operation's latency when it ends: defer s.timed("get")().
func (s *Store) timed(op string) func() {
	if s.observe == nil {
		return func() {}
	}
	start := time.Now()
	return func() { s.observe(op, time.Since(start)) }
}

// Option configures a Store.
type Option func(*Store)

// OnCommit registers a function called after each committed batch of
// writes, before the writers are answered; it must be quick.
func OnCommit(f func(cluster string, objs []Object)) Option {
	return func(s *Store) { s.onCommit = append(s.onCommit, f) }
}

// New returns a store on an already migrated database.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, recent: newRecent()}
	for _, o := range opts {
		o(s)
	}

	s.batchers = newBatchers(s)
	return s
}

// Pool exposes the connection pool for packages that keep their own tables
// (allocations, migrations).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Get returns the current version of an object.
func (s *Store) Get(ctx context.Context, cluster string, key Key) (Object, error) {
	defer s.timed("get")()
	o := Object{Key: key}
	err := s.queryRow(ctx, cluster, []any{&o.RV, &o.Labels, &o.Fields, &o.Data}, `SELECT rv, labels, fields, data FROM objects
		WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4 AND superseded_rv IS NULL`,
		cluster, key.Resource, key.Namespace, key.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Object{}, ErrNotFound
	}
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	if o.Data, err = s.open(cluster, key, o.Data); err != nil {
		return Object{}, err
	}
	return o, nil
}

// CurrentRV returns the cluster's latest committed resourceVersion and the
// oldest one still readable.
func (s *Store) CurrentRV(ctx context.Context, cluster string) (current, compacted int64, err error) {
	err = s.queryRow(ctx, cluster, []any{&current, &compacted}, `SELECT rv, compacted_rv FROM clusters WHERE name = $1`, cluster)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, ErrNoCluster
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read resourceVersion of cluster %q: %w", cluster, err)
	}
	return current, compacted, nil
}

// WaitForRV waits until the cluster has reached rv, as kube-apiserver does
// for reads at a resourceVersion it has not seen yet, for at most timeout.
func (s *Store) WaitForRV(ctx context.Context, cluster string, rv int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cur, _, err := s.CurrentRV(ctx, cluster)
		if err != nil {
			return err
		}
		if cur >= rv {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrTooLarge
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// EnsureCluster creates a logical cluster's bookkeeping row if missing.
func (s *Store) EnsureCluster(ctx context.Context, cluster string) error {
	_, err := s.exec(ctx, cluster, `INSERT INTO clusters (name) VALUES ($1) ON CONFLICT DO NOTHING`, cluster)
	if err != nil {
		return fmt.Errorf("create cluster %q: %w", cluster, err)
	}
	return nil
}

// RemoveCluster deletes every row of a logical cluster, in one
// transaction scoped to it.
func (s *Store) RemoveCluster(ctx context.Context, cluster string) error {
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(setClusterLocal, cluster)
	for _, q := range []string{
		`DELETE FROM objects WHERE cluster = $1`,
		`DELETE FROM allocations WHERE cluster = $1`,
		`DELETE FROM rv_marks WHERE cluster = $1`,
		`DELETE FROM clusters WHERE name = $1`,
	} {
		b.Queue(q, cluster)
	}
	b.Queue("COMMIT")
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		// Leave no transaction open on a connection going back to the pool.
		conn.Conn().Close(ctx) //nolint:errcheck
		return fmt.Errorf("remove cluster %s: %w", cluster, err)
	}
	return nil
}

// Compact forgets superseded versions older than keep, for every cluster.
// Deleting in bounded chunks keeps each statement short, so writers are never
// held up behind a long compaction.
func (s *Store) Compact(ctx context.Context, keep time.Duration) error {
	// The history table has no timestamps; map "keep" to a resourceVersion by
	// remembering what each cluster's rv was at earlier compaction runs.
	return s.compactBefore(ctx, keep)
}
