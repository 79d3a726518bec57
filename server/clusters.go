package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/pgkube/pgkube/clusters"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Clusters tells which logical clusters exist, and readies a cluster's
// in-memory state (its RBAC policy, its admission configuration) before its
// first request is served.
type Clusters interface {
	Exists(ctx context.Context, name string) (bool, error)
	Ready(ctx context.Context, name string) error
}

// routeCluster takes the /clusters/NAME prefix off a request's path and
// puts the cluster in its context, so everything after sees an ordinary
// Kubernetes URL. A cluster that does not exist is a 404, as any unknown
// path.
func (s *Server) routeCluster(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, clusters.URLPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		rest := strings.TrimPrefix(r.URL.Path, clusters.URLPrefix)
		name, path, _ := strings.Cut(rest, "/")
		if name == Wildcard && s.cfg.Clusters != nil {
			// Authenticated and authorized in the root cluster, where
			// pgkube's own components have their identities.
			ctx := context.WithValue(clusters.With(r.Context(), clusters.Root), wildcardKey{}, true)
			next.ServeHTTP(w, withPath(r.Clone(ctx), path))
			return
		}
		if !clusters.ValidName(name) || (name != clusters.Root && s.cfg.Clusters == nil) {
			writeStatusError(w, notFoundPath(r))
			return
		}
		if name != clusters.Root {
			ok, err := s.cfg.Clusters.Exists(r.Context(), name)
			if err != nil {
				writeStatusError(w, apierrors.NewInternalError(err))
				return
			}
			if !ok {
				writeStatusError(w, notFoundPath(r))
				return
			}
			if err := s.cfg.Clusters.Ready(r.Context(), name); err != nil {
				writeStatusError(w, apierrors.NewInternalError(err))
				return
			}
		}
		next.ServeHTTP(w, withPath(r.Clone(clusters.With(r.Context(), name)), path))
	})
}

// withPath gives r (a clone) the path below the cluster prefix.
func withPath(r *http.Request, path string) *http.Request {
	r.URL.Path = "/" + path
	r.URL.RawPath = ""
	r.RequestURI = r.URL.RequestURI()
	return r
}
