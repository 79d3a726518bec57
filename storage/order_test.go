package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgkube/pgkube/internal/pgtest"
)

// TestCommitOrder is the guarantee watches rest on: resourceVersions of a
// cluster are unique and contiguous, and a reader who has seen N has seen
// everything up to N. Two Stores on two pools stand in for two API server
// processes; a second cluster is written at the same time.
func TestCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)

	// Each process reports its commits in resourceVersion order.
	var orderErrs atomic.Int64
	onCommit := func() Option {
		var mu sync.Mutex
		last := map[string]int64{}
		return OnCommit(func(cluster string, objs []Object) {
			mu.Lock()
			defer mu.Unlock()
			for _, o := range objs {
				if o.RV <= last[cluster] {
					orderErrs.Add(1)
				}
				last[cluster] = o.RV
			}
		})
	}
	stores := []*Store{New(pgtest.Pool(t, url), onCommit()), New(pgtest.Pool(t, url), onCommit())}
	if err := stores[0].EnsureCluster(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	resources := []string{"/pods", "/configmaps", "apps/deployments"}

	const (
		writers      = 32
		perWriter    = 50
		keysPerWrite = 4
	)
	clusterOf := func(g int) string {
		if g%4 == 3 {
			return "a"
		}
		return "root"
	}
	var (
		mu  sync.Mutex
		rvs = map[string][]int64{} // cluster -> every resourceVersion handed out
	)
	// Each writer reports where its own keys ended up.
	type finalState struct {
		cluster string
		key     Key
		rv      int64 // 0: deleted
		value   string
	}
	finals := make(chan finalState, writers*keysPerWrite)

	var writersDone atomic.Bool
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			s := stores[g%2]
			cluster := clusterOf(g)
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			keys := make([]Key, keysPerWrite)
			state := make([]int64, keysPerWrite) // current rv, 0: absent
			values := make([]string, keysPerWrite)
			for i := range keys {
				keys[i] = Key{Resource: resources[(g+i)%len(resources)], Namespace: fmt.Sprintf("ns%d", i%2), Name: fmt.Sprintf("w%02d-k%d", g, i)}
			}
			var mine []int64
			last := int64(0)
			for i := range perWriter {
				j := rng.IntN(keysPerWrite)
				k := keys[j]
				value := fmt.Sprintf("g%d-i%d", g, i)
				var w Write
				switch {
				case state[j] == 0:
					w = Write{Op: Create, Key: k}
				case rng.IntN(3) == 0:
					w = Write{Op: Delete, Key: k, ExpectRV: state[j]}
				default:
					w = Write{Op: Update, Key: k, ExpectRV: state[j], Labels: map[string]string{"i": fmt.Sprint(i)}}
				}
				w.Encode = encoder(k, value)
				// Now and then a write that must fail: it takes no
				// resourceVersion, and must not disturb its batch.
				if i%10 == 5 {
					bad := w
					if state[j] == 0 {
						bad.Op = Update
					} else {
						bad.Op, bad.ExpectRV = Create, 0
					}
					if _, err := s.Write(ctx, cluster, bad); err == nil {
						t.Errorf("writer %d: %v of %s succeeded, want failure", g, bad.Op, k)
					}
				}
				o, err := s.Write(ctx, cluster, w)
				if err != nil {
					t.Errorf("writer %d: write %d (%v %s): %v", g, i, w.Op, k, err)
					return
				}
				if o.RV <= last {
					t.Errorf("writer %d: rv %d after %d", g, o.RV, last)
				}
				last = o.RV
				mine = append(mine, o.RV)
				if w.Op == Delete {
					state[j], values[j] = 0, ""
				} else {
					state[j], values[j] = o.RV, value
				}
			}
			for j, k := range keys {
				finals <- finalState{cluster, k, state[j], values[j]}
			}
			mu.Lock()
			rvs[cluster] = append(rvs[cluster], mine...)
			mu.Unlock()
		})
	}

	// The reader follows root the way a watch does: read the current
	// resourceVersion, then the changes up to it, per resource.
	readerDone := make(chan struct{})
	var seen []int64
	var polls int
	go func() {
		defer close(readerDone)
		var lastSeen int64
		reader := stores[1]
		for {
			done := writersDone.Load()
			cur, _, err := reader.CurrentRV(ctx, "root")
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			if cur > lastSeen {
				polls++
				var got []int64
				for _, r := range resources {
					cs, err := reader.Changes(ctx, "root", r, "", lastSeen, cur, 1_000_000)
					if err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					for i, c := range cs {
						if i > 0 && c.RV <= cs[i-1].RV {
							t.Errorf("reader: changes of %s out of order: %d after %d", r, c.RV, cs[i-1].RV)
						}
						if c.Resource != r {
							t.Errorf("reader: change of %s in %s's log", c.Resource, r)
						}
						var p payload
						if err := json.Unmarshal(c.Data, &p); err != nil || p.RV != c.RV {
							t.Errorf("reader: %s@%d carries rv %d (%v)", c.Key, c.RV, p.RV, err)
						}
						got = append(got, c.RV)
					}
				}
				slices.Sort(got)
				for i, rv := range got {
					if rv != lastSeen+int64(i)+1 {
						t.Errorf("reader: after %d, current %d: changes %v are not exactly (%d, %d]", lastSeen, cur, got, lastSeen, cur)
						return
					}
				}
				if int64(len(got)) != cur-lastSeen {
					t.Errorf("reader: after %d, current %d: got %d changes, want %d (a gap: a version visible later than a newer one)",
						lastSeen, cur, len(got), cur-lastSeen)
					return
				}
				seen = append(seen, got...)
				lastSeen = cur
			}
			if done {
				return
			}
		}
	}()

	wg.Wait()
	writersDone.Store(true)
	<-readerDone
	close(finals)
	if t.Failed() {
		return
	}

	// Every cluster's resourceVersions are exactly 1..N.
	total := 0
	for cluster, list := range rvs {
		slices.Sort(list)
		for i, rv := range list {
			if rv != int64(i+1) {
				t.Fatalf("cluster %s: resourceVersions not contiguous: position %d holds %d", cluster, i, rv)
			}
		}
		if cur := currentRV(t, stores[0], cluster); cur != int64(len(list)) {
			t.Errorf("cluster %s: CurrentRV = %d, want %d", cluster, cur, len(list))
		}
		total += len(list)
	}
	if total != writers*perWriter {
		t.Errorf("%d successful writes, want %d", total, writers*perWriter)
	}
	if len(seen) != len(rvs["root"]) {
		t.Errorf("reader saw %d changes of root, want %d", len(seen), len(rvs["root"]))
	}
	t.Logf("reader caught up %d times over %d root writes", polls, len(seen))
	if n := orderErrs.Load(); n > 0 {
		t.Errorf("OnCommit reported resourceVersions out of order %d times", n)
	}

	// The stored state is what the writers were told.
	for f := range finals {
		o, err := stores[0].Get(ctx, f.cluster, f.key)
		if f.rv == 0 {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s in %s: deleted, but Get = %+v, %v", f.key, f.cluster, o, err)
			}
			continue
		}
		if err != nil || o.RV != f.rv {
			t.Errorf("%s in %s: Get = rv %d, %v; want rv %d", f.key, f.cluster, o.RV, err, f.rv)
			continue
		}
		checkData(t, o, f.value)
	}
}
