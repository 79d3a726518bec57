package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testLog = `2026-01-02T03:04:05.000000001Z stdout F first
2026-01-02T03:04:06.5Z stderr F oops
2026-01-02T03:04:07Z stdout P par
2026-01-02T03:04:07.1Z stdout F tial
not a record
2026-01-02T03:04:08Z stdout F
2026-01-02T03:04:09Z stdout F last
`

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readLog(t *testing.T, path string, o LogOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := ReadCRILog(context.Background(), path, o, &b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReadCRILog(t *testing.T) {
	path := writeLog(t, testLog)
	all := LogOptions{TailLines: -1}
	cases := []struct {
		name string
		o    LogOptions
		want string
	}{
		{"all", all, "first\noops\npartial\n\nlast\n"},
		{"tail 2", LogOptions{TailLines: 2}, "\nlast\n"},
		{"tail 0", LogOptions{TailLines: 0}, ""},
		{"tail more than there are", LogOptions{TailLines: 100}, "first\noops\npartial\n\nlast\n"},
		{"since", LogOptions{TailLines: -1, Since: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC)}, "partial\n\nlast\n"},
		{"stdout", LogOptions{TailLines: -1, Stream: "Stdout"}, "first\npartial\n\nlast\n"},
		{"stderr", LogOptions{TailLines: -1, Stream: "Stderr"}, "oops\n"},
		{"limit", LogOptions{TailLines: -1, LimitBytes: 8}, "first\noo"},
		{"timestamps", LogOptions{TailLines: 1, Timestamps: true}, "2026-01-02T03:04:09Z last\n"},
		{"timestamps of a partial line", LogOptions{TailLines: -1, Timestamps: true, Since: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC), LimitBytes: 60},
			"2026-01-02T03:04:07Z par2026-01-02T03:04:07.1Z tial\n2026-01-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := readLog(t, path, c.o); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	if _, err := os.Stat(path + ".missing"); err == nil {
		t.Fatal("unexpected file")
	}
	var b bytes.Buffer
	if err := ReadCRILog(context.Background(), path+".missing", all, &b, nil); err == nil {
		t.Error("a missing file reads without error")
	}
}

// syncBuffer is written by the reader and read by the test.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	flushes atomic.Int32
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Flush() { s.flushes.Add(1) }

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestFollowCRILog: a followed log shows records as they are written
// (halves of a line joined), goes on in a new file after rotation, and
// ends once the container stops, with everything it wrote.
func TestFollowCRILog(t *testing.T) {
	path := writeLog(t, "2026-01-02T03:04:05Z stdout F one\n")
	var running atomic.Bool
	running.Store(true)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- ReadCRILog(context.Background(), path, LogOptions{TailLines: -1, Follow: true}, out, running.Load)
	}()
	waitFor(t, "first line", func() bool { return out.String() == "one\n" && out.flushes.Load() > 0 })
	appendFile(t, path, "2026-01-02T03:04:06Z stdout F tw")
	time.Sleep(3 * followPoll)
	if got := out.String(); got != "one\n" {
		t.Fatalf("half a record was shown: %q", got)
	}
	appendFile(t, path, "o\n")
	waitFor(t, "second line", func() bool { return out.String() == "one\ntwo\n" })

	// Rotation: the file is renamed and a new one started at the path.
	if err := os.Rename(path, path+".20260102-030407"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "2026-01-02T03:04:07Z stderr F three\n")
	waitFor(t, "line of the new file", func() bool { return out.String() == "one\ntwo\nthree\n" })

	appendFile(t, path, "2026-01-02T03:04:08Z stdout F four\n")
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container stopped")
	}
	if got := out.String(); !strings.HasSuffix(got, "three\nfour\n") {
		t.Errorf("after the stop: %q", got)
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	path := writeLog(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ReadCRILog(ctx, path, LogOptions{TailLines: -1, Follow: true}, &syncBuffer{}, func() bool { return true })
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}
