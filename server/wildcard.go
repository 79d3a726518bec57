package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/storage"
	pgwatch "github.com/pgkube/pgkube/watch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// The wildcard view, /clusters/*/..., lists and watches one resource across
// every logical cluster, for pgkube's own components: one controller
// manager or scheduler serves every tenant. Each object it returns names
// its cluster in ClusterAnnotation; writes go to /clusters/NAME/... as
// usual. Only list and watch are served, and only to users the root
// cluster's RBAC allows "get" on the non-resource URL WildcardPath, on top
// of the verb on the resource itself.
const (
	Wildcard          = "*"
	ClusterAnnotation = "pgkube.io/cluster"
	WildcardPath      = "/clusters/*"
)

type wildcardKey struct{}

func isWildcard(ctx context.Context) bool { return ctx.Value(wildcardKey{}) != nil }

// authorizeWildcard is the second check a wildcard request passes.
func (s *Server) authorizeWildcard(ctx context.Context, a authz.Attributes) *apierrors.StatusError {
	if s.cfg.Authorizer == nil || a.User == nil {
		return nil
	}
	wa := authz.Attributes{Cluster: clusters.Root, User: a.User, Verb: "get", Path: WildcardPath}
	if d, reason, _ := s.cfg.Authorizer.Authorize(ctx, wa); d != authz.Allow {
		return forbidden(wa, reason)
	}
	return nil
}

// stripClusterMark drops the wildcard view's annotation from an object
// being written: a controller that read an object through the view writes
// it back to its cluster, where the mark means nothing.
func stripClusterMark(obj runtime.Object) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[ClusterAnnotation]; ok {
			delete(a, ClusterAnnotation)
			if len(a) == 0 {
				a = nil
			}
			m.SetAnnotations(a)
		}
	}
}

// markCluster decodes a stored object and names its cluster on it.
func (s *Server) markCluster(c *call, cluster string, data []byte) (runtime.Object, error) {
	obj, err := s.fromStorage(c.res, data)
	if err != nil {
		return nil, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	a := m.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[ClusterAnnotation] = cluster
	m.SetAnnotations(a)
	return obj, nil
}

// positions keeps the wildcard positions this process handed out as
// resourceVersions, so that a watch can continue from a list or a
// bookmark. A resourceVersion of another process, a past run, or a
// per-cluster one (an event's object) is unknown here: 410, and the client
// lists again, as after any expired resourceVersion.
type positions struct {
	mu    sync.Mutex
	epoch string
	next  uint64
	byID  map[uint64]pgwatch.Position
	order []uint64
	last  pgwatch.Position // the most recent position put, shared
	lastN uint64
}

const keptPositions = 512

func newPositions() *positions {
	var b [4]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return &positions{epoch: hex.EncodeToString(b[:]), byID: map[uint64]pgwatch.Position{}}
}

// put returns the resourceVersion for p; p must not change afterwards.
func (ps *positions) put(p pgwatch.Position) string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.last != nil && samePosition(ps.last, p) {
		return ps.token(ps.lastN)
	}
	ps.next++
	ps.byID[ps.next] = p
	ps.order = append(ps.order, ps.next)
	if len(ps.order) > keptPositions {
		delete(ps.byID, ps.order[0])
		ps.order = ps.order[1:]
	}
	ps.last, ps.lastN = p, ps.next
	return ps.token(ps.next)
}

func samePosition(a, b pgwatch.Position) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (ps *positions) token(n uint64) string { return "w" + ps.epoch + "-" + strconv.FormatUint(n, 10) }

