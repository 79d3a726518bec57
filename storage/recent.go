package storage

import "sync"

// recentSize bounds the recent-writes cache (entries, not bytes: objects
// are at most ~1.5 MiB, typically a few KiB).
const recentSize = 8192

// recent remembers the last version this process wrote of recently written
// objects. An update can start from it instead of reading the row first,
// as kube-apiserver starts from its watch cache: the write is conditioned
// on that version, so a stale guess (another process wrote since) costs a
// conflict and a real read, never a lost update.
type recent struct {
	mu    sync.Mutex
	items map[recentKey]Object
	ring  []recentKey // insertion order, for eviction
	next  int
}

type recentKey struct {
	cluster string
	key     Key
}

func newRecent() *recent {
	return &recent{items: make(map[recentKey]Object, recentSize), ring: make([]recentKey, recentSize)}
}

func (r *recent) get(cluster string, key Key) (Object, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.items[recentKey{cluster, key}]
	return o, ok
}

func (r *recent) committed(cluster string, objs []Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range objs {
		k := recentKey{cluster, o.Key}
		if o.Deleted {
			delete(r.items, k)
			continue
		}
		if _, ok := r.items[k]; !ok {
			if old := r.ring[r.next]; old != (recentKey{}) {
				delete(r.items, old)
			}
			r.ring[r.next] = k
			r.next = (r.next + 1) % len(r.ring)
		}
		r.items[k] = o
	}
}

// Recent returns the version of key this process wrote last, if it still
// remembers it. It may be stale: use it only as the base of a write
// conditioned on its resourceVersion.
func (s *Store) Recent(cluster string, key Key) (Object, bool) {
	return s.recent.get(cluster, key)
}
