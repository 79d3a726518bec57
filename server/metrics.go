package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics keeps Prometheus counters and latency histograms by verb,
// resource and code, written out in the text exposition format.
type metrics struct {
	inflight atomic.Int64
	mu       sync.Mutex
	requests map[reqKey]*histogram
	storage  map[string]*histogram // by storage operation
}

type reqKey struct{ verb, resource, subresource, code string }

type histogram struct {
	count   uint64
	sum     float64
	buckets []uint64
}

var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]*histogram{}, storage: map[string]*histogram{}}
}

// ObserveStorage records one storage operation's latency.
func (m *metrics) ObserveStorage(op string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.storage[op]
	if h == nil {
		h = &histogram{buckets: make([]uint64, len(latencyBuckets))}
		m.storage[op] = h
	}
	h.add(d.Seconds())
}

func (h *histogram) add(seconds float64) {
	h.count++
	h.sum += seconds
	for i, b := range latencyBuckets {
		if seconds <= b {
			h.buckets[i]++
		}
	}
}

func (h *histogram) write(b *strings.Builder, name, labels string) {
	for i, le := range latencyBuckets {
		fmt.Fprintf(b, "%s_bucket{%s,le=\"%g\"} %d\n", name, labels, le, h.buckets[i])
	}
	fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, h.count)
	fmt.Fprintf(b, "%s_sum{%s} %g\n", name, labels, h.sum)
	fmt.Fprintf(b, "%s_count{%s} %d\n", name, labels, h.count)
}

type labelsKey struct{}

// requestLabels is filled in by the resource handler once it knows the verb
// and resource; the middleware reads it after the request.
type requestLabels struct{ verb, resource, subresource string }

func (m *metrics) label(r *http.Request, verb, resource, subresource string) {
	if l, ok := r.Context().Value(labelsKey{}).(*requestLabels); ok {
		*l = requestLabels{verb, resource, subresource}
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush keeps watch streams flushing through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inflight.Add(1)
		defer m.inflight.Add(-1)
		start := time.Now()
		labels := &requestLabels{verb: strings.ToUpper(r.Method)}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(contextWith(r, labels)))
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		m.observe(reqKey{labels.verb, labels.resource, labels.subresource, strconv.Itoa(rec.code)}, time.Since(start).Seconds())
	})
}

func (m *metrics) observe(k reqKey, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.requests[k]
	if h == nil {
		h = &histogram{buckets: make([]uint64, len(latencyBuckets))}
		m.requests[k] = h
	}
	h.add(seconds)
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	var b strings.Builder
	b.WriteString("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n# TYPE apiserver_request_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "apiserver_request_total{%s} %d\n", k.labels(), m.requests[k].count)
	}
	b.WriteString("# HELP apiserver_request_duration_seconds Request latency.\n# TYPE apiserver_request_duration_seconds histogram\n")
	for _, k := range keys {
		m.requests[k].write(&b, "apiserver_request_duration_seconds", k.labels())
	}
	b.WriteString("# HELP pgkube_storage_duration_seconds PostgreSQL operation latency.\n# TYPE pgkube_storage_duration_seconds histogram\n")
	ops := make([]string, 0, len(m.storage))
	for op := range m.storage {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		m.storage[op].write(&b, "pgkube_storage_duration_seconds", fmt.Sprintf("operation=%q", op))
	}
	m.mu.Unlock()
	b.WriteString("# HELP apiserver_current_inflight_requests Requests being served.\n# TYPE apiserver_current_inflight_requests gauge\n")
	fmt.Fprintf(&b, "apiserver_current_inflight_requests %d\n", m.inflight.Load())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte(b.String())) //nolint:errcheck
}

func (k reqKey) labels() string {
	return fmt.Sprintf("verb=%q,resource=%q,subresource=%q,code=%q", k.verb, k.resource, k.subresource, k.code)
}

func contextWith(r *http.Request, l *requestLabels) context.Context {
	return context.WithValue(r.Context(), labelsKey{}, l)
}
