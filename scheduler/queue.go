package scheduler

import (
	"container/heap"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Back-off of pods that did not fit, and how long one waits among the
// unschedulable before it is tried again anyway (upstream: 1 s doubling
// to 10 s; 5 minutes).
const (
	initialBackoff        = time.Second
	maxBackoff            = 10 * time.Second
	unschedulableMaxStay  = 60 * time.Second
	queueFlushInterval    = 100 * time.Millisecond
	unschedulableInterval = 5 * time.Second
)

type where int

const (
	inNone where = iota
	inActive
	inBackoff
	inUnschedulable
	inFlight
)

// qpod is a pending pod in the queue.
type qpod struct {
	pod      *corev1.Pod
	priority int32
	added    time.Time // first queued: older goes first among equals
	attempts int
	lastTry  time.Time
	where    where
	index    int   // in active
	cycle    int64 // scheduling cycle it was popped in
	moved    bool  // the cluster changed while it was in flight
	updated  bool  // the pod changed while it was in flight
	gone     bool  // deleted or placed while in flight
}

func (q *qpod) backoffUntil() time.Time {
	if q.attempts == 0 {
		return q.lastTry
	}
	d := initialBackoff
	for i := 1; i < q.attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return q.lastTry.Add(min(d, maxBackoff))
}

// queue orders pending pods: the active heap (higher priority first, then
// the longest waiting), pods backing off after a failed attempt, and
// unschedulable pods that wait for a change in the cluster (or
// unschedulableMaxStay).
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool
	now    func() time.Time

	pods          map[types.UID]*qpod
	active        activeHeap
	backoff       map[types.UID]*qpod
	unschedulable map[types.UID]*qpod
	flight        *qpod // the pod being tried
	cycle         int64
}

func newQueue(now func() time.Time) *queue {
	q := &queue{now: now, pods: map[types.UID]*qpod{}, backoff: map[types.UID]*qpod{}, unschedulable: map[types.UID]*qpod{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

type activeHeap []*qpod

func (h activeHeap) Len() int { return len(h) }
func (h activeHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	return h[i].added.Before(h[j].added)
}
func (h activeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *activeHeap) Push(x any) {
	p := x.(*qpod)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *activeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}

func (q *queue) toActive(p *qpod) {
	p.where = inActive
	heap.Push(&q.active, p)
	q.cond.Signal()
}

// detach takes p out of whichever list it is in.
func (q *queue) detach(p *qpod) {
	switch p.where {
	case inActive:
		heap.Remove(&q.active, p.index)
	case inBackoff:
		delete(q.backoff, p.pod.UID)
	case inUnschedulable:
		delete(q.unschedulable, p.pod.UID)
	}
	p.where = inNone
}

// add queues a new pending pod, or takes note of a change to a queued
// one: a pod whose spec, labels or annotations changed may fit now, so an
// unschedulable one is tried again (after its back-off); a change of its
// status alone (such as the scheduler's own) changes nothing.
func (q *queue) add(pod *corev1.Pod, changed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pods[pod.UID]
	if p == nil {
		p = &qpod{pod: pod, priority: podPriority(pod), added: q.now()}
		q.pods[pod.UID] = p
		q.toActive(p)
		return
	}
	p.pod = pod
	if !changed {
		return
	}
	switch p.where {
	case inActive:
		if pr := podPriority(pod); pr != p.priority {
			p.priority = pr
			heap.Fix(&q.active, p.index)
		}
	case inUnschedulable:
		q.detach(p)
		q.requeue(p)
	case inFlight:
		p.updated = true
	}
}

// requeue puts p in active, or in backoff while it waits out its back-off.
func (q *queue) requeue(p *qpod) {
	if q.now().Before(p.backoffUntil()) {
		p.where = inBackoff
		q.backoff[p.pod.UID] = p
		return
	}
	q.toActive(p)
}

// remove forgets a pod (deleted, bound, or no longer the scheduler's).
func (q *queue) remove(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pods[uid]
	if p == nil {
		return
	}
	if p.where == inFlight {
		p.gone = true
	}
	q.detach(p)
	delete(q.pods, uid)
}

// pop waits for the next pod to try; nil once closed.
func (q *queue) pop() *qpod {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.active) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	p := heap.Pop(&q.active).(*qpod)
	q.cycle++
	p.where, p.cycle, p.moved, p.updated = inFlight, q.cycle, false, false
	q.flight = p
	p.attempts++
	p.lastTry = q.now()
	return p
}

// done ends an attempt: a pod that fit leaves the queue; one that did not
// waits among the unschedulable, unless the cluster or the pod changed
// during the attempt, when it backs off and is tried again.
func (q *queue) done(p *qpod, scheduled bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.flight == p {
		q.flight = nil
	}
	if p.gone || q.pods[p.pod.UID] != p {
		return
	}
	if scheduled {
		p.where = inNone
		delete(q.pods, p.pod.UID)
		return
	}
	if p.moved || p.updated {
		q.requeue(p)
		return
	}
	p.where = inUnschedulable
	q.unschedulable[p.pod.UID] = p
}

// retry puts a pod back after an error (e.g. a failed binding), with
// back-off.
func (q *queue) retry(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pods[pod.UID]
	if p == nil {
		p = &qpod{pod: pod, priority: podPriority(pod), added: q.now(), attempts: 1, lastTry: q.now()}
		q.pods[pod.UID] = p
	}
	if p.where == inFlight || p.where == inNone {
		p.where = inNone
		q.requeue(p)
	}
}

// moveAll: the cluster changed (a node came or changed, a pod left), so
// every unschedulable pod may fit now.
func (q *queue) moveAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.unschedulable {
		q.detach(p)
		q.requeue(p)
	}
	if q.flight != nil {
		q.flight.moved = true
	}
}

// flushBackoff moves pods whose back-off is over to active.
func (q *queue) flushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, p := range q.backoff {
		if !now.Before(p.backoffUntil()) {
			q.detach(p)
			q.toActive(p)
		}
	}
}

// flushUnschedulable tries again the pods unschedulable for too long.
func (q *queue) flushUnschedulable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, p := range q.unschedulable {
		if now.Sub(p.lastTry) >= unschedulableMaxStay {
			q.detach(p)
			q.requeue(p)
		}
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// lengths: active, backoff, unschedulable.
func (q *queue) lengths() (int, int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active), len(q.backoff), len(q.unschedulable)
}
