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

// commitBatch runs a batch in one transaction, in two round trips to
// PostgreSQL: the first begins, locks the cluster's counter row and reads the
// current versions of every key in the batch; the second writes and commits.
// The lock orders this transaction against every other writer of the cluster
// in any process, so the checks made in between cannot race.
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
	committed, err := s.runBatch(context.Background(), cluster, live)
	if err == nil {
		// Before the writers hear back: their next update may start from it.
		s.recent.committed(cluster, committed)
	}
	// Hooks run before the writers hear back, so that caches fed by them
	// (admission's, the namespace lifecycle's) never answer a client's next
	// request with what its own write replaced.
	if err == nil && len(committed) > 0 {
		for _, f := range s.onCommit {
			f(cluster, committed)
		}
	}
	for _, p := range live {
		if err != nil {
			p.err, p.res = err, Object{}
		}
		close(p.done)
	}
}

func (s *Store) runBatch(ctx context.Context, cluster string, live []*pending) (committed []Object, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("write: connect: %w", err)
	}
	defer conn.Release()
	inTx := false
	defer func() {
		if err != nil && inTx {
			// The transaction is aborted or in doubt: end it, and do not
			// hand a connection in that state back to the pool.
			if _, rbErr := conn.Exec(ctx, "ROLLBACK"); rbErr != nil {
				conn.Conn().Close(ctx) //nolint:errcheck
			}
		}
	}()

	var first pgx.Batch
	first.Queue("BEGIN")
	first.Queue(setClusterLocal, cluster)
	first.Queue(`SELECT rv, objects, bytes FROM clusters WHERE name = $1 FOR UPDATE`, cluster)
	queueCurrentVersions(&first, cluster, live)
	br := conn.SendBatch(ctx, &first)
	inTx = true
	var rv int64
	var use usage
	if _, err = br.Exec(); err == nil {
		if _, err = br.Exec(); err == nil {
			err = br.QueryRow().Scan(&rv, &use.objects, &use.bytes)
		}
	}
	limit := s.limits.of(cluster)
	var current map[Key]version
	if err == nil {
		current, err = readCurrentVersions(br, live)
	}

	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCluster
	}
	if err != nil {
		return nil, fmt.Errorf("write: lock cluster %q: %w", cluster, err)
	}

	var second pgx.Batch
	for _, p := range live {
		w := p.w
		cv, exists := current[w.Key]
		cur := cv.rv
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
		data, err := encode(w, rv+1)
		var stored []byte
		if err == nil {
			stored, err = s.seal(cluster, w.Key, data)
		}
		if err != nil {
			p.err = err
			continue
		}
		next := use
		switch w.Op {
		case Create:
			next.objects++
			next.bytes += int64(len(stored))
		case Delete:
			next.objects--
			next.bytes -= cv.size
		default:
			next.bytes += int64(len(stored)) - cv.size
		}
		if err := limit.check(cluster, use, next); err != nil {
			p.err = err
			continue
		}
		use = next
		rv++
		var prev *int64
		if exists {
			c := cur
			prev = &c
			second.Queue(`UPDATE objects SET superseded_rv = $2 WHERE cluster = $1 AND rv = $3`, cluster, rv, cur)
		}
		var superseded *int64
		if w.Op == Delete {
			superseded = &rv
			delete(current, w.Key)
		} else {
			current[w.Key] = version{rv: rv, size: int64(len(stored))}
		}
		labels, fields := nonNil(w.Labels), nonNil(w.Fields)
		second.Queue(`INSERT INTO objects (cluster, rv, resource, namespace, name, prev_rv, superseded_rv, deleted, labels, fields, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			cluster, rv, w.Key.Resource, w.Key.Namespace, w.Key.Name, prev, superseded, w.Op == Delete, labels, fields, stored)
		p.res = Object{Key: w.Key, RV: rv, Deleted: w.Op == Delete, Labels: labels, Fields: fields, Data: data}
		committed = append(committed, p.res)
	}
	if len(committed) > 0 {
		second.Queue(`UPDATE clusters SET rv = $2, objects = $3, bytes = $4 WHERE name = $1`, cluster, rv, use.objects, use.bytes)
	}
	second.Queue("COMMIT")
	if err = conn.SendBatch(ctx, &second).Close(); err != nil {
		for _, p := range live {
			p.res = Object{}
		}
		return nil, fmt.Errorf("write: %w", err)
	}
	inTx = false
	return committed, nil
}

// encode runs a write's Encode, turning a panic or an empty result into an
// error for that write alone rather than for its whole batch.
func encode(w Write, rv int64) (data []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("encode %s: panic: %v", w.Key, v)
		}
	}()
	data, err = w.Encode(rv)
	if err == nil && len(data) == 0 {
		err = fmt.Errorf("encode %s: no data", w.Key)
	}
	return data, err
}

// queueCurrentVersions asks for the live resourceVersion of every key the
// batch touches: one point lookup per key, pipelined. A single query joining
// an array of keys leaves the plan to the planner, which may scan the
// cluster's whole table per key.
func queueCurrentVersions(b *pgx.Batch, cluster string, batch []*pending) {
	for _, p := range batch {
		k := p.w.Key
		b.Queue(`SELECT rv, octet_length(data) FROM objects WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4
			AND superseded_rv IS NULL`, cluster, k.Resource, k.Namespace, k.Name)
	}
}

// version is a key's live row: its resourceVersion and stored size.
type version struct{ rv, size int64 }

func readCurrentVersions(br pgx.BatchResults, batch []*pending) (map[Key]version, error) {
	out := make(map[Key]version, len(batch))
	for _, p := range batch {
		var v version
		err := br.QueryRow().Scan(&v.rv, &v.size)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read current version of %s: %w", p.w.Key, err)
		}
		out[p.w.Key] = v
	}
	return out, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
