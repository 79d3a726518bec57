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
// first.
// Versions commit in order, so reading up to the cluster's current
// resourceVersion never skips a change that commits later.
// ErrCompacted: afterRV is older than the kept history, so changes may be
// missing (a deletion, say); the caller must start over from a list.
func (s *Store) Changes(ctx context.Context, cluster, resource, namespace string, afterRV, upToRV int64, limit int) ([]Change, error) {
	defer s.timed("changes")()
	q := newQuery(cluster, resource)
	q.conds[0], q.conds[1] = "n.cluster = $1", "n.resource = $2"
	q.where("n.rv > " + q.arg(afterRV) + " AND n.rv <= " + q.arg(upToRV))
	if namespace != "" {
		q.where("n.namespace = " + q.arg(namespace))
	}
	sql := `SELECT n.namespace, n.name, n.rv, n.deleted, n.labels, n.fields, n.data, p.rv, p.labels, p.fields, p.data
		FROM objects n LEFT JOIN objects p ON p.cluster = n.cluster AND p.rv = n.prev_rv
		WHERE ` + joinAnd(q.conds) + ` ORDER BY n.rv LIMIT ` + fmt.Sprint(limit)
	// Compaction may run between the caller's check of compacted_rv and
	// this read, so check again, after the read and in the same round trip:
	// compaction raises compacted_rv before it deletes, so if the read
	// missed deleted rows, the check that follows it sees the raised mark.
	var b pgx.Batch
	b.Queue(sql, q.args...)
	b.Queue(`SELECT compacted_rv FROM clusters WHERE name = $1`, cluster)
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close()
	out, err := scanChanges(br, resource)
	if err != nil {
		return nil, fmt.Errorf("read changes of %s: %w", resource, err)
	}
	var compacted int64
	if err := br.QueryRow().Scan(&compacted); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNoCluster
		}
		return nil, fmt.Errorf("read changes of %s: %w", resource, err)
	}
	if afterRV < compacted {
		return nil, ErrCompacted
	}
	return out, nil
}

func scanChanges(br pgx.BatchResults, resource string) ([]Change, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		c := Change{Object: Object{Key: Key{Resource: resource}}}
		var prevRV *int64
		var prevLabels, prevFields map[string]string
		var prevData []byte
		if err := rows.Scan(&c.Namespace, &c.Name, &c.RV, &c.Deleted, &c.Labels, &c.Fields, &c.Data,
			&prevRV, &prevLabels, &prevFields, &prevData); err != nil {
			return nil, err
		}
		if prevRV != nil {
			c.Prev = &Object{Key: c.Key, RV: *prevRV, Labels: prevLabels, Fields: prevFields, Data: prevData}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChangesOf reads, oldest first, the change log of several resources of a
// cluster in (afterRV, upToRV]: one query feeds every watcher of a process.
// Prev carries the replaced version's labels and fields (for selectors)
// but not its data. ErrCompacted as for Changes.
func (s *Store) ChangesOf(ctx context.Context, cluster string, resources []string, afterRV, upToRV int64, limit int) ([]Change, error) {
	defer s.timed("changes")()
	var b pgx.Batch
	b.Queue(`SELECT n.resource, n.namespace, n.name, n.rv, n.deleted, n.labels, n.fields, n.data, p.rv, p.labels, p.fields
		FROM objects n LEFT JOIN objects p ON p.cluster = n.cluster AND p.rv = n.prev_rv
		WHERE n.cluster = $1 AND n.rv > $2 AND n.rv <= $3 AND n.resource = ANY($4::text[])
		ORDER BY n.rv LIMIT $5`, cluster, afterRV, upToRV, resources, limit)
	b.Queue(`SELECT compacted_rv FROM clusters WHERE name = $1`, cluster)
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read changes of cluster %q: %w", cluster, err)
	}
	var out []Change
	for rows.Next() {
		var c Change
		var prevRV *int64
		var prevLabels, prevFields map[string]string
		if err := rows.Scan(&c.Resource, &c.Namespace, &c.Name, &c.RV, &c.Deleted, &c.Labels, &c.Fields, &c.Data,
			&prevRV, &prevLabels, &prevFields); err != nil {
			rows.Close()
			return nil, err
		}
		if prevRV != nil {
			c.Prev = &Object{Key: c.Key, RV: *prevRV, Labels: prevLabels, Fields: prevFields}
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
