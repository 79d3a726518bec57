package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// channel is the NOTIFY channel API server processes announce commits on.
//
// PostgreSQL's NOTIFY has limits this design works around: a NOTIFY inside
// a writing transaction takes a database-wide lock until commit, which would
// serialise every writer of every tenant; payloads are small and visible to
// every database user; LISTEN does not work through transaction-pooling
// proxies. So the notification is sent after the commit, outside the write
// path, coalesced per cluster, and carries only a token derived from the
// cluster's name (a tenant's name is nobody else's business); the changes
// themselves are read from the log. The listening connection must
// be a direct one (see Options of Listen).
const channel = "pgkube_changes"

// notifier sends NOTIFYs for committed clusters, coalescing bursts: while
// one round of notifications is being sent, further commits only mark
// their cluster.
type notifier struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]struct{}
	kick    chan struct{}
}

func (n *notifier) announce(cluster string) {
	n.mu.Lock()
	n.pending[cluster] = struct{}{}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
		n.mu.Lock()
		clusters := make([]string, 0, len(n.pending))
		for c := range n.pending {
			clusters = append(clusters, c)
		}
		clear(n.pending)
		n.mu.Unlock()
		var b pgx.Batch
		for _, c := range clusters {
			b.Queue(`SELECT pg_notify($1, $2)`, channel, notifyToken(c))
		}
		if err := n.pool.SendBatch(ctx, &b).Close(); err != nil && ctx.Err() == nil {
			// Other processes still catch up within their CatchUp interval.
			n.log.Warn("watch: NOTIFY failed", "err", err)
		}
	}
}

// Start announces this process's commits to other API server processes
// and listens for theirs. listenURL must reach PostgreSQL directly, not
// through a transaction-pooling proxy. It returns when ctx ends.
func (h *Hub) Start(ctx context.Context, pool *pgxpool.Pool, listenURL string, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	n := &notifier{pool: pool, log: log, pending: map[string]struct{}{}, kick: make(chan struct{}, 1)}
	h.mu.Lock()
	h.notify = n
	h.mu.Unlock()
	go n.run(ctx)
	go h.listen(ctx, listenURL, log)
}

// listen keeps one LISTEN connection per process. After every (re)connect
// all feeds catch up, since notifications sent meanwhile are lost.
func (h *Hub) listen(ctx context.Context, url string, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listenOnce(ctx, url)
		if ctx.Err() != nil {
			return
		}
		log.Warn("watch: LISTEN connection lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (h *Hub) listenOnce(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	h.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h.wakeToken(n.Payload)
	}
}

// notifyToken stands for a cluster in NOTIFY payloads: receivers know the
// clusters they follow and recognise their tokens; other database users
// learn only that something committed.
func notifyToken(cluster string) string {
	sum := sha256.Sum256([]byte("pgkube-notify:" + cluster))
	return hex.EncodeToString(sum[:12])
}
