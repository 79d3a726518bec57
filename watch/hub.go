// Package watch streams changes to watchers. Every API server process reads
// the change log (storage's row versions) in resourceVersion order; commits
// made by this process wake its watchers at once, and a periodic read picks
// up commits made by other processes sharing the database.
package watch

import (
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
)

// PollInterval bounds how late a watcher sees a change committed by another
// process.
const PollInterval = 250 * time.Millisecond

// Hub wakes the watchers of a cluster when something is committed.
type Hub struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{waiters: map[string]chan struct{}{}} }

// Committed is the storage commit hook: it wakes every watcher of cluster.
func (h *Hub) Committed(cluster string, _ []storage.Object) {
	h.mu.Lock()
	ch := h.waiters[cluster]
	delete(h.waiters, cluster)
	h.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Wait returns a channel closed at the next commit in cluster.
func (h *Hub) Wait(cluster string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.waiters[cluster]
	if ch == nil {
		ch = make(chan struct{})
		h.waiters[cluster] = ch
	}
	return ch
}
