package main

// The watch section (issue 3): what watchers cost writers, how soon a write
// reaches its watchers, how long one batch of writes takes to reach many
// watchers, and what an idle watcher costs the API server in memory.
//
// Watchers are raw HTTP watch streams that find each event's
// resourceVersion without decoding the object: decoding 1000 copies of
// every event in client-go would spend the shared CPUs on the client and
// make the server look slower than it is.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// watchNamespace holds the watch section's ConfigMaps, apart from the load's,
// so that watchers of it see only the writes made for them.
const watchNamespace = "bench-watch"

const (
	// deliveryTimeout bounds the wait for a phase's events once its writes
	// have returned; a working server needs well under a second.
	deliveryTimeout = 30 * time.Second
	// eventTimeout bounds the wait for one write's event in the latency
	// phases.
	eventTimeout = 10 * time.Second
	// openers is how many watch streams are opened at a time.
	openers = 32
	// maxFaults is how many faults are described; the rest are counted.
	maxFaults = 10
)

type watchResults struct {
	// Write rounds without and with watchers, alternating, so that a
	// shared machine's changing load affects both alike.
	quiet, watched []round
	lat1, latN     latencyStats
	fanout         fanoutStats
	mem            idleMemory
	faults         faults // missed, unexpected or late events, failed writes
}

func (r watchResults) failed() int { return r.faults.n }

// latencyStats is the delay from a write's response to each watcher
// reading its event.
type latencyStats struct {
	watchers int
	lat      []time.Duration // per watcher per event, sorted
}

// fanoutStats times one batch of concurrent writes reaching every watcher.
type fanoutStats struct {
	watchers, writes int
	writing          time.Duration // first write sent to last write returned
	all              time.Duration // first write sent to the last watcher's last event
	complete         bool          // every watcher got every event
}

// idleMemory is the API server's memory before and with idle watchers,
// each read once garbage collection has settled.
type idleMemory struct {
	watchers            int
	rssBefore, rssAfter int64
	goBefore, goAfter   int64 // heap spans and goroutine stacks in use
}

// faults collects what went wrong without stopping the benchmark: one
// failure should not hide the other figures.
type faults struct {
	n     int
	first []string
}

func (f *faults) addf(format string, args ...any) {
	f.n++
	if len(f.first) < maxFaults {
		f.first = append(f.first, fmt.Sprintf(format, args...))
	}
}

// writeFaults records a phase's failed writes.
func (f *faults) writeFaults(phase string, s opStats) {
	if s.errs > 0 {
		f.addf("%s: %d writes failed; first: %v", phase, s.errs, s.firstErr)
	}
}

type watchBench struct {
	c       config
	api     *apiServer
	cms     typedcorev1.ConfigMapInterface
	streams *http.Client // watch streams and profiles
	objs    []*corev1.ConfigMap
	latObj  *corev1.ConfigMap // the latency phases' object
	seq     atomic.Int64      // makes every update a real change
	res     *watchResults
}

