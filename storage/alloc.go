package storage

import (
	"context"
	"fmt"
)

// Allocate claims value of kind (e.g. a ClusterIP) for owner. It reports
// false when another owner holds it. Claims are rows, so API server
// processes sharing the database never hand out one value twice.
func (s *Store) Allocate(ctx context.Context, cluster, kind, value, owner string) (bool, error) {
	tag, err := s.exec(ctx, cluster, `INSERT INTO allocations (cluster, kind, value, owner) VALUES ($1, $2, $3, $4)
		ON CONFLICT (cluster, kind, value) DO UPDATE SET owner = EXCLUDED.owner WHERE allocations.owner = EXCLUDED.owner`,
		cluster, kind, value, owner)
	if err != nil {
		return false, fmt.Errorf("allocate %s %s: %w", kind, value, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Release frees value if owner holds it.
func (s *Store) Release(ctx context.Context, cluster, kind, value, owner string) error {
	_, err := s.exec(ctx, cluster, `DELETE FROM allocations WHERE cluster = $1 AND kind = $2 AND value = $3 AND owner = $4`,
		cluster, kind, value, owner)
	if err != nil {
		return fmt.Errorf("release %s %s: %w", kind, value, err)
	}
	return nil
}

// Allocated lists the values of kind in use, for picking a free one when
// the range is nearly full.
func (s *Store) Allocated(ctx context.Context, cluster, kind string) (map[string]bool, error) {
	rows, done, err := s.query(ctx, cluster, `SELECT value FROM allocations WHERE cluster = $1 AND kind = $2`, cluster, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s allocations: %w", kind, err)
	}
	defer done() //nolint:errcheck
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out[v] = true
	}
	return out, rows.Err()
}
