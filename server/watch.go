package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
	pgwatch "github.com/pgkube/pgkube/watch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
)

// watchStream writes watch events in the negotiated framing.
type watchStream struct {
	s       *Server
	c       *call
	flusher http.Flusher
	enc     streaming.Encoder // protobuf framing; nil for JSON
	batch   *bytes.Buffer     // events gathered for one write, while set
	conn    net.Conn          // the hijacked connection of an HTTP/1.1 watch
	// wild: a wildcard watch, whose objects are marked with cluster, the
	// cluster of the event being sent.
	wild    bool
	cluster string
}

// setEncoder prepares protobuf framing when that was negotiated.
func (ws *watchStream) setEncoder() {
	if ws.c.out.media == mediaProtobuf {
		info, _ := runtime.SerializerInfoForMediaType(ws.s.codecs.factory.SupportedMediaTypes(), mediaProtobuf)
		ws.enc = streaming.NewEncoder(info.StreamSerializer.Framer.NewFrameWriter(ws), info.StreamSerializer.Serializer)
	}
}

func (s *Server) watch(c *call) error {
	q := c.r.URL.Query()
	if err := validateListQuery(q, true); err != nil {
		return err
	}
	lo, err := s.listOptions(&call{w: c.w, r: withoutPaging(c.r), ctx: c.ctx, ri: c.ri, res: c.res, out: c.out, cluster: c.cluster})
	if err != nil {
		return err
	}
	rvParam := q.Get("resourceVersion")
	since, err := parseRV(rvParam)
	if err != nil {
		return err
	}
	initial := q.Get("sendInitialEvents") == "true"
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	ws, timeout, err := s.newWatchStream(c)
	if err != nil {
		return err
	}

	cur, compacted, err := s.cfg.Store.CurrentRV(c.ctx, c.cluster)
	if err != nil {
		return err
	}
	var last int64
	var snapshot []storage.Object
	switch {
	case initial || rvParam == "" || rvParam == "0":
		// Start with the current state as ADDED events, as upstream does
		// for "any" and "most recent" starts and for streaming lists.
		if since > cur {
			if err := s.cfg.Store.WaitForRV(c.ctx, c.cluster, since, tooLargeWait); err != nil {
				return err
			}
		}
		page, err := s.cfg.Store.List(c.ctx, c.cluster, storage.ListOptions{
			Resource: lo.Resource, Namespace: lo.Namespace, Labels: lo.Labels, Fields: lo.Fields})
		if err != nil {
			return err
		}
		snapshot, last = page.Items, page.RV
	default:
		if since < compacted {
			return ws.startWithError(apierrors.NewResourceExpired("too old resource version: " + rvParam + " (" + strconv.FormatInt(compacted, 10) + ")"))
		}
		if since > cur {
			if err := s.cfg.Store.WaitForRV(c.ctx, c.cluster, since, tooLargeWait); err != nil {
				return err
			}
		}
		last = since
	}

	// The stream may outlive this handler (see hijack): the watcher ends
	// with the stream, in run, not with the request's context.
	w, err := s.cfg.Watch.Watch(context.WithoutCancel(c.ctx), c.cluster, lo.Resource, lo.Namespace, last, watchFilter(lo), bookmarks)
	if errors.Is(err, storage.ErrCompacted) {
		return ws.startWithError(apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(last, 10)))
	}
	if err != nil {
		return err
	}
	ws.run(timeout, w, func(ctx context.Context) { ws.stream(ctx, w, snapshot, last, initial, bookmarks, lo) })
	return nil
}