// runWatch runs the watch phases against the API server: write rounds
// without and with c.writeWatchers watchers, latency with one watcher,
// memory of c.watchers idle watchers, then latency and fan-out with them.
// Faults of the server are collected in the results; setting-up errors and
// cancellation are returned.
func runWatch(ctx context.Context, c config, api *apiServer) (watchResults, error) {
	var res watchResults
	// Each stream holds a connection, a writer keeps one per worker, and
	// the rest is headroom for the runtime and the load's idle connections.
	if err := ensureOpenFiles(uint64(c.watchers + 2*c.workers + 64)); err != nil {
		return res, err
	}
	cs, err := newClientset(api.url, api.admin, c.workers)
	if err != nil {
		return res, err
	}
	// Its own transport, so that streams neither take nor keep the
	// writers' connections. A cancelled stream's connection is closed,
	// never reused, so no idle pool is needed.
	streams, err := api.admin.transport(0)
	if err != nil {
		return res, fmt.Errorf("creating the watch streams' client: %w", err)
	}
	// Events are read as the server writes them, never through a
	// decompressor that might hold them back.
	streams.DisableCompression = true
	b := &watchBench{
		c:       c,
		api:     api,
		cms:     cs.CoreV1().ConfigMaps(watchNamespace),
		streams: &http.Client{Transport: streams},
		res:     &res,
	}
	if err := b.setUp(ctx, cs); err != nil {
		return res, err
	}

	step(fmt.Sprintf("watch: %d rounds of %d updates without and with %d watchers",
		c.watchRounds, c.watchWrites, c.writeWatchers))
	for r := 1; r <= c.watchRounds; r++ {
		res.quiet = append(res.quiet, b.writeRound(ctx, fmt.Sprintf("write round %d without watchers", r), nil))
		g, err := b.startWatchers(ctx, c.writeWatchers)
		if err != nil {
			return res, err
		}
		res.watched = append(res.watched, b.writeRound(ctx, fmt.Sprintf("write round %d with %d watchers", r, c.writeWatchers), g))
		g.stop()
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}

	step(fmt.Sprintf("watch: latency of %d updates with 1 watcher", c.latencyWrites))
	g, err := b.startWatchers(ctx, 1)
	if err != nil {
		return res, err
	}
	res.lat1 = b.latency(ctx, g, "latency with 1 watcher")
	g.stop()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The memory figure comes before the many watchers have carried any
	// events, so that it is the cost of a watcher that only waits.
	step(fmt.Sprintf("watch: memory of %d idle watchers", c.watchers))
	res.mem.watchers = c.watchers
	if res.mem.rssBefore, res.mem.goBefore, err = b.settledMemory(ctx); err != nil {
		return res, err
	}
	g, err = b.startWatchers(ctx, c.watchers)
	if err != nil {
		return res, err
	}
	defer g.stop()
	if res.mem.rssAfter, res.mem.goAfter, err = b.settledMemory(ctx); err != nil {
		return res, err
	}

	step(fmt.Sprintf("watch: latency of %d updates with %d watchers", c.latencyWrites, c.watchers))
	res.latN = b.latency(ctx, g, fmt.Sprintf("latency with %d watchers", c.watchers))
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step(fmt.Sprintf("watch: %d concurrent updates to %d watchers", c.fanoutWrites, c.watchers))
	res.fanout = b.fanout(ctx, g)
	return res, ctx.Err()
}

// setUp creates the namespace, the objects the write rounds and the
// fan-out update and the latency phases' object. They exist before any
// watcher starts, so watchers see only updates.
func (b *watchBench) setUp(ctx context.Context, cs kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: watchNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", watchNamespace, err)
	}
	n := b.c.watchWrites
	step(fmt.Sprintf("watch: creating %d ConfigMaps in %s", n+1, watchNamespace))
	b.objs = make([]*corev1.ConfigMap, n+1)
	s := parallel(ctx, b.c.workers, n+1, func(ctx context.Context, i int) error {
		cm := newConfigMap(i, b.c.dataBytes)
		cm.Namespace, cm.Name = watchNamespace, fmt.Sprintf("w-%05d", i)
		var err error
		b.objs[i], err = b.cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.errs > 0 {
		return fmt.Errorf("creating the watch section's ConfigMaps: %d failed; first: %w", s.errs, s.firstErr)
	}
	b.objs, b.latObj = b.objs[:n], b.objs[n]
	return nil
}

// touch updates cm with a real change, a new sequence number (a server may
// skip writing an unchanged object), and returns the stored object with
// its resourceVersion.
func (b *watchBench) touch(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, int64, error) {
	cm.Data["seq"] = strconv.FormatInt(b.seq.Add(1), 10)
	out, err := b.cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("updating %s: %w", cm.Name, err)
	}
	rv, err := strconv.ParseInt(out.ResourceVersion, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("updating %s: resourceVersion %q is not a number", cm.Name, out.ResourceVersion)
	}
	return out, rv, nil
}

