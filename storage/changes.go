package storage

import (
	"context"
	"fmt"
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
func (s *Store) Changes(ctx context.Context, cluster, resource, namespace string, afterRV, upToRV int64, limit int) ([]Change, error) {
	q := newQuery(cluster, resource)
	q.conds[0], q.conds[1] = "n.cluster = $1", "n.resource = $2"
	q.where("n.rv > " + q.arg(afterRV) + " AND n.rv <= " + q.arg(upToRV))
	if namespace != "" {
		q.where("n.namespace = " + q.arg(namespace))
	}
	sql := `SELECT n.namespace, n.name, n.rv, n.deleted, n.labels, n.fields, n.data, p.rv, p.labels, p.fields, p.data
		FROM objects n LEFT JOIN objects p ON p.cluster = n.cluster AND p.rv = n.prev_rv
		WHERE ` + joinAnd(q.conds) + ` ORDER BY n.rv LIMIT ` + fmt.Sprint(limit)
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("read changes of %s: %w", resource, err)
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
