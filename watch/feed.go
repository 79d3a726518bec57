package watch

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
)

// changesPerRead bounds one read of the log.
const changesPerRead = 1000

// feed tails one cluster's change log for this process's watchers. It
// exists only while the cluster has watchers here: an idle tenant costs no
// goroutine.
type feed struct {
	h       *Hub
	cluster string
	wake    chan struct{}
	mu      sync.Mutex
	pos     int64 // every change up to pos has been handed out
	byRes   map[string]map[*Watcher]struct{}
	stopped bool
	// inflight is the upper end of a read under way (0: none), of the
	// resources in inflightRes. A watcher of another resource joining
	// meanwhile would find its changes in that range neither in the read
	// nor behind pos, so it catches up to inflight itself.
	inflight    int64
	inflightRes map[string]bool
}

// subscribe adds w to the cluster's feed, starting the feed if needed, and
// returns the position after which the feed will deliver to w.
func (h *Hub) subscribe(ctx context.Context, cluster string, w *Watcher) (*feed, int64, error) {
	for {
		h.mu.Lock()
		f := h.feeds[cluster]
		if f == nil {
			h.mu.Unlock()
			cur, _, err := h.store.CurrentRV(ctx, cluster)
			if err != nil {
				return nil, 0, err
			}
			h.mu.Lock()
			if h.feeds[cluster] == nil {
				h.tokens[notifyToken(cluster)] = cluster
				f = &feed{h: h, cluster: cluster, wake: make(chan struct{}, 1), pos: cur, byRes: map[string]map[*Watcher]struct{}{}}
				h.feeds[cluster] = f
				go f.run()
			}
			h.mu.Unlock()
			continue
		}
		h.mu.Unlock()
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			continue // it is shutting down; a new one will be made
		}
		set := f.byRes[w.resource]
		if set == nil {
			set = map[*Watcher]struct{}{}
			f.byRes[w.resource] = set
		}
		set[w] = struct{}{}
		w.f = f
		pos := f.pos
		if f.inflight > 0 && !f.inflightRes[w.resource] {
			pos = f.inflight
			w.after = max(w.after, pos)
		}
		f.mu.Unlock()
		return f, pos, nil
	}
}

func (f *feed) unsubscribe(w *Watcher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if set := f.byRes[w.resource]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(f.byRes, w.resource)
		}
	}
	if len(f.byRes) == 0 {
		f.poke() // let it notice it is idle
	}
}

func (f *feed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *feed) run() { tail(f.h.opts.CatchUp, f.wake, f.idle, f.catchUp) }

// tail is a feed's loop: catch up, then wait for a wake or the next tick,
// until the feed is idle.
func tail(every time.Duration, wake <-chan struct{}, idle func() bool, catchUp func(context.Context)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	ctx := context.Background()
	for !idle() {
		catchUp(ctx)
		select {
		case <-wake:
		case <-tick.C:
		}
	}
}

// idle retires the feed once it has no watchers.
func (f *feed) idle() bool {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.byRes) > 0 {
		return false
	}
	f.stopped = true
	delete(f.h.feeds, f.cluster)
	return true
}

// catchUp reads the log from pos to the cluster's current resourceVersion
// and hands each change to the watchers it concerns.
func (f *feed) catchUp(ctx context.Context) {
	cur, _, err := f.h.store.CurrentRV(ctx, f.cluster)
	if err != nil {
		return // the next wake or tick retries
	}
	for {
		f.mu.Lock()
		pos := f.pos
		resources := make([]string, 0, len(f.byRes))
		f.inflightRes = make(map[string]bool, len(f.byRes))
		for r := range f.byRes {
			resources = append(resources, r)
			f.inflightRes[r] = true
		}
		if pos < cur {
			f.inflight = cur
		}
		f.mu.Unlock()
		if pos >= cur {
			break
		}
		sort.Strings(resources)
		changes, err := f.h.store.ChangesOf(ctx, f.cluster, resources, pos, cur, changesPerRead)
		if errors.Is(err, storage.ErrCompacted) {
			f.expire(cur)
			return
		}
		if err != nil {
			f.mu.Lock()
			f.inflight = 0
			f.mu.Unlock()
			return
		}
		next := cur
		if len(changes) == changesPerRead {
			next = changes[len(changes)-1].RV
		}
		f.dispatch(changes, next)
	}
	f.progress(time.Now())
}

// dispatch hands changes to watchers and moves pos to next under one lock,
// so a watcher subscribing meanwhile sees either all of them from the log
// or all of them from the feed.
func (f *feed) dispatch(changes []storage.Change, next int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range changes {
		c := &changes[i]
		ev := Event{Change: *c, Shared: &Shared{}}
		for w := range f.byRes[c.Resource] {
			if w.concerns(c) && !w.push(ev, f.h.opts.MaxQueue) {
				delete(f.byRes[c.Resource], w)
			}
		}
	}
	f.pos = next
	f.inflight = 0
}

// progress tells every watcher, at most every ProgressEvery, that it has
// everything up to pos: the resourceVersion its bookmarks may carry.
func (f *feed) progress(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for res, set := range f.byRes {
		for w := range set {
			if !w.progress || now.Sub(w.lastProgress) < f.h.opts.ProgressEvery {
				continue
			}
			w.lastProgress = now
			e := Event{Progress: true}
			e.RV = f.pos
			e.Resource = res
			if !w.push(e, f.h.opts.MaxQueue) {
				delete(set, w)
			}
		}
	}
}

// expire ends every watcher when the feed fell behind compaction: changes
// are gone, so clients must relist (410), as upstream.
func (f *feed) expire(cur int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for res, set := range f.byRes {
		for w := range set {
			w.end(storage.ErrCompacted)
		}
		delete(f.byRes, res)
	}
	f.pos = cur
	f.inflight = 0
}