// update updates the first n watch objects on c.workers workers and
// returns the resourceVersions written.
func (b *watchBench) update(ctx context.Context, n int) (opStats, map[int64]bool) {
	rvs := make([]int64, n)
	s := parallel(ctx, b.c.workers, n, func(ctx context.Context, i int) error {
		cm, rv, err := b.touch(ctx, b.objs[i])
		if err == nil {
			b.objs[i], rvs[i] = cm, rv
		}
		return err
	})
	want := make(map[int64]bool, n)
	for _, rv := range rvs {
		if rv != 0 {
			want[rv] = true
		}
	}
	return s, want
}

// writeRound updates every watch object once and, if there are watchers,
// checks that each received every update.
func (b *watchBench) writeRound(ctx context.Context, phase string, g *watchGroup) round {
	if g != nil {
		g.reset()
	}
	cpu := procCPU(b.api.pid(), false)
	s, want := b.update(ctx, len(b.objs))
	r := round{ops: s, apiCPU: procCPU(b.api.pid(), false) - cpu}
	b.res.faults.writeFaults(phase, s)
	if g != nil {
		b.collect(ctx, g, phase, want)
	}
	return r
}

// latency updates one object c.latencyWrites times, each write once the
// previous write's event has reached every watcher: the figures are then
// delivery latency, not queueing behind earlier events, which the fan-out
// phase measures.
func (b *watchBench) latency(ctx context.Context, g *watchGroup, phase string) latencyStats {
	st := latencyStats{watchers: g.size()}
	g.reset()
	returned := map[int64]time.Time{}
	want := map[int64]bool{}
	for k := 1; k <= b.c.latencyWrites && ctx.Err() == nil; k++ {
		cm, rv, err := b.touch(ctx, b.latObj)
		at := time.Now()
		if err != nil {
			// The count of events to wait for would be wrong from here.
			b.res.faults.addf("%s: write %d: %v", phase, k, err)
			break
		}
		b.latObj, returned[rv], want[rv] = cm, at, true
		if !g.await(ctx, k*st.watchers, eventTimeout) {
			b.res.faults.addf("%s: write %d (resourceVersion %d) had not reached every watcher after %v",
				phase, k, rv, eventTimeout)
			break
		}
	}
	perWatcher, _ := b.collect(ctx, g, phase, want)
	for _, events := range perWatcher {
		for _, e := range events {
			if t, ok := returned[e.rv]; ok {
				// An event can be read before its write's response: the
				// server answers and fans out at the same time. That is
				// no delay at all, not a negative one.
				st.lat = append(st.lat, max(e.at.Sub(t), 0))
			}
		}
	}
	slices.Sort(st.lat)
	return st
}

// fanout updates c.fanoutWrites objects on c.workers workers and times
// until every watcher has read every event.
func (b *watchBench) fanout(ctx context.Context, g *watchGroup) fanoutStats {
	phase := fmt.Sprintf("%d updates to %d watchers", b.c.fanoutWrites, g.size())
	st := fanoutStats{watchers: g.size(), writes: b.c.fanoutWrites}
	g.reset()
	start := time.Now()
	s, want := b.update(ctx, b.c.fanoutWrites)
	st.writing = time.Since(start)
	b.res.faults.writeFaults(phase, s)
	perWatcher, complete := b.collect(ctx, g, phase, want)
	var last time.Time
	for _, events := range perWatcher {
		if len(events) > 0 && events[len(events)-1].at.After(last) {
			last = events[len(events)-1].at
		}
	}
	st.complete = complete && s.errs == 0
	st.all = last.Sub(start)
	return st
}

// collect waits until the watchers may have read the events of want and
// checks that each read exactly those, in resourceVersion order, each
// once. It returns what each watcher read and whether all did.
func (b *watchBench) collect(ctx context.Context, g *watchGroup, phase string, want map[int64]bool) ([][]seen, bool) {
	n := g.size()
	// A shortfall is reported watcher by watcher below.
	g.await(ctx, n*len(want), deliveryTimeout)
	events, problems := g.snapshot()
	bad, first := 0, ""
	for i := range events {
		var got, unexpected, disordered int
		var prev int64
		for _, e := range events[i] {
			if e.rv <= prev {
				disordered++ // a repeat shows here too
			}
			prev = max(prev, e.rv)
			if want[e.rv] {
				got++
			} else {
				unexpected++
			}
		}
		if got == len(want) && unexpected == 0 && disordered == 0 && problems[i] == nil {
			continue
		}
		bad++
		if first == "" {
			first = fmt.Sprintf("watcher %d read %d of %d events, %d unexpected, %d out of order",
				i, got, len(want), unexpected, disordered)
			if problems[i] != nil {
				first += fmt.Sprintf("; %v", problems[i])
			}
		}
	}
	if bad > 0 {
		b.res.faults.addf("%s: %d of %d watchers did not read exactly the %d events written; first: %s",
			phase, bad, n, len(want), first)
	}
	return events, bad == 0
}

