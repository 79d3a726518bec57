package job

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// expectationsTTL bounds how long a Job waits for its informer to show the
// pods it created or deleted before it acts again anyway.
const expectationsTTL = 5 * time.Minute

// expectations count, per Job, the pod creations and deletions issued and
// not yet seen by the informer; while some are outstanding the Job does not
// create or delete more (a lagging cache would make it repeat them).
type expectations struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*expectation
}

type expectation struct {
	add, del int
	at       time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{now: now, m: map[string]*expectation{}}
}

func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return x.add <= 0 && x.del <= 0 || e.now().Sub(x.at) > expectationsTTL
}

func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: n, at: e.now()}
}

func (e *expectations) expectDeletions(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{del: n, at: e.now()}
}

func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.add--
	}
}

func (e *expectations) deletionObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.del--
	}
}

func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

// uidExpectations remember, per Job, the pods whose tracking finalizer
// removal was issued and not yet seen: they are not counted again.
type uidExpectations struct {
	mu sync.Mutex
	m  map[string]sets.Set[types.UID]
}

func newUIDExpectations() *uidExpectations {
	return &uidExpectations{m: map[string]sets.Set[types.UID]{}}
}

func (u *uidExpectations) get(key string) sets.Set[types.UID] {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[key].Clone()
}

func (u *uidExpectations) expect(key string, uids []types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m[key] == nil {
		u.m[key] = sets.New[types.UID]()
	}
	u.m[key].Insert(uids...)
}

func (u *uidExpectations) observed(key string, uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.m[key]; s != nil {
		s.Delete(uid)
		if s.Len() == 0 {
			delete(u.m, key)
		}
	}
}

func (u *uidExpectations) forget(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, key)
}
