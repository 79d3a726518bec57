package watch

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/pgkube/pgkube/storage"
)

// Position is where a watch across all logical clusters stands: each
// cluster's resourceVersion up to which it has every change. Clusters
// missing from it stand at 0 (they were made later).
type Position map[string]int64

// wildFeed tails every cluster's change log for this process's wildcard
// watchers (pgkube's own controllers, scheduler and agents). Like a
// cluster's feed it exists only while it has watchers. It learns which
// clusters changed from one query over the clusters table, so its cost
// follows the clusters that are busy, not how many exist.
type wildFeed struct {
	h    *Hub
	wake chan struct{}
	// state is shared with subscribers, under h.wildMu.
	state wildState
	// published is an immutable copy of pos for progress markers, made
	// again only when pos moved.
	published Position
}

type wildState struct {
	pos     Position
	byRes   map[string]map[*Watcher]struct{}
	stopped bool
	moved   bool
	// A read under way: cluster, upper end and resources, as a cluster
	// feed's inflight (see feed).
	inflightCluster string
	inflight        int64
	inflightRes     map[string]bool
}

// WatchAll starts a watcher of resource across every logical cluster,
// after position from. Its events carry their cluster; its progress
// markers carry a Position (Event.At) from which a new WatchAll continues.
func (h *Hub) WatchAll(ctx context.Context, resource, namespace string, from Position, filter Filter, progress bool) (*Watcher, error) {
	w := &Watcher{resource: resource, namespace: namespace, filter: filter, ready: make(chan struct{}, 1),
		progress: progress, afterAll: maps.Clone(from)}
	if w.afterAll == nil {
		w.afterAll = Position{}
	}
	f, pos, err := h.subscribeAll(ctx, w)
	if err != nil {
		return nil, err
	}
	// Catch up, cluster by cluster, from from to where the feed took over.
	// Clusters the feed has not read yet are behind from: it skips what
	// from has already seen.
	var caught []Event
	names := make([]string, 0, len(pos))
	for name := range pos {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for after, upTo := from[name], pos[name]; after < upTo; {
			changes, err := h.store.ChangesOf(ctx, name, []string{resource}, after, upTo, changesPerRead)
			if errors.Is(err, storage.ErrNoCluster) {
				break // removed meanwhile
			}
			if err != nil {
				f.unsubscribe(w)
				return nil, err
			}
			for _, c := range changes {
				if w.matches(&c) {
					caught = append(caught, Event{Change: c})
				}
			}
			if len(changes) < changesPerRead {
				break
			}
			after = changes[len(changes)-1].RV
		}
	}
	if len(caught) > 0 {
		w.mu.Lock()
		w.queue = append(caught, w.queue...)
		w.mu.Unlock()
		w.signal()
	}
	w.unhook = context.AfterFunc(ctx, w.Stop)
	return w, nil
}

// subscribeAll adds w to the wildcard feed, starting it if needed, and
// returns a copy of the position after which the feed delivers to w.
func (h *Hub) subscribeAll(ctx context.Context, w *Watcher) (*wildFeed, Position, error) {
	for {
		h.mu.Lock()
		f := h.wild
		if f == nil {
			h.mu.Unlock()
			rvs, err := h.store.ClusterRVs(ctx)
			if err != nil {
				return nil, nil, err
			}
			pos := Position{}
			for _, c := range rvs {
				pos[c.Name] = c.Current
			}
			h.mu.Lock()
			if h.wild == nil {
				h.wild = &wildFeed{h: h, wake: make(chan struct{}, 1),
					state: wildState{pos: pos, byRes: map[string]map[*Watcher]struct{}{}}}
				go h.wild.run()
			}
			h.mu.Unlock()
			continue
		}
		h.mu.Unlock()
		h.wildMu.Lock()
		if f.state.stopped {
			h.wildMu.Unlock()
			continue
		}
		set := f.state.byRes[w.resource]
		if set == nil {
			set = map[*Watcher]struct{}{}
			f.state.byRes[w.resource] = set
		}
		set[w] = struct{}{}
		w.wild = f
		pos := maps.Clone(f.state.pos)
		if st := &f.state; st.inflight > 0 && !st.inflightRes[w.resource] {
			pos[st.inflightCluster] = st.inflight
			w.afterAll[st.inflightCluster] = max(w.afterAll[st.inflightCluster], st.inflight)
		}
		h.wildMu.Unlock()
		return f, pos, nil
	}
}

func (f *wildFeed) unsubscribe(w *Watcher) {
	f.h.wildMu.Lock()
	defer f.h.wildMu.Unlock()
	if set := f.state.byRes[w.resource]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(f.state.byRes, w.resource)
		}
	}
	if len(f.state.byRes) == 0 {
		f.poke()
	}
}

