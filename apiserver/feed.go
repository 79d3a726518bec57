package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	"k8s.io/apimachinery/pkg/runtime"
)

// feedKind is one resource a feed follows: its storage key and an empty
// object of its type to decode into.
type feedKind struct {
	key string
	new func() runtime.Object
}

// cache is what a feed keeps current: an in-memory view (RBAC policy,
// webhook configurations, admission policies) of some resources of one
// cluster.
type cache interface {
	// Replace installs the complete state, after a start or a gap.
	Replace(cluster string, objs []runtime.Object)
	// Apply records one change.
	Apply(cluster string, obj runtime.Object, deleted bool)
}

// feed keeps a cache in step with storage: a snapshot, then the change log
// through the watch hub, as upstream's components follow informers. A gap
// (a watcher that fell behind, compacted history) means a fresh snapshot.
type feed struct {
	store   *storage.Store
	hub     *watch.Hub
	cluster string
	kinds   []feedKind
	cache   cache
	log     *slog.Logger
	// changed, if set, is told after each batch of changes of a kind, and
	// after a reload (key "").
	changed func(key string)
}

// load replaces the cache with the state at the cluster's current
// resourceVersion and returns that version.
func (f *feed) load(ctx context.Context) (int64, error) {
	rv, _, err := f.store.CurrentRV(ctx, f.cluster)
	if err != nil {
		return 0, err
	}
	var objs []runtime.Object
	for _, k := range f.kinds {
		res, err := f.store.List(ctx, f.cluster, storage.ListOptions{Resource: k.key, AtRV: rv})
		if err != nil {
			return 0, fmt.Errorf("load %s: %w", k.key, err)
		}
		for _, o := range res.Items {
			obj := k.new()
			if err := json.Unmarshal(o.Data, obj); err != nil {
				return 0, fmt.Errorf("load %s: %w", o.Key, err)
			}
			objs = append(objs, obj)
		}
	}
	f.cache.Replace(f.cluster, objs)
	return rv, nil
}

// run follows changes after rv until ctx ends.
func (f *feed) run(ctx context.Context, rv int64) {
	for ctx.Err() == nil {
		err := f.follow(ctx, rv)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("feed restarting", "kinds", f.kinds[0].key, "cluster", f.cluster, "err", err)
		for ctx.Err() == nil {
			if rv, err = f.load(ctx); err == nil {
				if f.changed != nil {
					f.changed("")
				}
				break
			}
			f.log.Warn("feed reload", "cluster", f.cluster, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (f *feed) follow(ctx context.Context, rv int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(f.kinds))
	for _, k := range f.kinds {
		w, err := f.hub.Watch(ctx, f.cluster, k.key, "", rv, nil, false)
		if err != nil {
			return err
		}
		go func() {
			defer w.Stop()
			for {
				events, err := w.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				for _, e := range events {
					if e.Progress {
						continue
					}
					obj := k.new()
					if err := json.Unmarshal(e.Data, obj); err != nil {
						errs <- fmt.Errorf("%s: %w", e.Key, err)
						return
					}
					f.cache.Apply(f.cluster, obj, e.Deleted)
				}
				if f.changed != nil {
					f.changed(k.key)
				}
			}
		}()
	}
	return <-errs
}

// follow hands fn every change of one resource of a cluster after rv,
// until ctx ends or the watch fails.
func follow(ctx context.Context, hub *watch.Hub, cluster, key string, rv int64, fn func(data []byte, deleted bool)) error {
	w, err := hub.Watch(ctx, cluster, key, "", rv, nil, false)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		events, err := w.Next(ctx)
		if err != nil {
			return err
		}
		for _, e := range events {
			if !e.Progress {
				fn(e.Data, e.Deleted)
			}
		}
	}
}
