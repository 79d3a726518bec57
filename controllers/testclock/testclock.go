// Package testclock is the controller manager's test-only clock: when the
// environment variable PGKUBE_TEST_CLOCK_FILE names a file, controllers
// wrapped with Wrap see real time plus the offset the file holds, a Go
// duration such as "90s" or "-1h" (missing or empty file: no offset). The
// file is read every PollInterval, so an end-to-end test can move the
// manager's time forward (make a "*/1 * * * *" CronJob fire, a deadline
// pass) without waiting, by rewriting the file. Timers and tickers run in
// real time; controllers that wait for a moment in their clock's time
// register OnJump to look again when the offset changes.
//
// Never set it in production: time-based controllers then act on a time
// that is not the cluster's.
package testclock

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	"k8s.io/utils/clock"
)

// Env names the offset file.
const Env = "PGKUBE_TEST_CLOCK_FILE"

// PollInterval is how often the file is read.
const PollInterval = 100 * time.Millisecond

// Clock is real time plus an offset read from a file.
type Clock struct {
	clock.RealClock
	path   string
	offset atomic.Int64 // nanoseconds

	mu    sync.Mutex
	hooks []func()
}

// FromEnv is the test clock Env names, read again every PollInterval until
// ctx ends; nil unless Env is set.
func FromEnv(ctx context.Context) *Clock {
	p := os.Getenv(Env)
	if p == "" {
		return nil
	}
	c := New(p)
	go func() {
		t := time.NewTicker(PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.Poll()
			}
		}
	}()
	return c
}

// New is a clock reading path (call Poll to read it again).
func New(path string) *Clock {
	c := &Clock{path: path}
	c.Poll()
	return c
}

// ReadOffset reads an offset file: a Go duration, nothing for none.
func ReadOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// Poll reads the file again; when the offset changed, the OnJump hooks
// run.
func (c *Clock) Poll() {
	d, err := ReadOffset(c.path)
	if err != nil {
		return // half-written: next time
	}
	if c.offset.Swap(int64(d)) == int64(d) {
		return
	}
	c.mu.Lock()
	hooks := append([]func(){}, c.hooks...)
	c.mu.Unlock()
	for _, h := range hooks {
		h()
	}
}

// Offset is the current offset.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Now is real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(c.Offset()) }

// Since is Now minus t.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// OnJump registers f, run whenever the offset changes.
func (c *Clock) OnJump(f func()) {
	c.mu.Lock()
	c.hooks = append(c.hooks, f)
	c.mu.Unlock()
}

// Wrap makes a controller constructor use the test clock when Env is set.
func Wrap(newController func(*framework.Context) (framework.Runnable, error)) func(*framework.Context) (framework.Runnable, error) {
	return func(c *framework.Context) (framework.Runnable, error) {
		if c.TestClock != nil {
			cc := *c
			cc.Clock = c.TestClock
			c = &cc
		}
		return newController(c)
	}
}

var _ clock.WithTicker = (*Clock)(nil)