// settledMemory forces a garbage collection in the API server and waits
// for its RSS to stop moving, since the Go runtime returns freed memory to
// the system in the background, a little at a time. It returns the RSS
// and the memory Go's heap spans and goroutine stacks hold.
func (b *watchBench) settledMemory(ctx context.Context) (rss, goMem int64, err error) {
	const (
		interval = time.Second
		steady   = 256 << 10 // bytes of change between readings
		limit    = 20 * time.Second
	)
	deadline := time.Now().Add(limit)
	prev := int64(-1)
	for {
		if goMem, err = b.collectGarbage(ctx); err != nil {
			return 0, 0, err
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(interval):
		}
		rss = statusKB(b.api.pid(), "VmRSS") * 1024
		if rss == 0 {
			return 0, 0, fmt.Errorf("reading the API server's RSS (pid %d): no VmRSS", b.api.pid())
		}
		if (prev >= 0 && max(rss-prev, prev-rss) < steady) || time.Now().After(deadline) {
			return rss, goMem, nil
		}
		prev = rss
	}
}

// collectGarbage makes the API server collect garbage (its heap profile
// does with gc=1) and returns HeapInuse + StackInuse from the runtime
// statistics the text profile ends with.
func (b *watchBench) collectGarbage(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.api.url+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("building heap profile request: %w", err)
	}
	resp, err := b.streams.Do(req)
	if err != nil {
		return 0, fmt.Errorf("forcing a GC through /debug/pprof/heap: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("forcing a GC through /debug/pprof/heap: %s", resp.Status)
	}
	var heap, stack int64 = -1, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			heap, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok { // "inuse / sys"
			inuse, _, _ := strings.Cut(v, " ")
			stack, _ = strconv.ParseInt(inuse, 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading heap profile: %w", err)
	}
	if heap < 0 || stack < 0 {
		return 0, errors.New("heap profile lacks the runtime's HeapInuse and Stack figures")
	}
	return heap + stack, nil
}

// seen is one event as a watcher read it.
type seen struct {
	rv int64
	at time.Time // when the watcher read it
}

// watchGroup is a set of watch streams on the watch namespace, each read
// by its own goroutine.
type watchGroup struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	events   [][]seen // per watcher, since the last reset
	bad      []error  // per watcher: its first bad event since the last reset
	ended    []error  // per watcher: why its stream ended before stop
	total    int      // events read by all watchers since the last reset
	want     int      // await's target; reached is closed when total gets there
	reached  chan struct{}
	stopping bool // ended streams are expected
}

// startWatchers opens n watch streams at the current resourceVersion, so
// that they see the writes to come and not the existing objects (which a
// watch without resourceVersion sends first). The server subscribes a
// stream before it sends the response headers, so the streams miss
// nothing once this returns.
func (b *watchBench) startWatchers(ctx context.Context, n int) (*watchGroup, error) {
	l, err := b.cms.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("reading the resourceVersion to watch from: %w", err)
	}
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps?watch=true&resourceVersion=%s",
		b.api.url, watchNamespace, l.ResourceVersion)
	gctx, cancel := context.WithCancel(ctx)
	g := &watchGroup{cancel: cancel, events: make([][]seen, n), bad: make([]error, n), ended: make([]error, n)}
	s := parallel(gctx, min(openers, n), n, func(_ context.Context, i int) error {
		return g.open(gctx, b.streams, url, i)
	})
	if s.errs > 0 || ctx.Err() != nil {
		g.stop()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("opening %d watch streams: %d failed; first: %w", n, s.errs, s.firstErr)
	}
	return g, nil
}

