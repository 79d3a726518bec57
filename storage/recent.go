package storage

import "sync"

// recentBytes bounds the data the recent-writes cache holds.
const recentBytes = 16 << 20

// recent remembers the last version this process wrote of recently written
// objects. An update can start from it instead of reading the row first,
// as kube-apiserver starts from its watch cache: the write is conditioned
// on that version, so a stale guess (another process wrote since) costs a
// conflict and a real read, never a lost update.
type recent struct {
	mu    sync.Mutex
	items map[recentKey]Object
	order []recentKey // insertion order, oldest first, for eviction
	bytes int
}

type recentKey struct {
	cluster string
	key     Key
}

func newRecent() *recent { return &recent{items: map[recentKey]Object{}} }

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
		old, had := r.items[k]
		r.bytes -= len(old.Data)
		if o.Deleted {
			delete(r.items, k) // its place in order is dropped when reached
			continue
		}
		if !had {
			r.order = append(r.order, k)
		}
		o.Labels, o.Fields = nil, nil // updates need only the data
		r.items[k] = o
		r.bytes += len(o.Data)
	}
	for r.bytes > recentBytes && len(r.order) > 0 {
		k := r.order[0]
		r.order = r.order[1:]
		if o, ok := r.items[k]; ok {
			r.bytes -= len(o.Data)
			delete(r.items, k)
		}
	}
	if len(r.order) > 2*len(r.items)+1024 || cap(r.order) > 4*len(r.order)+1024 {
		r.compact()
	}
}

// compact drops deleted and repeated keys from order, keeping each live
// key's first place, and lets go of the trimmed head of the slice.
func (r *recent) compact() {
	seen := make(map[recentKey]bool, len(r.items))
	kept := make([]recentKey, 0, len(r.items))
	for _, k := range r.order {
		if _, ok := r.items[k]; ok && !seen[k] {
			seen[k] = true
			kept = append(kept, k)
		}
	}
	r.order = kept
}

// Recent returns the version of key this process wrote last, if it still
// remembers it. It may be stale: use it only as the base of a write
// conditioned on its resourceVersion.
func (s *Store) Recent(cluster string, key Key) (Object, bool) {
	return s.recent.get(cluster, key)
}
