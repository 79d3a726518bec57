package storage

import (
	"context"
	"errors"
	"fmt"
)

// Transformer encrypts the data of some resources at rest. Labels, selectable
// fields and names stay readable: they are what the queries and indexes work
// on, as object keys and metadata are in etcd.
type Transformer interface {
	Encrypting(resource string) bool
	// Encrypt seals plain data for the object at location, which the
	// ciphertext is bound to.
	Encrypt(resource, location string, plain []byte) ([]byte, error)
	// Decrypt opens stored data; stale reports it was written with a key or
	// provider other than the current first one.
	Decrypt(resource, location string, stored []byte) (plain []byte, stale bool, err error)
}

// Encrypt makes the store encrypt data with t.
func Encrypt(t Transformer) Option { return func(s *Store) { s.crypt = t } }

func location(cluster string, k Key) string { return cluster + "/" + k.String() }

func (s *Store) seal(cluster string, k Key, data []byte) ([]byte, error) {
	if s.crypt == nil || !s.crypt.Encrypting(k.Resource) {
		return data, nil
	}
	return s.crypt.Encrypt(k.Resource, location(cluster, k), data)
}

func (s *Store) open(cluster string, k Key, data []byte) ([]byte, error) {
	if s.crypt == nil || data == nil {
		return data, nil
	}
	plain, _, err := s.crypt.Decrypt(k.Resource, location(cluster, k), data)
	return plain, err
}

// Reencrypt rewrites, in place, every stored version of resource whose data
// was not written by the current first provider: plaintext from before
// encryption was enabled, or data under a key being rotated out. Row
// versions keep their resourceVersions; no watch event is caused, since the
// objects do not change.
func (s *Store) Reencrypt(ctx context.Context, resource string) (rewritten int, err error) {
	if s.crypt == nil {
		return 0, nil
	}
	type row struct {
		cluster         string
		rv              int64
		namespace, name string
		data            []byte
	}
	var afterCluster string
	var afterRV int64
	for {
		rows, done, err := s.query(ctx, AllClusters, `SELECT cluster, rv, namespace, name, data FROM objects
			WHERE resource = $1 AND (cluster, rv) > ($2, $3) ORDER BY cluster, rv LIMIT 500`, resource, afterCluster, afterRV)
		if err != nil {
			return rewritten, fmt.Errorf("re-encrypt %s: %w", resource, err)
		}
		var page []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.cluster, &r.rv, &r.namespace, &r.name, &r.data); err != nil {
				rows.Close()
				done() //nolint:errcheck
				return rewritten, fmt.Errorf("re-encrypt %s: %w", resource, err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := errors.Join(rows.Err(), done()); err != nil {
			return rewritten, fmt.Errorf("re-encrypt %s: %w", resource, err)
		}
		if len(page) == 0 {
			return rewritten, nil
		}
		for _, r := range page {
			k := Key{Resource: resource, Namespace: r.namespace, Name: r.name}
			plain, stale, err := s.crypt.Decrypt(resource, location(r.cluster, k), r.data)
			if err != nil {
				return rewritten, fmt.Errorf("re-encrypt: %w", err)
			}
			if !stale {
				continue
			}
			sealed, err := s.seal(r.cluster, k, plain)
			if err != nil {
				return rewritten, fmt.Errorf("re-encrypt %s: %w", location(r.cluster, k), err)
			}
			// Only if the row still holds what was read: compaction may have
			// removed it, another process may have re-encrypted it.
			tag, err := s.exec(ctx, r.cluster, `UPDATE objects SET data = $3 WHERE cluster = $1 AND rv = $2 AND data = $4`,
				r.cluster, r.rv, sealed, r.data)
			if err != nil {
				return rewritten, fmt.Errorf("re-encrypt %s: %w", location(r.cluster, k), err)
			}
			rewritten += int(tag.RowsAffected())
		}
		last := page[len(page)-1]
		afterCluster, afterRV = last.cluster, last.rv
	}
}
