package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

func compact(t *testing.T, s *Store, keep time.Duration) {
	t.Helper()
	if err := s.Compact(context.Background(), keep); err != nil {
		t.Fatalf("Compact(%v): %v", keep, err)
	}
}

func wantRVs(t *testing.T, s *Store, cluster string, cur, compacted int64) {
	t.Helper()
	c, comp, err := s.CurrentRV(context.Background(), cluster)
	if err != nil || c != cur || comp != compacted {
		t.Errorf("CurrentRV(%s) = %d, %d, %v; want %d, %d", cluster, c, comp, err, cur, compacted)
	}
}

// storedRVs lists the rvs stored for a cluster, oldest first.
func storedRVs(t *testing.T, s *Store, cluster string) []int64 {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT rv FROM objects WHERE cluster = $1 ORDER BY rv`, cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var rv int64
		if err := rows.Scan(&rv); err != nil {
			t.Fatal(err)
		}
		out = append(out, rv)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func listRVs(t *testing.T, s *Store, cluster string, at int64) ([]int64, error) {
	t.Helper()
	l, err := s.List(context.Background(), cluster, ListOptions{Resource: "/pods", AtRV: at})
	var out []int64
	for _, o := range l.Items {
		out = append(out, o.RV)
	}
	return out, err
}

func TestCompact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a, b, c, d := pod("ns", "a"), pod("ns", "b"), pod("ns", "c"), pod("ns", "d")
	create(t, s, "root", a, "a1", nil, nil)    // 1
	update(t, s, "root", a, 1, "a2", nil, nil) // 2
	create(t, s, "root", b, "b1", nil, nil)    // 3
	remove(t, s, "root", b, 3)                 // 4
	create(t, s, "root", c, "c1", nil, nil)    // 5
	update(t, s, "root", c, 5, "c2", nil, nil) // 6
	update(t, s, "root", a, 2, "a3", nil, nil) // 7
	create(t, s, "root", d, "d1", nil, nil)    // 8
	if err := s.EnsureCluster(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	x := pod("ns", "x")
	create(t, s, "t", x, "", nil, nil)    // 1
	update(t, s, "t", x, 1, "", nil, nil) // 2
	remove(t, s, "t", x, 2)               // 3
	if err := s.EnsureCluster(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	if got := storedRVs(t, s, "root"); len(got) != 8 {
		t.Fatalf("root rows before compaction: %v", got)
	}

	compact(t, s, 0)
	// Superseded versions and tombstones go, in every cluster; live rows,
	// however old (d, and c's last version), stay.
	wantRVs(t, s, "root", 8, 8)
	wantRVs(t, s, "t", 3, 3)
	wantRVs(t, s, "empty", 0, 0)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{6, 7, 8}) {
		t.Errorf("root rows after compaction: %v, want [6 7 8]", got)
	}
	if got := storedRVs(t, s, "t"); len(got) != 0 {
		t.Errorf("cluster t rows after compaction: %v, want none", got)
	}
	for k, want := range map[Key]string{a: "a3", c: "c2", d: "d1"} {
		if o, err := s.Get(ctx, "root", k); err != nil || decode(t, o.Data).Value != want {
			t.Errorf("get %s after compaction: %+v, %v", k, o, err)
		}
	}
	for _, at := range []int64{1, 4, 7} {
		_, err := s.List(ctx, "root", ListOptions{Resource: "/pods", AtRV: at})
		wantErr(t, fmt.Sprintf("List at compacted rv %d", at), err, ErrCompacted)
	}
	if got, err := listRVs(t, s, "root", 8); err != nil || !slices.Equal(got, []int64{7, 6, 8}) {
		t.Errorf("List at the compaction point: %v, %v; want a@7 c@6 d@8", got, err)
	}
	if got, err := listRVs(t, s, "root", 0); err != nil || !slices.Equal(got, []int64{7, 6, 8}) {
		t.Errorf("List after compaction: %v, %v", got, err)
	}
	// Compacting again without writes changes nothing.
	compact(t, s, 0)
	wantRVs(t, s, "root", 8, 8)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{6, 7, 8}) {
		t.Errorf("root rows after second compaction: %v", got)
	}

	// A longer window keeps what was superseded within it.
	update(t, s, "root", a, 7, "a4", nil, nil) // 9
	remove(t, s, "root", d, 8)                 // 10
	compact(t, s, time.Hour)
	wantRVs(t, s, "root", 10, 8)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{6, 7, 8, 9, 10}) {
		t.Errorf("root rows after compaction keeping an hour: %v", got)
	}
	if got, err := listRVs(t, s, "root", 8); err != nil || !slices.Equal(got, []int64{7, 6, 8}) {
		t.Errorf("List at 8 with history kept: %v, %v", got, err)
	}
	if got, err := listRVs(t, s, "root", 9); err != nil || !slices.Equal(got, []int64{9, 6, 8}) {
		t.Errorf("List at 9 with history kept: %v, %v", got, err)
	}

	compact(t, s, 0)
	wantRVs(t, s, "root", 10, 10)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{6, 9}) {
		t.Errorf("root rows after the last compaction: %v, want [6 9]", got)
	}
	_, err := s.List(ctx, "root", ListOptions{Resource: "/pods", AtRV: 9})
	wantErr(t, "List at 9 after compaction", err, ErrCompacted)
	if _, err := s.Get(ctx, "root", d); !errors.Is(err, ErrNotFound) {
		t.Errorf("d after its tombstone was compacted: %v", err)
	}
	// The name is free again, and the new object has no history.
	if o := create(t, s, "root", d, "d2", nil, nil); o.RV != 11 {
		t.Errorf("re-create after compaction: rv %d", o.RV)
	}
	cs, err := s.Changes(ctx, "root", "/pods", "", 10, 11, 10)
	if err != nil || len(cs) != 1 || cs[0].Prev != nil {
		t.Errorf("changes after compaction: %+v, %v", cs, err)
	}
}

// Compact maps its time window to resourceVersions through the marks it
// leaves on each run: keep=W compacts to where the cluster stood W ago.
func TestCompactWindow(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := pod("ns", "a")
	create(t, s, "root", a, "", nil, nil)    // 1
	update(t, s, "root", a, 0, "", nil, nil) // 2
	const window = time.Second
	compact(t, s, window) // records rv 2 now; nothing is old enough yet
	wantRVs(t, s, "root", 2, 0)
	update(t, s, "root", a, 0, "", nil, nil) // 3
	update(t, s, "root", a, 0, "", nil, nil) // 4
	time.Sleep(window + 200*time.Millisecond)
	compact(t, s, window) // the mark at rv 2 is now old enough; rv 4 is not
	wantRVs(t, s, "root", 4, 2)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{2, 3, 4}) {
		t.Errorf("rows: %v, want [2 3 4]", got)
	}
	if got, err := listRVs(t, s, "root", 2); err != nil || !slices.Equal(got, []int64{2}) {
		t.Errorf("List at 2: %v, %v", got, err)
	}
	_, err := s.List(context.Background(), "root", ListOptions{Resource: "/pods", AtRV: 1})
	wantErr(t, "List at 1", err, ErrCompacted)
}

// Compaction running alongside writers never loses a live object nor a
// version that a read at or above the compaction point needs.
func TestCompactConcurrentWithWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const writers, perWriter = 8, 40
	final := make([]map[Key]int64, writers)
	stop := make(chan struct{})
	var compactions int
	compactorDone := make(chan struct{})
	go func() {
		defer close(compactorDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Compact(ctx, 0); err != nil {
				t.Errorf("Compact: %v", err)
				return
			}
			compactions++
			// A read exactly at the compaction point must work.
			_, compacted, err := s.CurrentRV(ctx, "root")
			if err != nil {
				t.Errorf("CurrentRV: %v", err)
				return
			}
			if compacted > 0 {
				if _, err := s.List(ctx, "root", ListOptions{Resource: "/pods", AtRV: compacted}); err != nil && !errors.Is(err, ErrCompacted) {
					t.Errorf("List at compacted rv %d: %v", compacted, err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			state := map[Key]int64{}
			for i := range perWriter {
				k := pod("ns", fmt.Sprintf("w%d-%d", g, i%3))
				w := Write{Key: k, Encode: encoder(k, fmt.Sprint(i))}
				switch rv, ok := state[k]; {
				case !ok:
					w.Op = Create
				case i%4 == 0:
					w.Op, w.ExpectRV = Delete, rv
				default:
					w.Op, w.ExpectRV = Update, rv
				}
				o, err := s.Write(ctx, "root", w)
				if err != nil {
					t.Errorf("writer %d: %v %s: %v", g, w.Op, k, err)
					return
				}
				if w.Op == Delete {
					delete(state, k)
				} else {
					state[k] = o.RV
				}
			}
			final[g] = state
		})
	}
	wg.Wait()
	close(stop)
	<-compactorDone
	if t.Failed() {
		return
	}
	compact(t, s, 0)
	t.Logf("%d compactions ran during the writes", compactions)
	want := map[Key]int64{}
	for _, st := range final {
		for k, rv := range st {
			want[k] = rv
		}
	}
	l, err := s.List(ctx, "root", ListOptions{Resource: "/pods"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[Key]int64{}
	for _, o := range l.Items {
		got[o.Key] = o.RV
	}
	if !maps.Equal(got, want) {
		t.Errorf("live objects after compaction:\n got %v\nwant %v", got, want)
	}
	// Only the live versions remain.
	if rows := storedRVs(t, s, "root"); len(rows) != len(want) {
		t.Errorf("%d rows remain after compacting everything, want %d live ones", len(rows), len(want))
	}
}

// A reader of the change log who has fallen behind compaction must be told,
// not handed a log with holes: here it would miss b's creation and deletion
// and keep b in its cache forever. The check belongs with the read, since
// compaction may run between a caller's CurrentRV and its Changes.
func TestChangesAfterCompaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a, b := pod("ns", "a"), pod("ns", "b")
	create(t, s, "root", a, "", nil, nil)    // 1
	update(t, s, "root", a, 0, "", nil, nil) // 2
	create(t, s, "root", b, "", nil, nil)    // 3
	remove(t, s, "root", b, 0)               // 4
	seen := int64(1)
	compact(t, s, 0)
	wantRVs(t, s, "root", 4, 4)
	cs, err := s.Changes(ctx, "root", "/pods", "", seen, 4, 100)
	if !errors.Is(err, ErrCompacted) {
		t.Errorf("Changes after %d with history compacted to 4: %d changes, %v; want %v", seen, len(cs), err, ErrCompacted)
	}
	// From the compaction point on, the log is whole.
	create(t, s, "root", b, "", nil, nil) // 5
	cs, err = s.Changes(ctx, "root", "/pods", "", 4, 5, 100)
	if err != nil || len(cs) != 1 || cs[0].RV != 5 {
		t.Errorf("Changes after the compaction point: %+v, %v", cs, err)
	}
	_, err = s.Changes(ctx, "nope", "/pods", "", 0, 5, 100)
	wantErr(t, "Changes in an unknown cluster", err, ErrNoCluster)
}

// Compaction deletes in chunks; it must keep going until all are gone.
func TestCompactManyRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// 6,000 versions of 10 objects, written directly: the last version of
	// each is live, every other one superseded 10 versions later.
	const n, objs = 6000, 10
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO objects (cluster, rv, resource, namespace, name, prev_rv, superseded_rv, data)
		SELECT 'root', i, '/pods', 'ns', 'o' || (i % $2),
			CASE WHEN i > $2 THEN i - $2 END, CASE WHEN i <= $1 - $2 THEN i + $2 END, '{}'
		FROM generate_series(1, $1::bigint) AS i`, n, objs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE clusters SET rv = $1 WHERE name = 'root'`, n); err != nil {
		t.Fatal(err)
	}
	compact(t, s, 0)
	wantRVs(t, s, "root", n, n)
	got := storedRVs(t, s, "root")
	if len(got) != objs || got[0] != n-objs+1 {
		t.Errorf("%d rows left after compaction (first %v), want the %d live ones", len(got), got[:min(len(got), 3)], objs)
	}
	l, err := s.List(ctx, "root", ListOptions{Resource: "/pods"})
	if err != nil || len(l.Items) != objs {
		t.Errorf("List after compaction: %d items, %v", len(l.Items), err)
	}
}

// Compaction remembers where each cluster stood over time and forgets
// marks it will never need again.
func TestCompactMarks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a := pod("ns", "a")
	create(t, s, "root", a, "", nil, nil) // 1
	for range 4 {
		update(t, s, "root", a, 0, "", nil, nil) // 2..5
	}
	// Pretend earlier runs saw rv 1 three hours ago and rv 3 two hours ago.
	_, err := s.Pool().Exec(ctx, `INSERT INTO rv_marks (cluster, rv, at) VALUES
		('root', 1, now() - interval '3 hours'), ('root', 3, now() - interval '2 hours')`)
	if err != nil {
		t.Fatal(err)
	}
	compact(t, s, time.Hour)
	wantRVs(t, s, "root", 5, 3)
	if got := storedRVs(t, s, "root"); !slices.Equal(got, []int64{3, 4, 5}) {
		t.Errorf("rows after compacting to 3: %v", got)
	}
	var marks []int64
	rows, err := s.Pool().Query(ctx, `SELECT rv FROM rv_marks WHERE cluster = 'root' ORDER BY at`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var rv int64
		if err := rows.Scan(&rv); err != nil {
			t.Fatal(err)
		}
		marks = append(marks, rv)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The 3-hour-old mark is superseded by the 2-hour-old one; that one is
	// the current compaction point, and the new one will be the next.
	if !slices.Equal(marks, []int64{3, 5}) {
		t.Errorf("marks after compaction: %v, want [3 5]", marks)
	}
}
