// Package server is pgkube's HTTP face: the Kubernetes REST API, discovery
// and health endpoints, wired as chi middleware around one generic handler
// family that serves every registered resource.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/audit"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/schemas"
	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/version"
)

// Config wires the stages a request passes through.
type Config struct {
	Store     *storage.Store
	Registry  *registry.Registry
	Admission *admission.Chain
	Watch     *watch.Hub
	// WriteHooks run before a resource's writes reach storage, for what
	// must be claimed outside the object itself (a Service's IPs and ports).
	WriteHooks map[schema.GroupResource]WriteHook
	// Clusters tells which logical clusters /clusters/NAME/ may address;
	// nil serves only the root cluster's unprefixed URLs.
	Clusters Clusters
	// Stopping ends when the server shuts down. Watches that take their
	// connection over from net/http (HTTP/1.1) end with it; without it they
	// stay on net/http's ResponseWriter.
	Stopping context.Context
	// BookmarkInterval is how often watches that allow bookmarks get one.
	// kube-apiserver promises about once a minute; default 30s.
	BookmarkInterval time.Duration

	// Authenticator says who sent a request; nil lets everyone in
	// unauthenticated (tests of the REST layer alone).
	Authenticator authn.Authenticator
	// Authorizer decides what they may do; nil allows everything.
	Authorizer authz.Authorizer
	// APIAudiences are the audiences a token must be for to be accepted by
	// the API itself.
	APIAudiences []string
	// Audit, if set, gets one event per request.
	Audit audit.Sink
	// Virtual serves creates of resources and subresources that are not
	// stored (reviews, token requests), keyed "group/resource[/subresource]".
	Virtual map[string]VirtualCreate
	// TypeConverter knows every kind's schema for server-side apply and
	// managedFields (list keys, atomic maps); nil deduces structure from the
	// objects, which treats every list as atomic.
	TypeConverter managedfields.TypeConverter
	// Paths are further non-resource GET endpoints (service-account issuer
	// discovery), served behind authentication and authorization like the
	// rest.
	Paths map[string]http.HandlerFunc
	// Schemas describes the served kinds for /openapi/v2 and /openapi/v3;
	// nil describes the Registry's built-in resources.
	Schemas *schemas.Set
	// Fairness limits each tenant's requests; nil leaves them unlimited.
	Fairness *Fairness
	// SchemasFor, if set, gives a logical cluster's own description (one
	// with its CRDs); nil falls back to Schemas.
	SchemasFor func(cluster string) *schemas.Set
	// NodeTLS reaches node agents (pod logs, exec, attach, port
	// forwarding, nodes/proxy): the API server's client certificate and
	// the CA that signs agents' serving certificates; nil answers those
	// with 503.
	NodeTLS *tls.Config
}

// WriteHook prepares a write of one resource: it may fill fields of obj
// (old is the version replaced, nil on create) and claim what they name.
// The returned function learns whether the write was stored, to keep or
// release the claims.
type WriteHook interface {
	BeforeWrite(ctx context.Context, cluster string, obj, old runtime.Object, deleting bool) (after func(ok bool), err error)
}

// Server serves the Kubernetes API.
type Server struct {
	cfg     Config
	codecs  *codecs
	metrics *metrics
	fields  *fieldManagers
	fair    *fairness
	started time.Time
	// positions are the wildcard view's resourceVersions.
	positions *positions
}

// New builds the server.
func New(cfg Config) *Server {
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = 30 * time.Second
	}
	if cfg.Schemas == nil {
		// On failure the OpenAPI handlers report the error.
		cfg.Schemas, _ = schemasOf(cfg.Registry)
	}
	s := &Server{cfg: cfg, codecs: newCodecs(cfg.Registry.Scheme), metrics: newMetrics(), started: time.Now(),
		positions: newPositions()}
	if cfg.Fairness != nil {
		s.fair = &fairness{cfg: *cfg.Fairness}
	}
	s.fields = newFieldManagers(cfg.Registry.Scheme, func() managedfields.TypeConverter {
		if cfg.TypeConverter != nil {
			return cfg.TypeConverter
		}
		if cfg.Schemas == nil {
			return nil
		}
		v2, _ := cfg.Schemas.V2JSON()
		tc, err := typeConverter(v2)
		if err != nil {
			return nil // deduced structure, every list atomic
		}
		return tc
	})
	return s
}