// newWatchStream reads what every watch request asks of its stream: the
// timeout (upstream's random 30–60 minutes unless given) and the form.
func (s *Server) newWatchStream(c *call) (*watchStream, time.Duration, error) {
	timeout := time.Duration(1800+rand.Intn(1800)) * time.Second
	if v := c.r.URL.Query().Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt32 {
			return nil, 0, badRequest("timeoutSeconds must be a non-negative integer, got %q", v)
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	if c.out.as == "PartialObjectMetadataList" {
		c.out.as = "PartialObjectMetadata"
	}
	ws := &watchStream{s: s, c: c}
	ws.flusher, _ = c.w.(http.Flusher)
	ws.setEncoder()
	return ws, timeout, nil
}

// watchFilter tells the feed which changes may concern a watch with lo's
// selectors: those whose new or replaced version is selected.
func watchFilter(lo storage.ListOptions) pgwatch.Filter {
	return func(ch *storage.Change) bool {
		return selected(&ch.Object, lo.Labels, lo.Fields) || (ch.Prev != nil && selected(ch.Prev, lo.Labels, lo.Fields))
	}
}

// run starts the stream and runs stream until it ends, then the watcher.
func (ws *watchStream) run(timeout time.Duration, w *pgwatch.Watcher, stream func(context.Context)) {
	ctx, cancel := ws.start(timeout)
	run := func() {
		defer cancel()
		defer w.Stop()
		defer ws.end()
		stream(ctx)
	}
	if ws.conn != nil {
		// The connection is ours now: stream from a fresh goroutine with
		// a small stack, and let the request's goroutine, grown deep
		// while parsing and listing, end.
		go run()
		return
	}
	run()
}

// stream sends the initial state, then every change until ctx ends.
func (ws *watchStream) stream(ctx context.Context, w *pgwatch.Watcher, snapshot []storage.Object, last int64,
	initial, bookmarks bool, lo storage.ListOptions) {
	for _, o := range snapshot {
		if err := ws.send(watch.Added, o.Data, nil); err != nil {
			return
		}
	}
	if initial && bookmarks {
		if err := ws.bookmark(last, true); err != nil {
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
			ws.sendStatus(apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(last, 10)))
			return
		}
		if err != nil {
			return // timeout, client gone, shutdown, or too slow: the client re-watches
		}
		ws.startBatch()
		for _, ev := range events {
			if ev.Progress {
				last = max(last, ev.RV)
				continue
			}
			last = ev.RV
			if err := ws.change(ev, lo.Labels, lo.Fields); err != nil {
				return
			}
		}
		if bookmarks && time.Since(lastBookmark) >= ws.s.cfg.BookmarkInterval {
			if err := ws.bookmark(last, false); err != nil {
				return
			}
			lastBookmark = time.Now()
		}
		if err := ws.flush(); err != nil {
			return
		}
	}
}

// withoutPaging drops list-only parameters that a watch ignores.
func withoutPaging(r *http.Request) *http.Request {
	q := r.URL.Query()
	q.Del("limit")
	q.Del("continue")
	q.Del("resourceVersion")
	q.Del("resourceVersionMatch")
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	return r2
}

// start sends the response header. An HTTP/1.1 watch takes its
// connection over from net/http (see hijack); others stream through the
// ResponseWriter. The returned context ends the stream: at its timeout,
// when the client goes away, or when the server shuts down.
func (ws *watchStream) start(timeout time.Duration) (context.Context, context.CancelFunc) {
	c := ws.c
	media := c.out.media
	if media == mediaYAML {
		media = mediaJSON // watch streams have no YAML form; JSON it is
		c.out.media = mediaJSON
	}
	if ctx, cancel, ok := ws.hijack(media, timeout); ok {
		return ctx, cancel
	}
	h := c.w.Header()
	h.Set("Content-Type", media)
	h.Set("Transfer-Encoding", "chunked")
	c.w.WriteHeader(http.StatusOK)
	ws.flush()
	return context.WithTimeout(c.ctx, timeout)
}

