package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ClusterRV is where one logical cluster's resourceVersion stands.
type ClusterRV struct {
	Name               string
	Current, Compacted int64
}

// ClusterRVs reads every logical cluster's resourceVersion in one query:
// a process following all clusters (the wildcard view) learns from it which
// clusters have changed since it last looked.
func (s *Store) ClusterRVs(ctx context.Context) ([]ClusterRV, error) {
	rows, done, err := s.query(ctx, AllClusters, `SELECT name, rv, compacted_rv FROM clusters`)
	if err != nil {
		return nil, fmt.Errorf("read resourceVersions of all clusters: %w", err)
	}
	var out []ClusterRV
	for rows.Next() {
		var c ClusterRV
		if err := rows.Scan(&c.Name, &c.Current, &c.Compacted); err != nil {
			rows.Close()
			done() //nolint:errcheck
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err := errors.Join(rows.Err(), done()); err != nil {
		return nil, fmt.Errorf("read resourceVersions of all clusters: %w", err)
	}
	return out, nil
}

// ListAllOptions selects the live objects of one resource in every cluster.
type ListAllOptions struct {
	Resource  string
	Namespace string // empty: all namespaces
	// Visit receives each object, its Cluster, Labels and Fields set (for
	// the caller's selectors); Data is valid only during the call.
	Visit func(o *Object) error
}

// ListAll reads one consistent snapshot across every logical cluster: the
// live objects of a resource, and each cluster's resourceVersion in that
// same snapshot, from which a wildcard watch continues. Selectors are left
// to the caller, which gets each object's labels and fields.
func (s *Store) ListAll(ctx context.Context, opts ListAllOptions) ([]ClusterRV, error) {
	defer s.timed("list")()
	var vec []ClusterRV
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, setClusterLocal, AllClusters); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT name, rv, compacted_rv FROM clusters`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c ClusterRV
			if err := rows.Scan(&c.Name, &c.Current, &c.Compacted); err != nil {
				rows.Close()
				return err
			}
			vec = append(vec, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT cluster, namespace, name, rv, labels, fields, data FROM objects
			WHERE resource = $1 AND ($2 = '' OR namespace = $2) AND superseded_rv IS NULL
			ORDER BY cluster, namespace, name`, opts.Resource, opts.Namespace)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			o := Object{Key: Key{Resource: opts.Resource}}
			var raw pgtype.DriverBytes
			if err := rows.Scan(&o.Cluster, &o.Namespace, &o.Name, &o.RV, &o.Labels, &o.Fields, &raw); err != nil {
				return err
			}
			if o.Data, err = s.open(o.Cluster, o.Key, raw); err != nil {
				return err
			}
			if err := opts.Visit(&o); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list %s in all clusters: %w", opts.Resource, err)
	}
	return vec, nil
}