func (ps *positions) get(rv string) (pgwatch.Position, bool) {
	rest, ok := strings.CutPrefix(rv, "w"+ps.epoch+"-")
	if !ok {
		return nil, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return nil, false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.byID[n]
	return p, ok
}

func tooOld(rv string) *apierrors.StatusError {
	return apierrors.NewResourceExpired("too old resource version: " + rv)
}

// stored is one object of the wildcard view's list: its cluster and
// stored JSON.
type stored struct {
	cluster string
	data    []byte
}

// wildcardSnapshot lists the resource in every cluster and the position
// the list stands at.
func (s *Server) wildcardSnapshot(c *call, lo storage.ListOptions) ([]stored, pgwatch.Position, error) {
	var items []stored
	vec, err := s.cfg.Store.ListAll(c.ctx, storage.ListAllOptions{Resource: c.res.StorageKey(), Namespace: lo.Namespace,
		Visit: func(o *storage.Object) error {
			if selected(o, lo.Labels, lo.Fields) {
				items = append(items, stored{cluster: o.Cluster, data: bytes.Clone(o.Data)})
			}
			return nil
		}})
	if err != nil {
		return nil, nil, err
	}
	pos := make(pgwatch.Position, len(vec))
	for _, v := range vec {
		pos[v.Name] = v.Current
	}
	return items, pos, nil
}

// wildcardList answers a list across clusters. Paging is not offered (a
// server may always return everything at once); an exact read at a past
// position is not either.
func (s *Server) wildcardList(c *call) error {
	lo, err := s.wildcardOptions(c)
	if err != nil {
		return err
	}
	if c.r.URL.Query().Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		return tooOld(c.r.URL.Query().Get("resourceVersion"))
	}
	items, pos, err := s.wildcardSnapshot(c, lo)
	if err != nil {
		return err
	}
	lm := metav1.ListMeta{ResourceVersion: s.positions.put(pos)}
	if c.out.media == mediaJSON && c.out.as == "" && c.res.FromStorage == nil {
		var buf bytes.Buffer
		for _, it := range items {
			marked, ok := markClusterJSON(it.data, it.cluster)
			if !ok {
				return s.wildcardListDecoded(c, items, lm)
			}
			if buf.Len() > 0 {
				buf.WriteByte(',')
			}
			buf.Write(marked)
		}
		return s.writeRawList(c, lm, buf.Bytes())
	}
	return s.wildcardListDecoded(c, items, lm)
}

func (s *Server) wildcardListDecoded(c *call, items []stored, lm metav1.ListMeta) error {
	objs := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		obj, err := s.markCluster(c, it.cluster, it.data)
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	return s.respondList(c, objs, lm)
}

// wildcardOptions reads a wildcard request's selectors; resourceVersion is
// a position token, not a number.
func (s *Server) wildcardOptions(c *call) (storage.ListOptions, error) {
	q := c.r.URL.Query()
	q.Del("resourceVersion")
	q.Del("resourceVersionMatch")
	q.Del("limit")
	q.Del("continue")
	r2 := c.r.Clone(c.ctx)
	r2.URL.RawQuery = q.Encode()
	return s.listOptions(&call{w: c.w, r: r2, ctx: c.ctx, ri: c.ri, res: c.res, out: c.out, cluster: c.cluster})
}

// wildcardWatch streams the changes of every cluster. An event's object
// keeps its own cluster's resourceVersion (what an update to it must
// carry); bookmarks carry positions, which a new watch continues from.
func (s *Server) wildcardWatch(c *call) error {
	q := c.r.URL.Query()
	lo, err := s.wildcardOptions(c)
	if err != nil {
		return err
	}
	rv := q.Get("resourceVersion")
	initial := q.Get("sendInitialEvents") == "true"
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	ws, timeout, err := s.newWatchStream(c)
	if err != nil {
		return err
	}
	ws.wild = true

	var snapshot []stored
	var from pgwatch.Position
	if initial || rv == "" || rv == "0" {
		snapshot, from, err = s.wildcardSnapshot(c, lo)
		if err != nil {
			return err
		}
	} else {
		var ok bool
		if from, ok = s.positions.get(rv); !ok {
			return ws.startWithError(tooOld(rv))
		}
	}
	w, err := s.cfg.Watch.WatchAll(context.WithoutCancel(c.ctx), lo.Resource, lo.Namespace, from, watchFilter(lo), bookmarks)
	if errors.Is(err, storage.ErrCompacted) {
		return ws.startWithError(tooOld(rv))
	}
	if err != nil {
		return err
	}
	ws.run(timeout, w, func(ctx context.Context) { ws.streamAll(ctx, w, snapshot, from, initial, bookmarks, lo) })
	return nil
}

