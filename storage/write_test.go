package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestKeyString(t *testing.T) {
	if got := (Key{Resource: "/pods", Namespace: "ns", Name: "p"}).String(); got != "/pods/ns/p" {
		t.Errorf("namespaced key = %q", got)
	}
	if got := (Key{Resource: "/nodes", Name: "n"}).String(); got != "/nodes/n" {
		t.Errorf("cluster-scoped key = %q", got)
	}
}

func TestWriteSemantics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	k := pod("default", "p")
	labels := map[string]string{"app": "web"}
	fields := map[string]string{"spec.nodeName": "n1"}

	// Create: the first resourceVersion of a fresh cluster, encoded into the
	// stored bytes, and readable back.
	c := create(t, s, "root", k, "v1", labels, fields)
	if c.RV != 1 || c.Key != k || c.Deleted || !maps.Equal(c.Labels, labels) || !maps.Equal(c.Fields, fields) {
		t.Errorf("create returned %+v", c)
	}
	checkData(t, c, "v1")
	if rv := currentRV(t, s, "root"); rv != 1 {
		t.Errorf("CurrentRV after create = %d, want 1", rv)
	}
	g, err := s.Get(ctx, "root", k)
	if err != nil {
		t.Fatalf("get after create: %v", err)
	}
	if g.RV != 1 || g.Key != k || string(g.Data) != string(c.Data) || !maps.Equal(g.Labels, labels) || !maps.Equal(g.Fields, fields) {
		t.Errorf("get = %+v, want %+v", g, c)
	}

	// Failed writes change nothing and use no resourceVersion.
	_, err = s.Write(ctx, "root", Write{Op: Create, Key: k, Encode: encoder(k, "again")})
	wantErr(t, "create of an existing key", err, ErrExists)
	_, err = s.Write(ctx, "root", Write{Op: Update, Key: k, ExpectRV: 99, Encode: encoder(k, "stale")})
	wantErr(t, "update with a wrong ExpectRV", err, ErrConflict)
	_, err = s.Write(ctx, "root", Write{Op: Delete, Key: k, ExpectRV: 99, Encode: encoder(k, "stale")})
	wantErr(t, "delete with a wrong ExpectRV", err, ErrConflict)
	missing := pod("default", "missing")
	_, err = s.Write(ctx, "root", Write{Op: Update, Key: missing, Encode: encoder(missing, "x")})
	wantErr(t, "update of a missing key", err, ErrNotFound)
	_, err = s.Write(ctx, "root", Write{Op: Delete, Key: missing, Encode: encoder(missing, "x")})
	wantErr(t, "delete of a missing key", err, ErrNotFound)
	_, err = s.Get(ctx, "root", missing)
	wantErr(t, "get of a missing key", err, ErrNotFound)
	// The same name in another namespace or resource is another key.
	_, err = s.Get(ctx, "root", pod("other", "p"))
	wantErr(t, "get in another namespace", err, ErrNotFound)
	_, err = s.Get(ctx, "root", Key{Resource: "/configmaps", Namespace: "default", Name: "p"})
	wantErr(t, "get of another resource", err, ErrNotFound)
	if rv := currentRV(t, s, "root"); rv != 1 {
		t.Errorf("CurrentRV after failed writes = %d, want 1", rv)
	}
	if g, _ := s.Get(ctx, "root", k); g.RV != 1 || decode(t, g.Data).Value != "v1" {
		t.Errorf("failed writes changed the object: %+v", g)
	}

	// Update with the right ExpectRV, then unconditionally.
	labels2 := map[string]string{"app": "db"}
	u := update(t, s, "root", k, 1, "v2", labels2, nil)
	if u.RV != 2 || !maps.Equal(u.Labels, labels2) || len(u.Fields) != 0 {
		t.Errorf("update returned %+v", u)
	}
	checkData(t, u, "v2")
	u = update(t, s, "root", k, 0, "v3", labels2, fields)
	if u.RV != 3 {
		t.Errorf("unconditional update got rv %d, want 3", u.RV)
	}
	checkData(t, u, "v3")
	if g, err := s.Get(ctx, "root", k); err != nil || g.RV != 3 || decode(t, g.Data).Value != "v3" || !maps.Equal(g.Labels, labels2) {
		t.Errorf("get after update = %+v, %v", g, err)
	}

	// Delete leaves a tombstone carrying the final state; Get no longer
	// finds the object.
	d := remove(t, s, "root", k, 3)
	if d.RV != 4 || !d.Deleted {
		t.Errorf("delete returned %+v, want rv 4 deleted", d)
	}
	checkData(t, d, "deleted")
	_, err = s.Get(ctx, "root", k)
	wantErr(t, "get after delete", err, ErrNotFound)
	_, err = s.Write(ctx, "root", Write{Op: Update, Key: k, Encode: encoder(k, "x")})
	wantErr(t, "update after delete", err, ErrNotFound)
	_, err = s.Write(ctx, "root", Write{Op: Delete, Key: k, Encode: encoder(k, "x")})
	wantErr(t, "delete after delete", err, ErrNotFound)

	// Re-creation starts a new history.
	r := create(t, s, "root", k, "reborn", nil, nil)
	if r.RV != 5 {
		t.Errorf("re-create got rv %d, want 5", r.RV)
	}
	if r.Labels == nil || r.Fields == nil {
		t.Errorf("nil labels/fields should be stored as empty maps, got %+v", r)
	}

	// The change log holds every version with the one it replaced.
	changes, err := s.Changes(ctx, "root", "/pods", "", 0, 5, 100)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		rv, prev int64
		deleted  bool
		value    string
	}
	wants := []want{{1, 0, false, "v1"}, {2, 1, false, "v2"}, {3, 2, false, "v3"}, {4, 3, true, "deleted"}, {5, 0, false, "reborn"}}
	if len(changes) != len(wants) {
		t.Fatalf("%d changes, want %d: %+v", len(changes), len(wants), changes)
	}
	for i, w := range wants {
		c := changes[i]
		if c.RV != w.rv || c.Deleted != w.deleted || c.Key != k {
			t.Errorf("change %d = %s@%d deleted=%v, want @%d deleted=%v", i, c.Key, c.RV, c.Deleted, w.rv, w.deleted)
		}
		checkData(t, c.Object, w.value)
		switch {
		case w.prev == 0 && c.Prev != nil:
			t.Errorf("change %d: prev = %+v, want none", i, c.Prev)
		case w.prev != 0 && c.Prev == nil:
			t.Errorf("change %d: no prev, want rv %d", i, w.prev)
		case w.prev != 0:
			if c.Prev.RV != w.prev || c.Prev.Key != k {
				t.Errorf("change %d: prev %s@%d, want @%d", i, c.Prev.Key, c.Prev.RV, w.prev)
			}
			checkData(t, *c.Prev, wants[i-1].value)
		}
	}
	if !maps.Equal(changes[1].Labels, labels2) || !maps.Equal(changes[1].Prev.Labels, labels) || !maps.Equal(changes[1].Prev.Fields, fields) {
		t.Errorf("change 2 labels %v prev labels %v fields %v", changes[1].Labels, changes[1].Prev.Labels, changes[1].Prev.Fields)
	}
	// Range bounds and limit.
	if cs, err := s.Changes(ctx, "root", "/pods", "", 2, 4, 100); err != nil || len(cs) != 2 || cs[0].RV != 3 || cs[1].RV != 4 {
		t.Errorf("changes (2,4] = %+v, %v", cs, err)
	}
	if cs, err := s.Changes(ctx, "root", "/pods", "", 0, 5, 2); err != nil || len(cs) != 2 || cs[0].RV != 1 || cs[1].RV != 2 {
		t.Errorf("changes limit 2 = %+v, %v", cs, err)
	}
	if cs, err := s.Changes(ctx, "root", "/pods", "other", 0, 5, 100); err != nil || len(cs) != 0 {
		t.Errorf("changes in another namespace = %+v, %v", cs, err)
	}
	if cs, err := s.Changes(ctx, "root", "/configmaps", "", 0, 5, 100); err != nil || len(cs) != 0 {
		t.Errorf("changes of another resource = %+v, %v", cs, err)
	}
}