// Schemas is the OpenAPI description of what is served.
func (s *Server) Schemas() *schemas.Set { return s.cfg.Schemas }

// ObserveStorage feeds storage latencies into /metrics.
func (s *Server) ObserveStorage(op string, d time.Duration) { s.metrics.ObserveStorage(op, d) }

// Version is what /version reports: a Kubernetes 1.33-era server.
var Version = version.Info{
	Major: "1", Minor: "33", GitVersion: "v1.33.0-pgkube", GitCommit: "pgkube", GitTreeState: "clean",
	BuildDate: "2026-11-27T00:00:00Z", GoVersion: "go1.26", Compiler: "gc", Platform: "linux/amd64",
}

// Handler returns the HTTP handler for the whole API.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	// Limits count only authenticated requests: an anonymous flood must not
	// use up a tenant's budget and lock its users out.
	r.Use(s.recoverer, s.metrics.middleware, s.routeCluster, s.secure, s.limit)
	r.Get("/healthz", s.health(false))
	r.Get("/livez", s.health(false))
	r.Get("/readyz", s.health(true))
	r.Get("/version", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, Version) })
	r.Get("/metrics", s.metrics.serve)
	// Profiling is on by default, as kube-apiserver's --profiling.
	r.HandleFunc("/debug/pprof/*", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for path, h := range s.cfg.Paths {
		r.Get(path, h)
	}
	r.Get("/openapi/v2", s.openAPIV2)
	r.Get("/openapi/v3", s.openAPIV3Index)
	r.Get("/openapi/v3/*", s.openAPIV3)
	r.Get("/api", s.discoveryAPI)
	r.Get("/apis", s.discoveryAPIs)
	r.Get("/", s.rootPaths)
	r.HandleFunc("/api/*", s.api)
	r.HandleFunc("/apis/*", s.api)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeStatusError(w, notFoundPath(r)) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeStatusError(w, apierrors.NewMethodNotSupported(schemaGR("", ""), r.Method))
	})
	return r
}

// recoverer turns a panic into a 500 Status: a bug must never kill the
// process or leave a client with a reset connection and no explanation.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				writeStatusError(w, apierrors.NewInternalError(panicError{v}))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type panicError struct{ v any }

func (p panicError) Error() string { return "internal error" }

func (s *Server) health(ready bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ready {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			v, err := migrations.Current(ctx, s.cfg.Store.Pool())
			if err != nil || v < migrations.Latest() {
				http.Error(w, "[-]database not ready", http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok")) //nolint:errcheck
	}
}

func (s *Server) rootPaths(w http.ResponseWriter, r *http.Request) {
	paths := []string{"/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/openapi/v2", "/openapi/v3", "/readyz", "/version"}
	for _, g := range s.view(r).Groups() {
		if g.Name == "" {
			continue
		}
		paths = append(paths, "/apis/"+g.Name)
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+g.Name+"/"+v)
		}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"paths": paths})
}

// api routes /api/v1/... and /apis/GROUP/VERSION/... to discovery or to the
// resource handlers.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group, version string
	var rest []string
	switch {
	case parts[0] == "api" && len(parts) >= 2:
		version, rest = parts[1], parts[2:]
	case parts[0] == "apis" && len(parts) == 2:
		s.discoveryGroup(w, r, parts[1])
		return
	case parts[0] == "apis" && len(parts) >= 3:
		group, version, rest = parts[1], parts[2], parts[3:]
	default:
		writeStatusError(w, notFoundPath(r))
		return
	}
	if !s.view(r).GroupVersionKnown(group, version) {
		writeStatusError(w, notFoundPath(r))
		return
	}
	if len(rest) == 0 {
		s.discoveryGroupVersion(w, r, group, version)
		return
	}
	var ri requestInfo
	ok := false
	if sc := scopeFrom(r.Context()); sc != nil && sc.resource {
		ri, ok = sc.ri, true
	} else {
		ri, ok = parseResourcePath(group, version, rest, r)
	}
	if !ok {
		writeStatusError(w, notFoundPath(r))
		return
	}
	s.serveResource(w, r, ri)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeStatusError(w, apierrors.NewInternalError(err))
		return
	}
	writeBytes(w, code, mediaJSON, body)
}

// view is what the logical cluster a request addresses serves.
func (s *Server) view(r *http.Request) *registry.View {
	return s.cfg.Registry.For(clusters.From(r.Context()))
}