func (f *wildFeed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *wildFeed) run() { tail(f.h.opts.CatchUp, f.wake, f.idle, f.catchUp) }

func (f *wildFeed) idle() bool {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.wildMu.Lock()
	defer f.h.wildMu.Unlock()
	if len(f.state.byRes) > 0 {
		return false
	}
	f.state.stopped = true
	f.h.wild = nil
	return true
}

// catchUp reads, for every cluster that moved, its log from where the
// feed stands to its current resourceVersion, and hands the changes out.
func (f *wildFeed) catchUp(ctx context.Context) {
	rvs, err := f.h.store.ClusterRVs(ctx)
	if err != nil {
		return // the next wake or tick retries
	}
	f.h.wildMu.Lock()
	resources := make([]string, 0, len(f.state.byRes))
	inflightRes := make(map[string]bool, len(f.state.byRes))
	for r := range f.state.byRes {
		resources = append(resources, r)
		inflightRes[r] = true
	}
	pos := f.state.pos
	seen := make(map[string]bool, len(rvs))
	var moved []storage.ClusterRV
	for _, c := range rvs {
		seen[c.Name] = true
		if c.Current > pos[c.Name] {
			moved = append(moved, c)
		}
	}
	removed := false
	for name := range pos {
		if !seen[name] {
			removed = true
		}
	}
	f.h.wildMu.Unlock()
	if removed {
		// A removed cluster's rows are gone with it, deletions
		// included: watchers learn by listing again (410), as after
		// compaction, and their caches lose its objects.
		f.expire(rvs)
		return
	}
	sort.Strings(resources)
	for _, c := range moved {
		f.h.wildMu.Lock()
		after := f.state.pos[c.Name]
		f.h.wildMu.Unlock()
		if after < c.Compacted {
			// This feed fell behind the kept history: its watchers
			// must start over from a list, as with any 410.
			f.expire(rvs)
			return
		}
		for after < c.Current {
			f.h.wildMu.Lock()
			f.state.inflightCluster, f.state.inflight, f.state.inflightRes = c.Name, c.Current, inflightRes
			f.h.wildMu.Unlock()
			changes, err := f.h.store.ChangesOf(ctx, c.Name, resources, after, c.Current, changesPerRead)
			if errors.Is(err, storage.ErrCompacted) {
				f.expire(rvs)
				return
			}
			if err != nil {
				f.h.wildMu.Lock()
				f.state.inflight = 0
				f.h.wildMu.Unlock()
				break // removed, or a passing failure: the next round retries
			}
			next := c.Current
			if len(changes) == changesPerRead {
				next = changes[len(changes)-1].RV
			}
			f.dispatch(c.Name, changes, next)
			after = next
		}
	}
	f.progress(time.Now())
}

func (f *wildFeed) dispatch(cluster string, changes []storage.Change, next int64) {
	f.h.wildMu.Lock()
	defer f.h.wildMu.Unlock()
	for i := range changes {
		c := &changes[i]
		ev := Event{Change: *c, Shared: &Shared{}}
		for w := range f.state.byRes[c.Resource] {
			if w.concerns(c) && !w.push(ev, f.h.opts.MaxQueue) {
				delete(f.state.byRes[c.Resource], w)
			}
		}
	}
	f.state.pos[cluster] = next
	f.state.moved = true
	f.state.inflight = 0
}

// progress gives watchers that want them a marker carrying the feed's
// position: everything up to it has been handed out.
func (f *wildFeed) progress(now time.Time) {
	f.h.wildMu.Lock()
	defer f.h.wildMu.Unlock()
	for res, set := range f.state.byRes {
		for w := range set {
			if !w.progress || now.Sub(w.lastProgress) < f.h.opts.ProgressEvery {
				continue
			}
			if f.state.moved || f.published == nil {
				f.published = maps.Clone(f.state.pos)
				f.state.moved = false
			}
			w.lastProgress = now
			e := Event{Progress: true, At: f.published}
			e.Resource = res
			if !w.push(e, f.h.opts.MaxQueue) {
				delete(set, w)
			}
		}
	}
}

// expire ends every wildcard watcher and starts the feed over from the
// present.
func (f *wildFeed) expire(rvs []storage.ClusterRV) {
	f.h.wildMu.Lock()
	defer f.h.wildMu.Unlock()
	for res, set := range f.state.byRes {
		for w := range set {
			w.end(storage.ErrCompacted)
		}
		delete(f.state.byRes, res)
	}
	pos := Position{}
	for _, c := range rvs {
		pos[c.Name] = c.Current
	}
	f.state.pos, f.state.moved, f.state.inflight = pos, true, 0
}