func TestWriteEncodeError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	boom := errors.New("boom")
	k := pod("ns", "a")
	_, err := s.Write(ctx, "root", Write{Op: Create, Key: k, Encode: func(int64) ([]byte, error) { return nil, boom }})
	wantErr(t, "create with a failing Encode", err, boom)
	if _, err := s.Get(ctx, "root", k); !errors.Is(err, ErrNotFound) {
		t.Errorf("object stored although Encode failed: %v", err)
	}
	if rv := currentRV(t, s, "root"); rv != 0 {
		t.Errorf("CurrentRV = %d after a failed write, want 0", rv)
	}
	o := create(t, s, "root", k, "ok", nil, nil)
	if o.RV != 1 {
		t.Errorf("first successful write got rv %d, want 1", o.RV)
	}
	_, err = s.Write(ctx, "root", Write{Op: Update, Key: k, Encode: func(int64) ([]byte, error) { return nil, boom }})
	wantErr(t, "update with a failing Encode", err, boom)
	if g, err := s.Get(ctx, "root", k); err != nil || g.RV != 1 {
		t.Errorf("failed update changed the object: %+v %v", g, err)
	}
}

func TestWriteNoCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	k := pod("ns", "a")
	_, err := s.Write(ctx, "nope", Write{Op: Create, Key: k, Encode: encoder(k, "")})
	wantErr(t, "write to an unknown cluster", err, ErrNoCluster)
	_, _, err = s.CurrentRV(ctx, "nope")
	wantErr(t, "CurrentRV of an unknown cluster", err, ErrNoCluster)
	_, err = s.List(ctx, "nope", ListOptions{Resource: "/pods"})
	wantErr(t, "List in an unknown cluster", err, ErrNoCluster)
	err = s.WaitForRV(ctx, "nope", 1, 0)
	wantErr(t, "WaitForRV of an unknown cluster", err, ErrNoCluster)
	if n := rowCount(t, s, "nope"); n != 0 {
		t.Errorf("%d rows stored for an unknown cluster", n)
	}
}

