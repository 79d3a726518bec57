package testclock

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	c := New(path)
	if c.Offset() != 0 {
		t.Fatalf("no file: offset %v", c.Offset())
	}
	var jumps atomic.Int32
	c.OnJump(func() { jumps.Add(1) })
	if err := os.WriteFile(path, []byte("1h30m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Poll()
	if c.Offset() != 90*time.Minute || jumps.Load() != 1 {
		t.Fatalf("offset %v jumps %d", c.Offset(), jumps.Load())
	}
	if d := c.Now().Sub(time.Now()); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("now is %v ahead", d)
	}
	if s := c.Since(time.Now()); s < 89*time.Minute {
		t.Errorf("since %v", s)
	}
	c.Poll()
	if jumps.Load() != 1 {
		t.Error("a poll without change ran the hooks")
	}
	os.WriteFile(path, []byte("not a duration"), 0o644)
	c.Poll()
	if c.Offset() != 90*time.Minute {
		t.Errorf("a bad file changed the offset: %v", c.Offset())
	}
	os.WriteFile(path, nil, 0o644)
	c.Poll()
	if c.Offset() != 0 || jumps.Load() != 2 {
		t.Errorf("empty file: offset %v jumps %d", c.Offset(), jumps.Load())
	}
}
