// Package written remembers the objects a controller wrote, so that a
// sync does not act on an informer cache that has not seen them yet: it
// would undo or repeat the write (create a second EndpointSlice, count a
// finished pod twice).
package written

import (
	"strconv"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tracker remembers the objects a controller wrote, so that a sync does not
// act on a cache that has not seen them yet (it would undo or repeat the
// write): written objects must show up at least at the resourceVersion
// written, deleted ones must go. Records are per owner (a Service, a Job) and
// are dropped once the cache caught up, when the object is deleted, or
// after TTL whatever happened.
type Tracker struct {
	mu      sync.Mutex
	now     func() time.Time
	records map[framework.Key][]staleRecord
}

// TTL bounds how long a write holds syncs back.
const TTL = 15 * time.Second

type staleRecord struct {
	obj     framework.Key
	uid     string
	rv      uint64
	deleted bool
	at      time.Time
}

// New makes an empty tracker.
func New() *Tracker {
	return &Tracker{now: time.Now, records: map[framework.Key][]staleRecord{}}
}

func rvOf(m metav1.Object) (uint64, bool) {
	v, err := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
	return v, err == nil
}

func (s *Tracker) add(owner framework.Key, r staleRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.records[owner][:0:0]
	for _, x := range s.records[owner] {
		if x.uid != r.uid {
			recs = append(recs, x)
		}
	}
	s.records[owner] = append(recs, r)
}

// Wrote records obj (as the server answered), just created or updated for
// owner.
func (s *Tracker) Wrote(owner framework.Key, obj metav1.Object) {
	rv, ok := rvOf(obj)
	if !ok {
		return // not comparable: nothing to wait for
	}
	k := framework.Key{Cluster: owner.Cluster, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	s.add(owner, staleRecord{obj: k, uid: string(obj.GetUID()), rv: rv, at: s.now()})
}

// Deleted records obj, just deleted for owner.
func (s *Tracker) Deleted(owner framework.Key, obj metav1.Object) {
	k := framework.Key{Cluster: owner.Cluster, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	s.add(owner, staleRecord{obj: k, uid: string(obj.GetUID()), deleted: true, at: s.now()})
}

// Gone is called by the informer's delete handler: obj will not show up
// again.
func (s *Tracker) Gone(owner framework.Key, obj metav1.Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.records[owner][:0:0]
	for _, x := range s.records[owner] {
		if x.uid != string(obj.GetUID()) {
			recs = append(recs, x)
		}
	}
	if len(recs) == 0 {
		delete(s.records, owner)
	} else {
		s.records[owner] = recs
	}
}

// IsStale tells whether the cache (get: the cached object or nil) has not
// yet seen all of owner's writes.
func (s *Tracker) IsStale(owner framework.Key, get func(framework.Key) metav1.Object) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var left []staleRecord
	for _, r := range s.records[owner] {
		if now.Sub(r.at) > TTL {
			continue
		}
		cur := get(r.obj)
		if cur != nil && string(cur.GetUID()) != r.uid {
			cur = nil // replaced: ours is gone
		}
		switch {
		case r.deleted && cur == nil:
			continue
		case !r.deleted && cur != nil:
			if rv, ok := rvOf(cur); !ok || rv >= r.rv {
				continue
			}
		}
		left = append(left, r)
	}
	if len(left) == 0 {
		delete(s.records, owner)
		return false
	}
	s.records[owner] = left
	return true
}

// Forget drops owner's records.
func (s *Tracker) Forget(owner framework.Key) {
	s.mu.Lock()
	delete(s.records, owner)
	s.mu.Unlock()
}