// streamAll is stream for the wildcard view.
func (ws *watchStream) streamAll(ctx context.Context, w *pgwatch.Watcher, snapshot []stored, from pgwatch.Position,
	initial, bookmarks bool, lo storage.ListOptions) {
	for _, o := range snapshot {
		ws.cluster = o.cluster
		if err := ws.send(watch.Added, o.data, nil); err != nil {
			return
		}
	}
	// at is where the client stands: from, then each progress marker's
	// position merged with from (a list may be ahead of the feed).
	// at is owned (ours to change) until it is handed to positions.
	at, owned := from, false
	mark := func(initialEnd bool) error {
		owned = false
		return ws.bookmarkToken(ws.s.positions.put(at), initialEnd)
	}
	if initial && bookmarks {
		if err := mark(true); err != nil {
			return
		}
	}
	if ws.flush() != nil {
		return
	}
	lastBookmark := time.Now()
	for {
		events, err := w.Next(ctx)
		if errors.Is(err, storage.ErrCompacted) {
			ws.sendStatus(tooOld("the history of a cluster was compacted"))
			return
		}
		if err != nil {
			if bookmarks && ctx.Err() == context.DeadlineExceeded {
				// A bookmark as the watch times out lets the client
				// continue from here rather than list everything again.
				mark(false) //nolint:errcheck
				ws.flush()  //nolint:errcheck
			}
			return
		}
		ws.startBatch()
		for _, ev := range events {
			if ev.Progress {
				at, owned = mergePositions(ev.At, from), false
				continue
			}
			if !owned {
				at, owned = maps.Clone(at), true
			}
			at[ev.Cluster] = max(at[ev.Cluster], ev.RV)
			ws.cluster = ev.Cluster
			if err := ws.change(ev, lo.Labels, lo.Fields); err != nil {
				return
			}
		}
		if bookmarks && time.Since(lastBookmark) >= ws.s.cfg.BookmarkInterval {
			if err := mark(false); err != nil {
				return
			}
			lastBookmark = time.Now()
		}
		if err := ws.flush(); err != nil {
			return
		}
	}
}

// mergePositions is feed (shared, unchanged) unless from is ahead of it
// somewhere, which it is only just after a list.
func mergePositions(feed, from pgwatch.Position) pgwatch.Position {
	var out pgwatch.Position
	for k, v := range from {
		if v > feed[k] {
			if out == nil {
				out = maps.Clone(feed)
			}
			out[k] = v
		}
	}
	if out == nil {
		return feed
	}
	return out
}

// markClusterJSON names cluster in a stored object's JSON without decoding
// it: it reads the top-level keys as far as metadata, and metadata's keys
// as far as annotations, and splices the annotation in there. Watchers of
// the wildcard view (every controller, the scheduler, the agents) get every
// change of a resource, so decoding and encoding each one would cost far
// more than the plain view's shared frames. ok is false for JSON it does
// not expect; the caller then decodes.
func markClusterJSON(data []byte, cluster string) (out []byte, ok bool) {
	entry, err := json.Marshal(ClusterAnnotation)
	if err != nil {
		return nil, false
	}
	value, err := json.Marshal(cluster)
	if err != nil {
		return nil, false
	}
	pair := string(entry) + ":" + string(value)
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	skip := func() bool {
		var v json.RawMessage
		return dec.Decode(&v) == nil
	}
	for dec.More() {
		k, err := dec.Token()
		if key, isKey := k.(string); err != nil || !isKey {
			return nil, false
		} else if key != "metadata" {
			if !skip() {
				return nil, false
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil, false
		}
		metaOpen := int(dec.InputOffset())
		metaEmpty := !dec.More()
		for dec.More() {
			k, err := dec.Token()
			key, isKey := k.(string)
			if err != nil || !isKey {
				return nil, false
			}
			if key != "annotations" {
				if !skip() {
					return nil, false
				}
				continue
			}
			if t, err := dec.Token(); err != nil || t != json.Delim('{') {
				return nil, false
			}
			at := int(dec.InputOffset())
			if dec.More() {
				pair += ","
			}
			return splice(data, at, pair), true
		}
		insert := `"annotations":{` + pair + `}`
		if !metaEmpty {
			insert += ","
		}
		return splice(data, metaOpen, insert), true
	}
	return nil, false
}

func splice(data []byte, at int, s string) []byte {
	out := make([]byte, 0, len(data)+len(s))
	out = append(out, data[:at]...)
	out = append(out, s...)
	return append(out, data[at:]...)
}