func TestClustersAreIndependent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if err := s.EnsureCluster(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if cur, compacted, err := s.CurrentRV(ctx, "a"); err != nil || cur != 0 || compacted != 0 {
		t.Fatalf("new cluster: CurrentRV = %d, %d, %v; want 0, 0", cur, compacted, err)
	}
	k := pod("ns", "x")
	for i := int64(1); i <= 3; i++ {
		o := create(t, s, "a", pod("ns", string(rune('a'+i))), "", nil, nil)
		if o.RV != i {
			t.Errorf("write %d to cluster a got rv %d", i, o.RV)
		}
	}
	if rv := currentRV(t, s, "root"); rv != 0 {
		t.Errorf("writes to cluster a advanced root to %d", rv)
	}
	// EnsureCluster of an existing cluster keeps its state.
	if err := s.EnsureCluster(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if rv := currentRV(t, s, "a"); rv != 3 {
		t.Errorf("EnsureCluster reset cluster a to rv %d, want 3", rv)
	}
	// One key, two clusters, two objects.
	ra := create(t, s, "a", k, "in a", nil, nil)
	rr := create(t, s, "root", k, "in root", nil, nil)
	if ra.RV != 4 || rr.RV != 1 {
		t.Errorf("rvs: a %d (want 4), root %d (want 1)", ra.RV, rr.RV)
	}
	if g, err := s.Get(ctx, "a", k); err != nil || decode(t, g.Data).Value != "in a" {
		t.Errorf("get in a: %+v %v", g, err)
	}
	if g, err := s.Get(ctx, "root", k); err != nil || decode(t, g.Data).Value != "in root" {
		t.Errorf("get in root: %+v %v", g, err)
	}
	remove(t, s, "a", k, 0)
	if _, err := s.Get(ctx, "root", k); err != nil {
		t.Errorf("delete in a removed the object from root: %v", err)
	}
	l, err := s.List(ctx, "root", ListOptions{Resource: "/pods"})
	if err != nil || len(l.Items) != 1 || l.RV != 1 {
		t.Errorf("list in root = %+v, %v; want the one root object at rv 1", l, err)
	}
	if cs, err := s.Changes(ctx, "root", "/pods", "", 0, 100, 100); err != nil || len(cs) != 1 {
		t.Errorf("changes in root = %+v, %v; want one", cs, err)
	}
}

// TestBatch forms one batch deterministically: a first write is held inside
// its transaction (Encode blocks) while the next writes queue up behind it;
// they then share the second transaction. Each is still checked and
// answered on its own, and failures use no resourceVersion.
func TestBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	commits := make(chan []Object, 100)
	s := newStore(t, OnCommit(func(cluster string, objs []Object) {
		if cluster == "root" {
			commits <- objs
		}
	}))
	existing := create(t, s, "root", pod("ns", "existing"), "", nil, nil) // rv 1
	<-commits

	entered, release := make(chan struct{}), make(chan struct{})
	blocker := pod("ns", "blocker")
	blockerDone := make(chan Object, 1)
	go func() {
		o, err := s.Write(ctx, "root", Write{Op: Create, Key: blocker, Encode: func(rv int64) ([]byte, error) {
			close(entered)
			<-release
			return encoder(blocker, "")(rv)
		}})
		if err != nil {
			t.Errorf("blocker: %v", err)
		}
		blockerDone <- o
	}()
	<-entered

	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	k1, k2, k3 := pod("ns", "k1"), pod("ns", "k2"), pod("ns", "k3")
	type result struct {
		o   Object
		err error
	}
	steps := []struct {
		name    string
		ctx     context.Context
		w       Write
		wantErr error
		wantRV  int64 // 0: must fail
	}{
		{"encode error", ctx, Write{Op: Create, Key: pod("ns", "bad"), Encode: func(int64) ([]byte, error) { return nil, boom }}, boom, 0},
		{"create k1", ctx, Write{Op: Create, Key: k1, Encode: encoder(k1, "1")}, nil, 3},
		{"create k1 again", ctx, Write{Op: Create, Key: k1, Encode: encoder(k1, "dup")}, ErrExists, 0},
		{"update k1 with a stale rv", ctx, Write{Op: Update, Key: k1, ExpectRV: 1, Encode: encoder(k1, "x")}, ErrConflict, 0},
		{"update k1 at the rv just given", ctx, Write{Op: Update, Key: k1, ExpectRV: 3, Encode: encoder(k1, "2")}, nil, 4},
		{"update existing", ctx, Write{Op: Update, Key: existing.Key, ExpectRV: existing.RV, Encode: encoder(existing.Key, "u")}, nil, 5},
		{"cancelled", cancelled, Write{Op: Create, Key: pod("ns", "cancelled"), Encode: encoder(pod("ns", "cancelled"), "")}, context.Canceled, 0},
		{"delete missing", ctx, Write{Op: Delete, Key: k2, Encode: encoder(k2, "")}, ErrNotFound, 0},
		{"create k3", ctx, Write{Op: Create, Key: k3, Encode: encoder(k3, "first")}, nil, 6},
		{"delete k3", ctx, Write{Op: Delete, Key: k3, ExpectRV: 6, Encode: encoder(k3, "gone")}, nil, 7},
		{"update deleted k3", ctx, Write{Op: Update, Key: k3, Encode: encoder(k3, "x")}, ErrNotFound, 0},
		{"re-create k3", ctx, Write{Op: Create, Key: k3, Encode: encoder(k3, "second")}, nil, 8},
		{"delete k1", ctx, Write{Op: Delete, Key: k1, ExpectRV: 4, Encode: encoder(k1, "gone")}, nil, 9},
	}
	results := make([]chan result, len(steps))
	for i, st := range steps {
		results[i] = make(chan result, 1)
		go func() {
			o, err := s.Write(st.ctx, "root", st.w)
			results[i] <- result{o, err}
		}()
		// One at a time, so that the queue holds them in this order.
		waitQueued(t, s, "root", i+1)
	}
	cancel()
	close(release)
	if b := <-blockerDone; b.RV != 2 {
		t.Errorf("blocker got rv %d, want 2", b.RV)
	}
	var want []Object
	for i, st := range steps {
		r := <-results[i]
		if st.wantErr != nil {
			wantErr(t, st.name, r.err, st.wantErr)
			continue
		}
		if r.err != nil || r.o.RV != st.wantRV {
			t.Errorf("%s: rv %d, err %v; want rv %d", st.name, r.o.RV, r.err, st.wantRV)
			continue
		}
		checkData(t, r.o, decode(t, r.o.Data).Value)
		want = append(want, r.o)
	}
	if rv := currentRV(t, s, "root"); rv != 9 {
		t.Errorf("CurrentRV = %d, want 9", rv)
	}
	// Two transactions: the blocker alone, then the rest together.
	// OnCommit runs after the writers are answered, hence the wait.
	first, second := nextCommit(t, commits), nextCommit(t, commits)
	if len(first) != 1 || first[0].RV != 2 {
		t.Fatalf("first commit = %+v, want the blocker alone", first)
	}
	if len(second) != len(want) {
		t.Fatalf("second commit has %d objects, want %d", len(second), len(want))
	}
	for i, o := range second {
		if o.RV != want[i].RV || o.Key != want[i].Key || o.Deleted != want[i].Deleted {
			t.Errorf("commit[1][%d] = %s@%d, want %s@%d", i, o.Key, o.RV, want[i].Key, want[i].RV)
		}
	}
	// The state after the batch.
	if _, err := s.Get(ctx, "root", k1); !errors.Is(err, ErrNotFound) {
		t.Errorf("k1 after delete: %v", err)
	}
	if g, err := s.Get(ctx, "root", k3); err != nil || g.RV != 8 || decode(t, g.Data).Value != "second" {
		t.Errorf("k3 = %+v, %v; want the re-created one at rv 8", g, err)
	}
	for _, k := range []Key{pod("ns", "bad"), pod("ns", "cancelled")} {
		if _, err := s.Get(ctx, "root", k); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s stored although its write failed: %v", k, err)
		}
	}
	changes, err := s.Changes(ctx, "root", "/pods", "", 0, 9, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range changes {
		if c.RV != int64(i+1) {
			t.Fatalf("changes: rv %d at position %d: %+v", c.RV, i, changes)
		}
	}
	if len(changes) != 9 {
		t.Fatalf("%d changes, want 9", len(changes))
	}
	if c := changes[6]; !c.Deleted || c.Prev == nil || c.Prev.RV != 6 {
		t.Errorf("tombstone of k3 = %+v", c)
	}
	if c := changes[7]; c.Deleted || c.Prev != nil {
		t.Errorf("re-created k3 = %+v, want no prev", c)
	}
	if c := changes[8]; !c.Deleted || c.Prev == nil || c.Prev.RV != 4 {
		t.Errorf("tombstone of k1 = %+v", c)
	}
}

