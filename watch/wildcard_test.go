package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/storage"
)

func (e *env) writeIn(t *testing.T, cluster, res, name string) storage.Object {
	t.Helper()
	o, err := e.store.Write(context.Background(), cluster, storage.Write{Op: storage.Create, Key: storage.Key{Resource: res, Namespace: "ns", Name: name},
		Encode: func(rv int64) ([]byte, error) { return []byte(fmt.Sprintf(`{"rv":%d}`, rv)), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A wildcard watcher gets every cluster's changes after its position,
// each with its cluster, old ones from the log and new ones from the feed,
// including those of a cluster made after it started; a progress marker's
// position continues a new watcher without repeats.
func TestWatchAllClusters(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: time.Hour, ProgressEvery: time.Millisecond})
	ctx := context.Background()
	for _, c := range []string{"a", "b"} {
		if err := e.store.EnsureCluster(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	e.writeIn(t, "a", "/cm", "old-a")
	// Before the watch: from the log.
	e.writeIn(t, "b", "/cm", "log-b")
	e.writeIn(t, "b", "/other", "never")
	w, err := e.hub.WatchAll(ctx, "/cm", "", Position{"a": 1, "b": 0, "root": 0}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnsureCluster(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	e.writeIn(t, "c", "/cm", "new-c")
	e.writeIn(t, "root", "/cm", "feed-root")
	got := map[string]bool{}
	for _, ev := range next(t, w, 3) {
		got[ev.Cluster+"/"+ev.Name] = true
	}
	for _, want := range []string{"b/log-b", "c/new-c", "root/feed-root"} {
		if !got[want] {
			t.Errorf("missing %s; got %v", want, got)
		}
	}
	// Wait for a marker that has seen everything so far.
	var at Position
	deadline := time.Now().Add(10 * time.Second)
	for at["c"] == 0 || at["root"] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress marker covering the changes: %v", at)
		}
		e.hub.wakeAll()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		evs, _ := w.Next(cctx)
		cancel()
		for _, ev := range evs {
			if ev.Progress {
				at = ev.At
			} else {
				t.Errorf("unexpected change %s/%s", ev.Cluster, ev.Name)
			}
		}
	}
	w.Stop()
	e.writeIn(t, "a", "/cm", "after-a")
	w2, err := e.hub.WatchAll(ctx, "/cm", "", at, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	evs := next(t, w2, 1)
	if evs[0].Cluster != "a" || evs[0].Name != "after-a" {
		t.Errorf("resumed watch got %s/%s first, want a/after-a", evs[0].Cluster, evs[0].Name)
	}
}

// Wildcard watchers of a resource that join while the feed reads others'
// changes miss none of theirs, whatever the timing.
func TestWatchAllJoinersMissNothing(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: 5 * time.Millisecond})
	ctx := context.Background()
	busy, err := e.hub.WatchAll(ctx, "/busy", "", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Stop()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := storage.Key{Resource: "/busy", Namespace: "ns", Name: fmt.Sprintf("b%d", i)}
			if _, err := e.store.Write(ctx, "root", storage.Write{Op: storage.Create, Key: key,
				Encode: func(int64) ([]byte, error) { return []byte(`{}`), nil }}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := range 20 {
		rvs, err := e.store.ClusterRVs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos := Position{}
		for _, c := range rvs {
			pos[c.Name] = c.Current
		}
		// Written after the position, before the watcher joins: it must
		// come from the log or the feed, whichever read is under way.
		e.writeIn(t, "root", fmt.Sprintf("/r%d", i), "x")
		w, err := e.hub.WatchAll(ctx, fmt.Sprintf("/r%d", i), "", pos, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if evs := next(t, w, 1); evs[0].Name != "x" {
			t.Errorf("joiner %d got %v", i, evs[0].Name)
		}
		w.Stop()
	}
}

// When a cluster is removed, wildcard watchers end with ErrCompacted (410
// for clients): the removed rows, deletions included, cannot be replayed,
// and a fresh list drops the cluster's objects from their caches.
func TestWatchAllEndsWhenAClusterGoes(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: 10 * time.Millisecond})
	ctx := context.Background()
	if err := e.store.EnsureCluster(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	e.writeIn(t, "doomed", "/cm", "x")
	w, err := e.hub.WatchAll(ctx, "/cm", "", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	next(t, w, 1)
	if err := e.store.RemoveCluster(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, err := w.Next(cctx)
		if errors.Is(err, storage.ErrCompacted) {
			return
		}
		if err != nil {
			t.Fatalf("watcher ended with %v, want ErrCompacted", err)
		}
	}
}
