package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A tenant stops at its object and byte limits, counted in the cluster's
// row by the writers; deletes and shrinking updates still pass, so it can
// make room; the root cluster is never limited.
func TestTenantLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, WithLimits(Limits{Objects: 3, Bytes: 2000}))
	if err := s.EnsureCluster(ctx, "small"); err != nil {
		t.Fatal(err)
	}
	write := func(key Key, op Op, value string) error {
		_, err := s.Write(ctx, "small", Write{Key: key, Op: op, Encode: encoder(key, value)})
		return err
	}
	full := func(what string, err error) {
		t.Helper()
		var le *LimitError
		if !errors.As(err, &le) || le.What != what {
			t.Fatalf("got %v, want the %s limit", err, what)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := write(pod("ns", n), Create, "x"); err != nil {
			t.Fatal(err)
		}
	}
	full("objects", write(pod("ns", "d"), Create, "x"))
	if err := write(pod("ns", "a"), Delete, ""); err != nil {
		t.Fatalf("delete in a full cluster: %v", err)
	}
	if err := write(pod("ns", "d"), Create, "x"); err != nil {
		t.Fatalf("create after making room: %v", err)
	}
	big := strings.Repeat("y", 2500)
	full("bytes", write(pod("ns", "b"), Update, big))
	if err := write(pod("ns", "b"), Update, "small"); err != nil {
		t.Fatalf("an update that does not grow: %v", err)
	}
	// The counters match the rows.
	var objects, bytes, rows, stored int64
	if err := s.queryRow(ctx, AllClusters, []any{&objects, &bytes}, `SELECT objects, bytes FROM clusters WHERE name = 'small'`); err != nil {
		t.Fatal(err)
	}
	if err := s.queryRow(ctx, AllClusters, []any{&rows, &stored}, `SELECT count(*), coalesce(sum(octet_length(data)), 0)
		FROM objects WHERE cluster = 'small' AND superseded_rv IS NULL`); err != nil {
		t.Fatal(err)
	}
	if objects != rows || bytes != stored || objects != 3 {
		t.Errorf("counted %d objects / %d bytes, rows hold %d / %d (want 3 objects)", objects, bytes, rows, stored)
	}
	for i := range 5 {
		if _, err := s.Write(ctx, "root", Write{Key: pod("ns", strings.Repeat("r", i+1)), Op: Create, Encode: encoder(pod("ns", "r"), "x")}); err != nil {
			t.Fatalf("root is not limited: %v", err)
		}
	}
}
