package framework

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// SyncFunc reconciles one object from the current state (read it from
// listers): level-based, so it does the same whatever events led here. An
// error requeues the key with back-off.
type SyncFunc func(ctx context.Context, key Key) error

// Queue is a rate-limited work queue of Keys and the workers that drain
// it: a key is never synced by two workers at once, keys added while being
// synced are synced again after, failures are retried with exponential
// back-off (5 ms doubling to 2 minutes per key, 50/s overall).
type Queue struct {
	name string
	sync SyncFunc
	q    workqueue.TypedRateLimitingInterface[Key]
}

// NewQueue makes a queue whose workers call sync.
func NewQueue(name string, sync SyncFunc) *Queue {
	rl := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](5*time.Millisecond, 2*time.Minute),
		&workqueue.TypedBucketRateLimiter[Key]{Limiter: rate.NewLimiter(rate.Limit(50), 300)},
	)
	return &Queue{name: name, sync: sync,
		q: workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[Key]{Name: name})}
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Enqueue adds a key.
func (q *Queue) Enqueue(k Key) { q.q.Add(k) }

// EnqueueAfter adds a key after d.
func (q *Queue) EnqueueAfter(k Key, d time.Duration) { q.q.AddAfter(k, d) }

// EnqueueObject adds the key of an object handed to an event handler
// (tombstones included).
func (q *Queue) EnqueueObject(obj any) {
	if k, ok := KeyFromEvent(obj); ok {
		q.q.Add(k)
	}
}

// Len is the number of keys waiting.
func (q *Queue) Len() int { return q.q.Len() }

// Handler is an event handler that enqueues the changed object's own key
// on every add, update and delete.
func (q *Queue) Handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    q.EnqueueObject,
		UpdateFunc: func(_, obj any) { q.EnqueueObject(obj) },
		DeleteFunc: q.EnqueueObject,
	}
}

// Run waits for the informers' caches (synced), then runs workers until ctx
// ends, then shuts the queue down and waits for the workers.
func (q *Queue) Run(ctx context.Context, workers int, synced ...cache.InformerSynced) {
	defer utilruntime.HandleCrashWithContext(ctx)
	logger := klog.FromContext(ctx).WithValues("controller", q.name)
	go func() {
		<-ctx.Done()
		q.q.ShutDown()
	}()
	if !cache.WaitForNamedCacheSync(q.name, ctx.Done(), synced...) {
		return
	}
	if workers < 1 {
		workers = 1
	}
	logger.V(2).Info("Starting workers", "count", workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for q.next(ctx, logger) {
				}
			}, time.Second)
		}()
	}
	wg.Wait()
}

func (q *Queue) next(ctx context.Context, logger klog.Logger) bool {
	k, quit := q.q.Get()
	if quit {
		return false
	}
	defer q.q.Done(k)
	err := q.safeSync(ctx, k)
	if err == nil {
		q.q.Forget(k)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	logger.V(2).Info("Sync failed, will retry", "key", k.String(), "retries", q.q.NumRequeues(k), "err", err.Error())
	q.q.AddRateLimited(k)
	return true
}

func (q *Queue) safeSync(ctx context.Context, k Key) (err error) {
	defer func() {
		if r := recover(); r != nil {
			utilruntime.HandleErrorWithContext(ctx, nil, "Sync panicked", "controller", q.name, "key", k.String(), "panic", r)
			err = fmt.Errorf("sync panicked: %v", r)
		}
	}()
	return q.sync(ctx, k)
}
