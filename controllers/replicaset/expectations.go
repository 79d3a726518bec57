package replicaset

import (
	"sync"
	"time"
)

// ExpectationsTTL bounds how long a controller waits for its informer to
// show the creations and deletions it made before acting again anyway.
const ExpectationsTTL = 5 * time.Minute

// Expectations remember, per controller key, how many pod creations and
// which pod deletions the controller has issued and not yet seen in its
// informer. While some are outstanding the controller does not create or
// delete more, so a burst is not repeated because the cache lags.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*expectation
	now func() time.Time
}

type expectation struct {
	adds    int
	deletes map[string]bool
	at      time.Time
}

// NewExpectations: now may be nil for time.Now.
func NewExpectations(now func() time.Time) *Expectations {
	if now == nil {
		now = time.Now
	}
	return &Expectations{m: map[string]*expectation{}, now: now}
}

// Satisfied reports whether the controller may act: nothing outstanding,
// never recorded, or the record is older than ExpectationsTTL.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	if x.adds <= 0 && len(x.deletes) == 0 {
		return true
	}
	return e.now().Sub(x.at) > ExpectationsTTL
}

// ExpectCreations records n creations about to be issued.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: n, deletes: map[string]bool{}, at: e.now()}
}

// ExpectDeletions records the pods about to be deleted.
func (e *Expectations) ExpectDeletions(key string, pods []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{deletes: map[string]bool{}, at: e.now()}
	for _, p := range pods {
		x.deletes[p] = true
	}
	e.m[key] = x
}

// CreationObserved: one expected pod appeared (or its creation failed).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.adds > 0 {
		x.adds--
	}
}

// DeletionObserved: the pod is gone or being deleted (or its deletion
// failed).
func (e *Expectations) DeletionObserved(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.deletes, pod)
	}
}

// Forget drops the record of a controller that is gone.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
