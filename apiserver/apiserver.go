// Package apiserver assembles pgkube's request path in one place:
// HTTP → (authn → authz) → decode → admission → storage → change log → watch,
// and runs it on a listener.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/server"
	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Options configure an API server process.
type Options struct {
	DatabaseURL string
	// ListenDatabaseURL is a direct connection for LISTEN, when DatabaseURL
	// goes through a transaction-pooling proxy. Default: DatabaseURL.
	ListenDatabaseURL string
	Listen            string // host:port
	ServiceCIDR       string
	NodePortRange     string
	// HistoryRetention is how long superseded versions stay readable (watch
	// resume, paging), like kube-apiserver's compaction interval.
	HistoryRetention time.Duration
	// WatchBookmarkInterval is how often watches that allow bookmarks get
	// one (default 30s).
	WatchBookmarkInterval time.Duration
	Log                   *slog.Logger
}

func (o *Options) defaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:6443"
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/12"
	}
	if o.NodePortRange == "" {
		o.NodePortRange = "30000-32767"
	}
	if o.HistoryRetention == 0 {
		o.HistoryRetention = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Server is a running API server.
type Server struct {
	opts     Options
	pool     *pgxpool.Pool
	store    *storage.Store
	http     *http.Server
	listener net.Listener
	handler  http.Handler
	done     chan struct{}
	// stop cancels every request's context: watches end when the server
	// shuts down rather than holding Shutdown open.
	stop context.CancelFunc
}

// Start connects to the database, applies migrations, bootstraps the
// cluster's default objects and starts serving.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts.defaults()
	cfg, err := pgxpool.ParseConfig(opts.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.MaxConns < 20 {
		cfg.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	reg, err := registry.New()
	if err != nil {
		pool.Close()
		return nil, err
	}
	var hub *watch.Hub
	var nsLifecycle *admission.NamespaceLifecycle
	var srv *server.Server
	store := storage.New(pool, storage.OnCommit(func(cluster string, objs []storage.Object) { hub.Committed(cluster, objs) }),
		storage.OnCommit(func(cluster string, objs []storage.Object) { nsLifecycle.Committed(cluster, objs) }),
		storage.ObserveLatency(func(op string, d time.Duration) { srv.ObserveStorage(op, d) }))
	nsLifecycle = admission.NewNamespaceLifecycle(store)
	hub = watch.NewHub(store, watch.Options{})
	services, err := server.NewServiceAllocator(store, opts.ServiceCIDR, opts.NodePortRange)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// base ends at shutdown: every request's context and the watches
	// derive from it.
	base, stop := context.WithCancel(context.Background())
	srv = server.New(server.Config{
		Store: store, Registry: reg, Watch: hub, BookmarkInterval: opts.WatchBookmarkInterval,
		WriteHooks: map[schema.GroupResource]server.WriteHook{{Resource: "services"}: services},
		Admission:  admission.Chain{nsLifecycle}, Stopping: base,
	})
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		stop()
		pool.Close()
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	s := &Server{opts: opts, pool: pool, store: store, listener: ln, handler: srv.Handler(), done: make(chan struct{}), stop: stop}
	if err := s.bootstrap(ctx, services.KubernetesIP()); err != nil {
		stop()
		ln.Close()
		pool.Close()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	listenURL := opts.ListenDatabaseURL
	if listenURL == "" {
		listenURL = opts.DatabaseURL
	}
	hub.Start(base, pool, listenURL, opts.Log)
	// HTTP/1.1 and, for clients that speak it without TLS, HTTP/2: many
	// watches then share one connection.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second, MaxHeaderBytes: 1 << 20,
		BaseContext: func(net.Listener) context.Context { return base }, Protocols: &protocols}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("serve", "err", err)
		}
	}()
	go s.compactLoop()
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Shutdown stops accepting requests, ends watches and closes the database.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	<-s.done
	s.pool.Close()
	return err
}

// compactLoop runs compaction at half the retention, at most once a
// minute, so an expired version is gone within 1.5 retention periods.
func (s *Server) compactLoop() {
	every := min(max(s.opts.HistoryRetention/2, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.store.Compact(ctx, s.opts.HistoryRetention); err != nil {
				s.opts.Log.Warn("compaction", "err", err)
			}
			cancel()
		}
	}
}
