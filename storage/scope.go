package storage

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AllClusters is the scope of work that spans logical clusters.
const AllClusters = "*"

// Row-level security (migration 0003) shows a statement only the rows of
// the cluster named in pgkube.cluster. Each statement outside a
// transaction sets it for its session first, in the same round trip;
// statements in a transaction set it for the transaction.
const (
	setClusterSession = `SELECT set_config('pgkube.cluster', $1, false)`
	setClusterLocal   = `SELECT set_config('pgkube.cluster', $1, true)`
)

// scoped sends b's statements after setting the cluster, and returns the
// results of b's own statements.
func (s *Store) scoped(ctx context.Context, cluster string, b *pgx.Batch) (pgx.BatchResults, error) {
	var all pgx.Batch
	all.Queue(setClusterSession, cluster)
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br := s.pool.SendBatch(ctx, &all)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	return br, nil
}

// queryRow runs one single-row query in cluster's scope.
func (s *Store) queryRow(ctx context.Context, cluster string, dest []any, sql string, args ...any) error {
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := s.scoped(ctx, cluster, &b)
	if err != nil {
		return err
	}
	err = br.QueryRow().Scan(dest...)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// exec runs one statement in cluster's scope.
func (s *Store) exec(ctx context.Context, cluster string, sql string, args ...any) (pgconn.CommandTag, error) {
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := s.scoped(ctx, cluster, &b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// query runs a query in cluster's scope; the caller closes the rows, then
// calls done.
func (s *Store) query(ctx context.Context, cluster string, sql string, args ...any) (pgx.Rows, func() error, error) {
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := s.scoped(ctx, cluster, &b)
	if err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, nil, err
	}
	return rows, br.Close, nil
}

// Exec runs a statement of another package (tenant provisioning) in
// cluster's scope.
func (s *Store) Exec(ctx context.Context, cluster string, sql string, args ...any) (pgconn.CommandTag, error) {
	return s.exec(ctx, cluster, sql, args...)
}
