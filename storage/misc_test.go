package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForRV(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Already reached: no waiting, whatever the timeout.
	for _, rv := range []int64{0, -1} {
		if err := s.WaitForRV(ctx, "root", rv, 0); err != nil {
			t.Errorf("WaitForRV(%d) at rv 0: %v", rv, err)
		}
	}
	k := pod("ns", "a")
	create(t, s, "root", k, "", nil, nil)
	if err := s.WaitForRV(ctx, "root", 1, 0); err != nil {
		t.Errorf("WaitForRV(1) at rv 1: %v", err)
	}

	// Reached while waiting.
	written := make(chan error, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		_, err := s.Write(ctx, "root", Write{Op: Update, Key: k, Encode: encoder(k, "")})
		written <- err
	}()
	start := time.Now()
	if err := s.WaitForRV(ctx, "root", 2, 10*time.Second); err != nil {
		t.Errorf("WaitForRV(2) with a write coming: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitForRV took %v to see a write made after 150ms", d)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	// Not reached in time.
	start = time.Now()
	err := s.WaitForRV(ctx, "root", 3, 200*time.Millisecond)
	wantErr(t, "WaitForRV(3) with no write coming", err, ErrTooLarge)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("WaitForRV gave up after %v, before its 200ms timeout", d)
	}

	// Given up by the caller.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = s.WaitForRV(cctx, "root", 3, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForRV with an expiring context: %v, want %v", err, context.DeadlineExceeded)
	}

	// Another cluster's progress does not count.
	if err := s.EnsureCluster(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	err = s.WaitForRV(ctx, "a", 1, 0)
	wantErr(t, "WaitForRV(1) in an empty cluster", err, ErrTooLarge)
}

func TestAllocate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	alloc := func(cluster, kind, value, owner string, want bool) {
		t.Helper()
		got, err := s.Allocate(ctx, cluster, kind, value, owner)
		if err != nil || got != want {
			t.Errorf("Allocate(%s, %s, %s, %s) = %v, %v; want %v", cluster, kind, value, owner, got, err, want)
		}
	}
	release := func(cluster, kind, value, owner string) {
		t.Helper()
		if err := s.Release(ctx, cluster, kind, value, owner); err != nil {
			t.Errorf("Release(%s, %s, %s, %s): %v", cluster, kind, value, owner, err)
		}
	}
	allocated := func(cluster, kind string, want ...string) {
		t.Helper()
		got, err := s.Allocated(ctx, cluster, kind)
		if err != nil {
			t.Fatal(err)
		}
		w := map[string]bool{}
		for _, v := range want {
			w[v] = true
		}
		if !maps.Equal(got, w) {
			t.Errorf("Allocated(%s, %s) = %v, want %v", cluster, kind, got, w)
		}
	}

	alloc("root", "clusterip", "10.0.0.1", "ns/a", true)
	alloc("root", "clusterip", "10.0.0.1", "ns/a", true) // idempotent for its owner
	alloc("root", "clusterip", "10.0.0.1", "ns/b", false)
	// Kinds and clusters are separate spaces.
	alloc("root", "nodeport", "10.0.0.1", "ns/b", true)
	alloc("other", "clusterip", "10.0.0.1", "ns/b", true)
	alloc("root", "clusterip", "10.0.0.2", "ns/b", true)
	allocated("root", "clusterip", "10.0.0.1", "10.0.0.2")
	allocated("root", "nodeport", "10.0.0.1")
	allocated("other", "clusterip", "10.0.0.1")
	allocated("root", "none")

	// Only the owner releases.
	release("root", "clusterip", "10.0.0.1", "ns/b")
	alloc("root", "clusterip", "10.0.0.1", "ns/b", false)
	release("root", "clusterip", "10.0.0.1", "ns/a")
	allocated("root", "clusterip", "10.0.0.2")
	alloc("root", "clusterip", "10.0.0.1", "ns/b", true)
	alloc("root", "clusterip", "10.0.0.1", "ns/a", false)
	// Releasing what is not held is harmless.
	release("root", "clusterip", "10.9.9.9", "ns/a")
	allocated("root", "clusterip", "10.0.0.1", "10.0.0.2")
	allocated("root", "nodeport", "10.0.0.1")
}

// Racing owners, as from several API server processes: exactly one wins.
func TestAllocateRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const owners, values = 8, 10
	var wins [values]atomic.Int32
	var wg sync.WaitGroup
	for o := range owners {
		wg.Go(func() {
			for v := range values {
				ok, err := s.Allocate(ctx, "root", "nodeport", fmt.Sprint(30000+v), fmt.Sprintf("ns/svc%d", o))
				if err != nil {
					t.Errorf("owner %d: %v", o, err)
					return
				}
				if ok {
					wins[v].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for v := range values {
		if n := wins[v].Load(); n != 1 {
			t.Errorf("value %d allocated to %d owners, want exactly 1", 30000+v, n)
		}
	}
}
