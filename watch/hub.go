// Package watch fans changes out to watchers. Each API server process keeps
// one feed per logical cluster that has watchers: it reads the change log
// (storage's row versions) in resourceVersion order, once for all its
// watchers, and hands every change to the watchers it concerns.
//
// Feeds wake when this process commits (at once), when another process
// announces a commit through PostgreSQL NOTIFY (see notify.go), and at least
// every CatchUp interval, so a lost notification is a delay, never a lost
// event. Because resourceVersions commit in order, reading the log up to the
// cluster's current resourceVersion never skips a change.
package watch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
)

// Options tune a Hub.
type Options struct {
	// CatchUp bounds how late a watcher sees a change whose notification was
	// lost. Default 1s.
	CatchUp time.Duration
	// MaxQueue is how many undelivered events a watcher may have before it
	// is closed as too slow (its client re-watches). Default 10000.
	MaxQueue int
	// ProgressEvery is how often watchers get a progress marker (for
	// bookmarks). Default 1s.
	ProgressEvery time.Duration
}

func (o *Options) defaults() {
	if o.CatchUp == 0 {
		o.CatchUp = time.Second
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 10000
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
}

// Store is what the hub reads.
type Store interface {
	CurrentRV(ctx context.Context, cluster string) (current, compacted int64, err error)
	ClusterRVs(ctx context.Context) ([]storage.ClusterRV, error)
	ChangesOf(ctx context.Context, cluster string, resources []string, afterRV, upToRV int64, limit int) ([]storage.Change, error)
}

// Hub owns the feeds of one process.
type Hub struct {
	store Store
	opts  Options
	mu    sync.Mutex
	feeds map[string]*feed
	// tokens maps NOTIFY tokens back to the clusters this process follows.
	tokens map[string]string
	notify *notifier // nil without a database to NOTIFY through
	// wild is the feed of wildcard watchers, nil while there are none;
	// wildMu guards its state.
	wild   *wildFeed
	wildMu sync.Mutex
}

// NewHub returns a hub reading store.
func NewHub(store Store, opts Options) *Hub {
	opts.defaults()
	return &Hub{store: store, opts: opts, feeds: map[string]*feed{}, tokens: map[string]string{}}
}

// Committed is the storage commit hook: it wakes the cluster's feed in this
// process at once and tells the other processes through NOTIFY.
func (h *Hub) Committed(cluster string, _ []storage.Object) {
	h.wake(cluster)
	h.wakeWild()
	if h.notify != nil {
		h.notify.announce(cluster)
	}
}

func (h *Hub) wakeWild() {
	h.mu.Lock()
	f := h.wild
	h.mu.Unlock()
	if f != nil {
		f.poke()
	}
}

func (h *Hub) wake(cluster string) {
	h.mu.Lock()
	f := h.feeds[cluster]
	h.mu.Unlock()
	if f != nil {
		f.poke()
	}
}

// wakeToken wakes the feed of the cluster a NOTIFY token stands for, if
// this process follows it.
func (h *Hub) wakeToken(token string) {
	h.wakeWild()
	h.mu.Lock()
	cluster, ok := h.tokens[token]
	h.mu.Unlock()
	if ok {
		h.wake(cluster)
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.feeds {
		f.poke()
	}
	if h.wild != nil {
		h.wild.poke()
	}
}

// Event is one change for a watcher, or, when Progress is set, a marker
// that every change of the watched resource up to RV has been delivered.
type Event struct {
	storage.Change
	Progress bool
	// At is where a wildcard watcher's progress marker stands.
	At Position
	// Shared is common to every watcher the change goes to: encodings of
	// the event made for one watcher serve all of them.
	Shared *Shared
}

// Shared caches encodings of one change, by a key the encoder chooses
// (event type and media type, say).
type Shared struct {
	mu     sync.Mutex
	frames map[string][]byte
}

// Frame returns the encoding under key, building it on first use.
func (s *Shared) Frame(key string, build func() ([]byte, error)) ([]byte, error) {
	if s == nil {
		return build()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.frames[key]; ok {
		return b, nil
	}
	b, err := build()
	if err != nil {
		return nil, err
	}
	if s.frames == nil {
		s.frames = map[string][]byte{}
	}
	s.frames[key] = b
	return b, nil
}

// Filter tells whether a change may concern a watcher; it runs in the
// feed's goroutine, so it must be cheap and must not block.
type Filter func(c *storage.Change) bool

// ErrTooSlow ends a watcher that let too many events pile up.
var ErrTooSlow = errors.New("watcher too slow: too many undelivered events")

// Watcher receives the changes of one resource (optionally one namespace)
// after a resourceVersion, in order, each once.
type Watcher struct {
	resource, namespace string
	filter              Filter
	mu                  sync.Mutex
	queue               []Event
	err                 error
	ready               chan struct{} // signalled when queue or err changes
	lastProgress        time.Time
	f                   *feed
	wild                *wildFeed
	// after: the client has seen everything up to here, so the feed's
	// changes at or before it are not delivered again. afterAll is the
	// same per cluster, for a wildcard watcher.
	after    int64
	afterAll Position
	// unhook cancels the stop-on-context-end hook.
	unhook func() bool
	// progress: the watcher wants progress markers (for bookmarks).
	progress bool
}

// Watch starts a watcher of resource (a storage key) in cluster, from after
// resourceVersion from. Changes up to where the cluster's feed stands are
// read from the log first, then the feed's changes follow.
//
// Progress markers come only when progress is set: they wake the watcher
// every ProgressEvery, which only bookmarks need.
func (h *Hub) Watch(ctx context.Context, cluster, resource, namespace string, from int64, filter Filter, progress bool) (*Watcher, error) {
	w := &Watcher{resource: resource, namespace: namespace, filter: filter, ready: make(chan struct{}, 1), after: from, progress: progress}
	_, pos, err := h.subscribe(ctx, cluster, w)
	if err != nil {
		return nil, err
	}
	// Catch up from the log to where the feed took over. Until then the
	// feed only queues changes after pos, behind what is read here.
	if from < pos {
		var caught []Event
		for after := from; after < pos; {
			changes, err := h.store.ChangesOf(ctx, cluster, []string{resource}, after, pos, 1000)
			if err != nil {
				w.Stop()
				return nil, err
			}
			for _, c := range changes {
				if w.matches(&c) {
					caught = append(caught, Event{Change: c})
				}
			}
			if len(changes) < 1000 {
				break
			}
			after = changes[len(changes)-1].RV
		}
		w.mu.Lock()
		w.queue = append(caught, w.queue...)
		w.mu.Unlock()
		w.signal()
	}
	w.unhook = context.AfterFunc(ctx, w.Stop)
	return w, nil
}

// concerns tells whether the feed should hand c to w.
func (w *Watcher) concerns(c *storage.Change) bool {
	after := w.after
	if w.afterAll != nil {
		after = w.afterAll[c.Cluster]
	}
	return c.RV > after && w.matches(c)
}

// matches tells whether c is of what w watches, whatever its version.
func (w *Watcher) matches(c *storage.Change) bool {
	if c.Resource != w.resource || (w.namespace != "" && c.Namespace != w.namespace) {
		return false
	}
	return w.filter == nil || w.filter(c)
}

func (w *Watcher) signal() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// push queues an event from the feed; false when the watcher overflowed.
func (w *Watcher) push(e Event, max int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return false
	}
	if len(w.queue) >= max {
		w.err = ErrTooSlow
		w.queue = nil
		w.signal()
		return false
	}
	w.queue = append(w.queue, e)
	w.signal()
	return true
}

// Next returns the queued events, waiting until there are some, the
// watcher ends (its error), or ctx is done.
func (w *Watcher) Next(ctx context.Context) ([]Event, error) {
	for {
		w.mu.Lock()
		q, err := w.queue, w.err
		w.queue = nil
		w.mu.Unlock()
		if len(q) > 0 {
			return q, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.ready:
		}
	}
}

// Stop unsubscribes the watcher.
func (w *Watcher) Stop() {
	w.end(context.Canceled)
	if w.unhook != nil {
		w.unhook()
	}
	if f := w.f; f != nil {
		f.unsubscribe(w)
	}
	if f := w.wild; f != nil {
		f.unsubscribe(w)
	}
}

func (w *Watcher) end(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.signal()
}
