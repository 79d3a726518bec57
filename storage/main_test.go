package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

// newStore gives the test a Store on a fresh, migrated database.
func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return New(pgtest.Pool(t, pgtest.NewDatabase(t)), opts...)
}

// payload is what the tests store: the key, the resourceVersion Encode was
// given and a free-form value.
type payload struct {
	Key   string `json:"key"`
	RV    int64  `json:"rv"`
	Value string `json:"value,omitempty"`
}

func encoder(key Key, value string) func(int64) ([]byte, error) {
	return func(rv int64) ([]byte, error) {
		return json.Marshal(payload{Key: key.String(), RV: rv, Value: value})
	}
}

func decode(t testing.TB, data []byte) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("stored data %q is not the encoded payload: %v", data, err)
	}
	return p
}

// checkData asserts o's bytes are what Encode produced for o: its key and
// the resourceVersion it is stored under.
func checkData(t testing.TB, o Object, value string) {
	t.Helper()
	p := decode(t, o.Data)
	if p.Key != o.Key.String() || p.RV != o.RV || p.Value != value {
		t.Errorf("%s@%d: data = %+v, want key %s rv %d value %q", o.Key, o.RV, p, o.Key, o.RV, value)
	}
}

func pod(ns, name string) Key { return Key{Resource: "/pods", Namespace: ns, Name: name} }

func create(t testing.TB, s *Store, cluster string, key Key, value string, labels, fields map[string]string) Object {
	t.Helper()
	o, err := s.Write(context.Background(), cluster, Write{Op: Create, Key: key, Labels: labels, Fields: fields, Encode: encoder(key, value)})
	if err != nil {
		t.Fatalf("create %s in %s: %v", key, cluster, err)
	}
	return o
}

func update(t testing.TB, s *Store, cluster string, key Key, expect int64, value string, labels, fields map[string]string) Object {
	t.Helper()
	o, err := s.Write(context.Background(), cluster, Write{Op: Update, Key: key, ExpectRV: expect, Labels: labels, Fields: fields, Encode: encoder(key, value)})
	if err != nil {
		t.Fatalf("update %s in %s: %v", key, cluster, err)
	}
	return o
}

func remove(t testing.TB, s *Store, cluster string, key Key, expect int64) Object {
	t.Helper()
	o, err := s.Write(context.Background(), cluster, Write{Op: Delete, Key: key, ExpectRV: expect, Encode: encoder(key, "deleted")})
	if err != nil {
		t.Fatalf("delete %s in %s: %v", key, cluster, err)
	}
	return o
}

func currentRV(t testing.TB, s *Store, cluster string) int64 {
	t.Helper()
	rv, _, err := s.CurrentRV(context.Background(), cluster)
	if err != nil {
		t.Fatalf("CurrentRV(%s): %v", cluster, err)
	}
	return rv
}

func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: error %v, want %v", what, got, want)
	}
}

// queued reports how many writes wait in the cluster's queue, not yet taken
// into a transaction.
func queued(s *Store, cluster string) int {
	s.batchers.mu.Lock()
	defer s.batchers.mu.Unlock()
	if q := s.batchers.m[cluster]; q != nil {
		return len(q.items)
	}
	return 0
}

func waitQueued(t testing.TB, s *Store, cluster string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued(s, cluster) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued for %s, want %d", queued(s, cluster), cluster, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// rowCount counts the row versions of a cluster in the objects table.
func rowCount(t testing.TB, s *Store, cluster string) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM objects WHERE cluster = $1`, cluster).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func keysOf(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Namespace + "/" + o.Name
	}
	return out
}

func fmtKeys(keys []string) string { return fmt.Sprintf("%q", keys) }