func (g *watchGroup) open(ctx context.Context, client *http.Client, url string, i int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building watch request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return fmt.Errorf("watch answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	g.wg.Go(func() { g.read(i, resp.Body) })
	return nil
}

// read records watcher i's events until its stream ends.
func (g *watchGroup) read(i int, body io.ReadCloser) {
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4<<10), 16<<20)
	n := 0
	for sc.Scan() {
		at := time.Now()
		rv, err := modifiedRV(sc.Bytes())
		g.mu.Lock()
		if err != nil {
			if g.bad[i] == nil {
				g.bad[i] = err
			}
		} else {
			n++
			g.events[i] = append(g.events[i], seen{rv: rv, at: at})
			g.total++
			if g.reached != nil && g.total >= g.want {
				close(g.reached)
				g.reached = nil
			}
		}
		g.mu.Unlock()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.stopping {
		err := sc.Err()
		if err == nil {
			err = io.EOF // the server ended it
		}
		g.ended[i] = fmt.Errorf("stream ended after %d events: %w", n, err)
	}
}

// modifiedRV returns the resourceVersion of a MODIFIED event, the only
// kind the watch phases cause. It looks the fields up in the compact JSON
// pgkube writes rather than decoding the object, falling back to decoding
// if the line looks different.
func modifiedRV(line []byte) (int64, error) {
	const typeKey, rvKey = `{"type":"MODIFIED","object":{`, `"resourceVersion":"`
	if bytes.HasPrefix(line, []byte(typeKey)) {
		// The object's first resourceVersion is its metadata's: the
		// watch objects' data are letters and digits only.
		if _, rest, ok := bytes.Cut(line, []byte(rvKey)); ok {
			if digits, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
				if rv, err := strconv.ParseInt(string(digits), 10, 64); err == nil {
					return rv, nil
				}
			}
		}
	}
	var ev struct {
		Type   string
		Object struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return 0, fmt.Errorf("undecodable event %.200q: %w", line, err)
	}
	if ev.Type != "MODIFIED" {
		return 0, fmt.Errorf("unexpected %s event: %.300s", ev.Type, line)
	}
	rv, err := strconv.ParseInt(ev.Object.Metadata.ResourceVersion, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("event with resourceVersion %q: %.200s", ev.Object.Metadata.ResourceVersion, line)
	}
	return rv, nil
}

func (g *watchGroup) size() int { return len(g.events) }

// reset starts a phase: it forgets the events and bad events read so far.
// Ended streams stay ended.
func (g *watchGroup) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.events)
	clear(g.bad)
	g.total = 0
}

// await waits until the watchers have read n events in all since the last
// reset; false if they had not after timeout.
func (g *watchGroup) await(ctx context.Context, n int, timeout time.Duration) bool {
	g.mu.Lock()
	if g.total >= n {
		g.mu.Unlock()
		return true
	}
	reached := make(chan struct{})
	g.want, g.reached = n, reached
	g.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-reached:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reached = nil
	return g.total >= n
}

// snapshot returns what each watcher has read since the last reset and
// its problems: a bad event, an ended stream. The readers only ever
// append, so the returned slices stay valid.
func (g *watchGroup) snapshot() ([][]seen, []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	events := make([][]seen, len(g.events))
	copy(events, g.events)
	problems := make([]error, len(g.events))
	for i := range problems {
		problems[i] = errors.Join(g.bad[i], g.ended[i])
	}
	return events, problems
}

// stop closes every stream and waits for its reader.
func (g *watchGroup) stop() {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// ensureOpenFiles raises this process's soft limit on open files to n if
// it is lower: every watch stream holds a connection. Go already raises the
// soft limit to the hard one at start-up, so only a low hard limit fails.
func ensureOpenFiles(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-files limit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return fmt.Errorf("the watch phases need about %d open files, but the hard limit is %d (ulimit -Hn); lower -watchers",
			n, lim.Max)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open-files limit to %d: %w", n, err)
	}
	return nil
}
