package storage

import (
	"context"
	"fmt"
	"time"
)

// compactBefore raises each cluster's compacted_rv to where it stood keep ago
// and deletes the row versions that were superseded by then. Tombstones count
// as superseded by themselves, so they go too.
func (s *Store) compactBefore(ctx context.Context, keep time.Duration) error {
	if _, err := s.exec(ctx, AllClusters, `INSERT INTO rv_marks (cluster, rv) SELECT name, rv FROM clusters
		ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("compact: record marks: %w", err)
	}
	rows, done, err := s.query(ctx, AllClusters, `
		WITH old AS (
			SELECT cluster, max(rv) AS rv FROM rv_marks
			WHERE at <= now() - make_interval(secs => $1) GROUP BY cluster)
		UPDATE clusters c SET compacted_rv = old.rv FROM old
		WHERE c.name = old.cluster AND c.compacted_rv < old.rv
		RETURNING c.name, c.compacted_rv`, keep.Seconds())
	if err != nil {
		return fmt.Errorf("compact: advance: %w", err)
	}
	targets := map[string]int64{}
	for rows.Next() {
		var name string
		var rv int64
		if err := rows.Scan(&name, &rv); err != nil {
			rows.Close()
			done() //nolint:errcheck
			return err
		}
		targets[name] = rv
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		done() //nolint:errcheck
		return fmt.Errorf("compact: advance: %w", err)
	}
	if err := done(); err != nil {
		return fmt.Errorf("compact: advance: %w", err)
	}
	for cluster, rv := range targets {
		for {
			tag, err := s.exec(ctx, AllClusters, `DELETE FROM objects WHERE ctid = ANY(ARRAY(
				SELECT ctid FROM objects WHERE cluster = $1 AND superseded_rv IS NOT NULL AND superseded_rv <= $2
				LIMIT 5000))`, cluster, rv)
			if err != nil {
				return fmt.Errorf("compact cluster %q: %w", cluster, err)
			}
			if tag.RowsAffected() < 5000 {
				break
			}
		}
	}
	_, err = s.exec(ctx, AllClusters, `DELETE FROM rv_marks WHERE at < now() - make_interval(secs => $1) - interval '1 minute'
		AND (cluster, at) NOT IN (SELECT cluster, max(at) FROM rv_marks WHERE at <= now() - make_interval(secs => $1) GROUP BY cluster)`,
		keep.Seconds())
	if err != nil {
		return fmt.Errorf("compact: prune marks: %w", err)
	}
	return nil
}
