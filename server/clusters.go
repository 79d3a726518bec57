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
		r2 := r.Clone(clusters.With(r.Context(), name))
		r2.URL.Path = "/" + path
		r2.URL.RawPath = ""
		r2.RequestURI = r2.URL.RequestURI()
		next.ServeHTTP(w, r2)
	})
}
