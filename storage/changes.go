package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Change is one entry of the change log: a row version and, unless it
// created the object, the version it replaced.
type Change struct {
	Object
	Prev *Object
}

// Changes reads the change log of one resource in (afterRV, upToRV], oldest
// first, optionally of one namespace, with the replaced versions' data.
// Versions commit in order, so reading up to the cluster's current
// resourceVersion never skips a change that commits later.
// ErrCompacted: afterRV is older than the kept history, so changes may be
// missing (a deletion, say); the caller must start over from a list.
func (s *Store) Changes(ctx context.Context, cluster, resource, namespace string, afterRV, upToRV int64, limit int) ([]Change, error) {
	return s.readChanges(ctx, cluster, []string{resource}, namespace, afterRV, upToRV, limit, true)
}

// ChangesOf reads the change log of several resources of a cluster, as
// Changes does: one query feeds every watcher of a process. Prev carries
// the replaced version's labels and fields (for selectors) but not its
// data, which watchers do not need.
func (s *Store) ChangesOf(ctx context.Context, cluster string, resources []string, afterRV, upToRV int64, limit int) ([]Change, error) {
	return s.readChanges(ctx, cluster, resources, "", afterRV, upToRV, limit, false)
}

func (s *Store) readChanges(ctx context.Context, cluster string, resources []string, namespace string,
	afterRV, upToRV int64, limit int, prevData bool) ([]Change, error) {
	defer s.timed("changes")()
	prevDataCol := "NULL::bytea"
	if prevData {
		prevDataCol = "p.data"
	}
	sql := `SELECT n.resource, n.namespace, n.name, n.rv, n.deleted, n.labels, n.fields, n.data, p.rv, p.labels, p.fields, ` +
		prevDataCol + `
		FROM objects n LEFT JOIN objects p ON p.cluster = n.cluster AND p.rv = n.prev_rv
		WHERE n.cluster = $1 AND n.rv > $2 AND n.rv <= $3 AND n.resource = ANY($4::text[]) AND ($5 = '' OR n.namespace = $5)
		ORDER BY n.rv LIMIT $6`
	// Compaction may run between the caller's check of compacted_rv and
	// this read, so check again, after the read and in the same round trip:
	// compaction raises compacted_rv before it deletes, so if the read
	// missed deleted rows, the check that follows it sees the raised mark.
	var b pgx.Batch
	b.Queue(sql, cluster, afterRV, upToRV, resources, namespace, limit)
	b.Queue(`SELECT compacted_rv FROM clusters WHERE name = $1`, cluster)
	br, err := s.scoped(ctx, cluster, &b)
	if err != nil {
		return nil, fmt.Errorf("read changes of cluster %q: %w", cluster, err)
	}
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read changes of cluster %q: %w", cluster, err)
	}
	var out []Change
	for rows.Next() {
		c := Change{Object: Object{Cluster: cluster}}
		var prevRV *int64
		var prevLabels, prevFields map[string]string
		var prevBytes []byte
		if err := rows.Scan(&c.Resource, &c.Namespace, &c.Name, &c.RV, &c.Deleted, &c.Labels, &c.Fields, &c.Data,
			&prevRV, &prevLabels, &prevFields, &prevBytes); err != nil {
			rows.Close()
			return nil, err
		}
		var err error
		if c.Data, err = s.open(cluster, c.Key, c.Data); err == nil && prevRV != nil {
			c.Prev = &Object{Key: c.Key, RV: *prevRV, Labels: prevLabels, Fields: prevFields}
			c.Prev.Data, err = s.open(cluster, c.Key, prevBytes)
		}
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes of cluster %q: %w", cluster, err)
	}
	var compacted int64
	if err := br.QueryRow().Scan(&compacted); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNoCluster
		}
		return nil, fmt.Errorf("read changes of cluster %q: %w", cluster, err)
	}
	if afterRV < compacted {
		return nil, ErrCompacted
	}
	return out, nil
}