// hijack takes an HTTP/1.1 watch's connection from net/http. An idle watch
// then costs its connection, a small streaming goroutine and a goroutine
// blocked reading (to notice the client leaving), instead of net/http's
// handler and reader goroutines and its per-connection buffers. Writes are
// chunks straight to the socket. Shutdown reaches it through
// Config.Stopping, since http.Server.Shutdown does not track hijacked
// connections.
func (ws *watchStream) hijack(media string, timeout time.Duration) (context.Context, context.CancelFunc, bool) {
	c := ws.c
	if c.r.ProtoMajor != 1 || ws.s.cfg.Stopping == nil {
		return nil, nil, false
	}
	conn, rw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	rw.Reader, rw.Writer = nil, nil // nothing is buffered for a GET; let the buffers go
	// net/http leaves its deadlines on the connection (its reader's is in
	// the past, to stop it): clear them.
	conn.SetDeadline(time.Time{}) //nolint:errcheck
	ctx, cancel := context.WithTimeout(ws.s.cfg.Stopping, timeout)
	head := "HTTP/1.1 200 OK\r\nContent-Type: " + media + "\r\nCache-Control: no-cache, private\r\n" +
		"Transfer-Encoding: chunked\r\nDate: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n"
	for _, w := range c.warnings {
		head += fmt.Sprintf("Warning: 299 - %q\r\n", w)
	}
	ws.conn = conn
	if _, err := ws.writeConn([]byte(head + "\r\n")); err != nil {
		cancel()
	}
	go func() {
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				cancel()
				return
			}
		}
	}()
	context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) }) //nolint:errcheck // unblocks the reader
	return ctx, cancel, true
}

// writeWait bounds one write to a hijacked connection: a client that
// stops reading is dropped rather than holding its events forever.
const writeWait = 30 * time.Second

func (ws *watchStream) writeConn(p []byte) (int, error) {
	ws.conn.SetWriteDeadline(time.Now().Add(writeWait)) //nolint:errcheck
	return ws.conn.Write(p)
}

// end finishes the response: the last chunk, then the connection closes
// (a watch never reuses it).
func (ws *watchStream) end() {
	if ws.conn != nil {
		ws.writeConn([]byte("0\r\n\r\n")) //nolint:errcheck
		ws.conn.Close()
	}
}

func (ws *watchStream) startWithError(err *apierrors.StatusError) error {
	_, cancel := ws.start(time.Minute)
	defer cancel()
	defer ws.end()
	ws.sendStatus(err)
	return nil
}

// Write sends bytes to the client, or gathers them while a batch of events
// is being written, so that a burst costs one write to the socket rather
// than one per event.
func (ws *watchStream) Write(p []byte) (int, error) {
	if ws.batch != nil {
		return ws.batch.Write(p)
	}
	if ws.conn != nil {
		return ws.chunk(p)
	}
	return ws.c.w.Write(p)
}

// chunk writes p as one HTTP/1.1 chunk to the hijacked connection.
func (ws *watchStream) chunk(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	ws.conn.SetWriteDeadline(time.Now().Add(writeWait)) //nolint:errcheck
	bufs := net.Buffers{append(strconv.AppendInt(nil, int64(len(p)), 16), '\r', '\n'), p, []byte("\r\n")}
	if _, err := bufs.WriteTo(ws.conn); err != nil {
		return 0, err
	}
	return len(p), nil
}

var batchBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (ws *watchStream) startBatch() {
	ws.batch = batchBuffers.Get().(*bytes.Buffer)
}

// flush ends a batch, if any, and pushes everything to the client.
func (ws *watchStream) flush() error {
	if b := ws.batch; b != nil {
		ws.batch = nil
		_, err := ws.Write(b.Bytes())
		if b.Cap() <= 1<<20 {
			b.Reset()
			batchBuffers.Put(b)
		}
		if err != nil {
			return err
		}
	}
	if ws.flusher != nil && ws.conn == nil {
		ws.flusher.Flush()
	}
	return nil
}

// selected evaluates a watch's selectors on a stored version, from the
// labels and fields columns written with it.
func selected(o *storage.Object, ls labels.Selector, fs fields.Selector) bool {
	if ls != nil && !ls.Matches(labels.Set(o.Labels)) {
		return false
	}
	if fs != nil && !fs.Empty() {
		set := fields.Set{"metadata.name": o.Name, "metadata.namespace": o.Namespace}
		for k, v := range o.Fields {
			set[k] = v
		}
		if !fs.Matches(set) {
			return false
		}
	}
	return true
}