// A batch in which every write fails commits nothing.
func TestBatchAllFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	commits := make(chan []Object, 10)
	s := newStore(t, OnCommit(func(_ string, objs []Object) { commits <- objs }))
	k := pod("ns", "a")
	create(t, s, "root", k, "", nil, nil)
	if c := nextCommit(t, commits); len(c) != 1 || c[0].RV != 1 {
		t.Fatalf("commit = %+v", c)
	}
	_, err := s.Write(ctx, "root", Write{Op: Create, Key: k, Encode: encoder(k, "")})
	wantErr(t, "duplicate create", err, ErrExists)
	if rv := currentRV(t, s, "root"); rv != 1 {
		t.Errorf("CurrentRV = %d, want 1", rv)
	}
	// OnCommit calls are sequential: had the failed batch been reported,
	// it would come before this write's.
	create(t, s, "root", pod("ns", "b"), "", nil, nil)
	if c := nextCommit(t, commits); len(c) != 1 || c[0].RV != 2 {
		t.Errorf("commit after the failed write = %+v, want only rv 2", c)
	}
}

func nextCommit(t *testing.T, commits <-chan []Object) []Object {
	t.Helper()
	select {
	case c := <-commits:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("OnCommit not called")
		return nil
	}
}

// A queue longer than maxBatch is split over several transactions, still in
// order and without gaps.
func TestBatchSplit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	commits := make(chan []Object, 10)
	s := newStore(t, OnCommit(func(_ string, objs []Object) { commits <- objs }))
	entered, release := make(chan struct{}), make(chan struct{})
	blocker := pod("ns", "blocker")
	go func() {
		_, err := s.Write(ctx, "root", Write{Op: Create, Key: blocker, Encode: func(rv int64) ([]byte, error) {
			close(entered)
			<-release
			return encoder(blocker, "")(rv)
		}})
		if err != nil {
			t.Errorf("blocker: %v", err)
		}
	}()
	<-entered
	n := maxBatch + maxBatch/2
	rvs := make(chan int64, n)
	for i := range n {
		go func() {
			k := pod("ns", fmt.Sprintf("o%03d", i))
			o, err := s.Write(ctx, "root", Write{Op: Create, Key: k, Encode: encoder(k, "")})
			if err != nil {
				t.Errorf("create %s: %v", k, err)
			}
			rvs <- o.RV
		}()
	}
	waitQueued(t, s, "root", n)
	close(release)
	seen := map[int64]bool{}
	for range n {
		seen[<-rvs] = true
	}
	for rv := int64(2); rv <= int64(n)+1; rv++ {
		if !seen[rv] {
			t.Errorf("rv %d not handed out", rv)
		}
	}
	var sizes []int
	next := int64(1)
	for range 3 {
		c := nextCommit(t, commits)
		sizes = append(sizes, len(c))
		for _, o := range c {
			if o.RV != next {
				t.Fatalf("commit holds rv %d, want %d", o.RV, next)
			}
			next++
		}
	}
	if !slices.Equal(sizes, []int{1, maxBatch, n - maxBatch}) {
		t.Errorf("commit sizes %v, want [1 %d %d]", sizes, maxBatch, n-maxBatch)
	}
}
