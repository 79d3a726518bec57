package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/storage"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

// env is a store on a fresh database with a hub wired to its commits.
type env struct {
	url   string
	pool  *pgxpool.Pool
	store *storage.Store
	hub   *Hub
}

func newEnv(t *testing.T, url string, opts Options) *env {
	t.Helper()
	pool := pgtest.Pool(t, url)
	e := &env{url: url, pool: pool}
	e.store = storage.New(pool, storage.OnCommit(func(c string, o []storage.Object) { e.hub.Committed(c, o) }))
	e.hub = NewHub(e.store, opts)
	return e
}

func (e *env) write(t *testing.T, op storage.Op, res, name string, labels map[string]string) storage.Object {
	t.Helper()
	o, err := e.store.Write(context.Background(), "root", storage.Write{Op: op, Key: storage.Key{Resource: res, Namespace: "ns", Name: name},
		Labels: labels, Encode: func(rv int64) ([]byte, error) { return []byte(fmt.Sprintf(`{"rv":%d}`, rv)), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// next collects events until it has n changes (progress markers skipped).
func next(t *testing.T, w *Watcher, n int) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Event
	for len(out) < n {
		evs, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		for _, e := range evs {
			if !e.Progress {
				out = append(out, e)
			}
		}
	}
	return out
}

func TestWatcherGetsChangesInOrderFromItsStart(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: time.Hour})
	ctx := context.Background()
	first := e.write(t, storage.Create, "/cm", "a", nil)
	e.write(t, storage.Update, "/cm", "a", nil)
	e.write(t, storage.Create, "/other", "x", nil) // another resource: never delivered
	// Start from the first write: the second comes from the log, the rest
	// from the feed as they commit.
	w, err := e.hub.Watch(ctx, "root", "/cm", "", first.RV, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.write(t, storage.Create, "/cm", "b", nil)
	e.write(t, storage.Delete, "/cm", "a", nil)
	got := next(t, w, 3)
	if got[0].Name != "a" || got[1].Name != "b" || got[2].Name != "a" || !got[2].Deleted {
		t.Fatalf("events %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].RV <= got[i-1].RV || got[i].Resource != "/cm" {
			t.Fatalf("events out of order or of another resource: %v", got)
		}
	}
}

func TestFilterAndProgress(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: 20 * time.Millisecond, ProgressEvery: time.Millisecond})
	ctx := context.Background()
	cur, _, _ := e.store.CurrentRV(ctx, "root")
	w, err := e.hub.Watch(ctx, "root", "/cm", "", cur, func(c *storage.Change) bool { return c.Labels["keep"] == "yes" }, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.write(t, storage.Create, "/cm", "skip", map[string]string{"keep": "no"})
	kept := e.write(t, storage.Create, "/cm", "keep", map[string]string{"keep": "yes"})
	got := next(t, w, 1)
	if got[0].Name != "keep" {
		t.Fatalf("filter let through %v", got)
	}
	// A progress marker follows, at or past the last change.
	deadline := time.After(5 * time.Second)
	for {
		evs, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if !ev.Progress {
				t.Fatalf("unexpected change %v", ev)
			}
			if ev.RV >= kept.RV {
				return
			}
		}
		select {
		case <-deadline:
			t.Fatal("no progress marker past the last change")
		default:
		}
	}
}

func TestSlowWatcherIsClosed(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: time.Hour, MaxQueue: 5})
	ctx := context.Background()
	cur, _, _ := e.store.CurrentRV(ctx, "root")
	slow, err := e.hub.Watch(ctx, "root", "/cm", "", cur, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := e.hub.Watch(ctx, "root", "/cm", "", cur, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()
	for i := 0; i < 10; i++ {
		e.write(t, storage.Create, "/cm", fmt.Sprint(i), nil)
		next(t, fast, 1) // the fast one keeps up and is never stalled by the slow one
	}
	_, err = slow.Next(ctx)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("slow watcher: want ErrTooSlow, got %v", err)
	}
}

func TestIdleClusterHasNoFeed(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{})
	ctx := context.Background()
	before := runtime.NumGoroutine()
	w, err := e.hub.Watch(ctx, "root", "/cm", "", 0, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.hub.mu.Lock()
		n := len(e.hub.feeds)
		e.hub.mu.Unlock()
		if n == 0 && runtime.NumGoroutine() <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last watcher left: %d feeds, %d goroutines (was %d)", n, runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotifyWakesOtherProcesses: with catch-up reads effectively off, a
// watcher on one hub sees a write committed through another store sharing
// the database within moments: NOTIFY carried the news.
func TestNotifyWakesOtherProcesses(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := newEnv(t, url, Options{CatchUp: time.Hour})
	b := newEnv(t, url, Options{CatchUp: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.hub.Start(ctx, a.pool, url, nil)
	b.hub.Start(ctx, b.pool, url, nil)
	cur, _, _ := b.store.CurrentRV(ctx, "root")
	w, err := b.hub.Watch(ctx, "root", "/cm", "", cur, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	time.Sleep(300 * time.Millisecond) // both LISTENs are up
	start := time.Now()
	a.write(t, storage.Create, "/cm", "remote", nil)
	got := next(t, w, 1)
	if got[0].Name != "remote" {
		t.Fatalf("got %v", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a remote commit took %v to arrive", d)
	}
}

func TestCompactedStartIsRefused(t *testing.T) {
	e := newEnv(t, pgtest.NewDatabase(t), Options{CatchUp: time.Hour})
	ctx := context.Background()
	e.write(t, storage.Create, "/cm", "a", nil)
	e.write(t, storage.Update, "/cm", "a", nil)
	if err := e.store.Compact(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hub.Watch(ctx, "root", "/cm", "", 0, nil, false); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("watch from before the kept history: want ErrCompacted, got %v", err)
	}
}