// change turns one change-log entry into the event a watcher with these
// selectors sees: objects entering the selection are ADDED, leaving it
// DELETED.
func (ws *watchStream) change(ev pgwatch.Event, ls labels.Selector, fs fields.Selector) error {
	ch := &ev.Change
	newMatch := selected(&ch.Object, ls, fs)
	oldMatch := ch.Prev != nil && selected(ch.Prev, ls, fs)
	switch {
	case ch.Deleted:
		if oldMatch || (ch.Prev == nil && newMatch) {
			return ws.send(watch.Deleted, ch.Data, ev.Shared)
		}
	case ch.Prev == nil || !oldMatch:
		if newMatch {
			return ws.send(watch.Added, ch.Data, ev.Shared)
		}
	case newMatch:
		return ws.send(watch.Modified, ch.Data, ev.Shared)
	default:
		return ws.send(watch.Deleted, ch.Data, ev.Shared)
	}
	return nil
}

// send writes one event for stored bytes. A plain JSON event is framed once
// and the frame shared by every watcher of the change.
func (ws *watchStream) send(t watch.EventType, data []byte, shared *pgwatch.Shared) error {
	c := ws.c
	if ws.wild {
		if ws.enc == nil && c.out.as == "" && c.res.FromStorage == nil {
			frame, err := shared.Frame("wild-json/"+string(t), func() ([]byte, error) {
				marked, ok := markClusterJSON(data, ws.cluster)
				if !ok {
					obj, err := ws.s.markCluster(c, ws.cluster, data)
					if err != nil {
						return nil, err
					}
					if marked, err = ws.s.codecs.encode(obj, mediaJSON); err != nil {
						return nil, err
					}
					marked = bytes.TrimRight(marked, "\n")
				}
				return jsonFrame(t, marked), nil
			})
			if err != nil {
				return err
			}
			_, err = ws.Write(frame)
			return err
		}
		obj, err := ws.s.markCluster(c, ws.cluster, data)
		if err != nil {
			return err
		}
		return ws.sendObject(t, obj)
	}
	if ws.enc == nil && c.out.as == "" && c.res.FromStorage == nil {
		frame, _ := shared.Frame("json/"+string(t), func() ([]byte, error) { return jsonFrame(t, data), nil })
		_, err := ws.Write(frame)
		return err
	}
	obj, err := ws.s.fromStorage(c.res, data)
	if err != nil {
		return err
	}
	return ws.sendObject(t, obj)
}

func (ws *watchStream) sendObject(t watch.EventType, obj runtime.Object) error {
	c := ws.c
	var out runtime.Object = obj
	switch c.out.as {
	case "Table":
		tab, err := ws.s.table(c, []runtime.Object{obj}, metav1.ListMeta{})
		if err != nil {
			return err
		}
		out = tab
	case "PartialObjectMetadata":
		out = partialMeta(obj, c.out.version)
	}
	raw, err := ws.s.codecs.encode(out, c.out.media)
	if err != nil {
		return err
	}
	ev := &metav1.WatchEvent{Type: string(t), Object: runtime.RawExtension{Raw: raw}}
	if ws.enc != nil {
		return ws.enc.Encode(ev)
	}
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = ws.Write(append(line, '\n'))
	return err
}

// bookmark tells the client how far it is up to date; the one that ends
// a streaming list carries the initial-events-end annotation.
func (ws *watchStream) bookmark(rv int64, initialEnd bool) error {
	return ws.bookmarkToken(strconv.FormatInt(rv, 10), initialEnd)
}

func (ws *watchStream) bookmarkToken(rv string, initialEnd bool) error {
	obj, err := ws.s.cfg.Registry.NewObject(ws.c.res)
	if err != nil {
		return err
	}
	setGVK(obj, ws.c.res.GVK())
	m := obj.(metav1.Object)
	m.SetResourceVersion(rv)
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	saved := ws.c.out.as
	ws.c.out.as = "" // bookmarks carry the bare kind, never a Table row
	defer func() { ws.c.out.as = saved }()
	return ws.sendObject(watch.Bookmark, obj)
}

func (ws *watchStream) sendStatus(err *apierrors.StatusError) {
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	_ = ws.sendObject(watch.Error, &st)
	ws.flush()
}

// jsonFrame is one JSON watch event line around an object's JSON.
func jsonFrame(t watch.EventType, object []byte) []byte {
	buf := make([]byte, 0, len(object)+40)
	buf = append(buf, `{"type":"`...)
	buf = append(buf, t...)
	buf = append(buf, `","object":`...)
	buf = append(buf, object...)
	return append(buf, "}\n"...)
}
