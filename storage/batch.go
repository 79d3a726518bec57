package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Op is what a Write does to its key.
type Op int

const (
	Create Op = iota
	Update
	Delete
)

// Write is one change. The new version's bytes are produced by Encode only
// once its resourceVersion is known, so the stored JSON carries it.
type Write struct {
	Op  Op
	Key Key
	// ExpectRV, when non-zero, must equal the current version's
	// resourceVersion (Update, Delete), else ErrConflict.
	ExpectRV int64
	Labels   map[string]string
	Fields   map[string]string
	// Encode returns the bytes to store at rv. For Delete it encodes the
	// tombstone: the object's final state.
	Encode func(rv int64) ([]byte, error)
}

// maxBatch bounds one transaction; larger queues are split.
const maxBatch = 256

type pending struct {
	w    Write
	ctx  context.Context
	res  Object
	err  error
	done chan struct{}
}

// batchers holds one queue per logical cluster. A queue's goroutine exists
// only while there is work, so idle clusters cost nothing.
type batchers struct {
	s  *Store
	mu sync.Mutex
	m  map[string]*queue
}

type queue struct {
	items   []*pending
	running bool
}

func newBatchers(s *Store) *batchers { return &batchers{s: s, m: map[string]*queue{}} }

// Write applies one change and returns the stored version. Concurrent writes
// to one cluster share a transaction, but each is checked and answered alone.
func (s *Store) Write(ctx context.Context, cluster string, w Write) (Object, error) {
	defer s.timed("write")()
	p := &pending{w: w, ctx: ctx, done: make(chan struct{})}
	b := s.batchers
	b.mu.Lock()
	q := b.m[cluster]
	if q == nil {
		q = &queue{}
		b.m[cluster] = q
	}
	q.items = append(q.items, p)
	if !q.running {
		q.running = true
		go b.run(cluster, q)
	}
	b.mu.Unlock()
	// The write may already be in a transaction: wait for its outcome even
	// if the client goes away, so the answer never lies about what was stored.
	<-p.done
	return p.res, p.err
}

func (b *batchers) run(cluster string, q *queue) {
	for {
		b.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			delete(b.m, cluster)
			b.mu.Unlock()
			return
		}
		n := min(len(q.items), maxBatch)
		batch := q.items[:n:n]
		q.items = q.items[n:]
		b.mu.Unlock()
		b.s.commitBatch(cluster, batch)
	}
}

// commitBatch runs a batch in one transaction. The cluster row is locked
// first, which orders this transaction against every other writer of the
// cluster in any process; the checks below can therefore read and decide
// without racing.
func (s *Store) commitBatch(cluster string, batch []*pending) {
	live := make([]*pending, 0, len(batch))
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = err
			close(p.done)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx := context.Background()
	var committed []Object
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		committed = committed[:0]
		for _, p := range live {
			p.err, p.res = nil, Object{}
		}
		var rv int64
		err := tx.QueryRow(ctx, `SELECT rv FROM clusters WHERE name = $1 FOR UPDATE`, cluster).Scan(&rv)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoCluster
		}
		if err != nil {
			return fmt.Errorf("lock cluster: %w", err)
		}
		current, err := currentVersions(ctx, tx, cluster, live)
		if err != nil {
			return err
		}
		var sql pgx.Batch
		for _, p := range live {
			w := p.w
			cur, exists := current[w.Key]
			switch {
			case w.Op == Create && exists:
				p.err = ErrExists
				continue
			case w.Op != Create && !exists:
				p.err = ErrNotFound
				continue
			case w.Op != Create && w.ExpectRV != 0 && w.ExpectRV != cur:
				p.err = ErrConflict
				continue
			}
			data, err := w.Encode(rv + 1)
			if err != nil {
				p.err = err
				continue
			}
			rv++
			var prev *int64
			if exists {
				c := cur
				prev = &c
				sql.Queue(`UPDATE objects SET superseded_rv = $2 WHERE cluster = $1 AND rv = $3`, cluster, rv, cur)
			}
			var superseded *int64
			if w.Op == Delete {
				superseded = &rv
				delete(current, w.Key)
			} else {
				current[w.Key] = rv
			}
			labels, fields := nonNil(w.Labels), nonNil(w.Fields)
			sql.Queue(`INSERT INTO objects (cluster, rv, resource, namespace, name, prev_rv, superseded_rv, deleted, labels, fields, data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				cluster, rv, w.Key.Resource, w.Key.Namespace, w.Key.Name, prev, superseded, w.Op == Delete, labels, fields, data)
			p.res = Object{Key: w.Key, RV: rv, Deleted: w.Op == Delete, Labels: labels, Fields: fields, Data: data}
			committed = append(committed, p.res)
		}
		if len(committed) == 0 {
			return nil
		}
		sql.Queue(`UPDATE clusters SET rv = $2 WHERE name = $1`, cluster, rv)
		if err := tx.SendBatch(ctx, &sql).Close(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
	for _, p := range live {
		if err != nil {
			p.err, p.res = err, Object{}
		}
		close(p.done)
	}
	if err == nil && len(committed) > 0 {
		for _, f := range s.onCommit {
			f(cluster, committed)
		}
	}
}

// currentVersions looks up, in one query, the live resourceVersion of every
// key the batch touches.
func currentVersions(ctx context.Context, tx pgx.Tx, cluster string, batch []*pending) (map[Key]int64, error) {
	res := make([]string, len(batch))
	ns := make([]string, len(batch))
	names := make([]string, len(batch))
	for i, p := range batch {
		res[i], ns[i], names[i] = p.w.Key.Resource, p.w.Key.Namespace, p.w.Key.Name
	}
	rows, err := tx.Query(ctx, `SELECT o.resource, o.namespace, o.name, o.rv FROM objects o
		JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(r, ns, n)
		ON o.cluster = $1 AND o.resource = k.r AND o.namespace = k.ns AND o.name = k.n
		WHERE o.superseded_rv IS NULL`, cluster, res, ns, names)
	if err != nil {
		return nil, fmt.Errorf("read current versions: %w", err)
	}
	defer rows.Close()
	out := make(map[Key]int64, len(batch))
	for rows.Next() {
		var k Key
		var rv int64
		if err := rows.Scan(&k.Resource, &k.Namespace, &k.Name, &rv); err != nil {
			return nil, err
		}
		out[k] = rv
	}
	return out, rows.Err()
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
