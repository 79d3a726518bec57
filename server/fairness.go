package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/clusters"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Fairness bounds what one tenant may ask of a shared server, so a noisy
// tenant gets 429s while the others keep their latency. The root cluster,
// where pgkube's operators and components live, is not limited.
type Fairness struct {
	// QPS and Burst bound each tenant's request rate; 0 means no limit.
	QPS   float64
	Burst int
	// MaxInFlight bounds each tenant's concurrent requests, watches not
	// counted (they are long-lived by design); 0 means no limit.
	MaxInFlight int
}

type tenantLimiter struct {
	rate     *rate.Limiter
	inFlight atomic.Int32
}

type fairness struct {
	cfg      Fairness
	limiters sync.Map // cluster → *tenantLimiter
}

func (f *fairness) limiter(cluster string) *tenantLimiter {
	if l, ok := f.limiters.Load(cluster); ok {
		return l.(*tenantLimiter)
	}
	l := &tenantLimiter{}
	if f.cfg.QPS > 0 {
		burst := f.cfg.Burst
		if burst <= 0 {
			burst = int(f.cfg.QPS)
		}
		l.rate = rate.NewLimiter(rate.Limit(f.cfg.QPS), max(burst, 1))
	}
	actual, _ := f.limiters.LoadOrStore(cluster, l)
	return actual.(*tenantLimiter)
}

// tooMany is kube-apiserver's 429, asking the client to come back in a
// second.
func tooMany(w http.ResponseWriter) {
	err := apierrors.NewTooManyRequests("too many requests from this cluster, please try again later", 1)
	writeStatusError(w, err)
}

// limit applies the tenant's limits; it runs after routeCluster.
func (s *Server) limit(next http.Handler) http.Handler {
	if s.fair == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cluster := clusters.From(r.Context())
		// The root, the server's own in-process requests and pgkube's
		// components acting with root credentials in a tenant (one
		// controller manager for all) are never limited, as kube-apiserver
		// exempts system:masters.
		if u := authn.UserFrom(r.Context()); cluster == clusters.Root || r.Context().Value(internalKey{}) != nil || (u != nil && u.FromRoot) {
			next.ServeHTTP(w, r)
			return
		}
		l := s.fair.limiter(cluster)
		if l.rate != nil && !l.rate.Allow() {
			tooMany(w)
			return
		}
		watching := r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" || strings.Contains(r.URL.Path, "/watch/")
		if max := s.fair.cfg.MaxInFlight; max > 0 && !watching {
			if l.inFlight.Add(1) > int32(max) {
				l.inFlight.Add(-1)
				tooMany(w)
				return
			}
			defer l.inFlight.Add(-1)
		}
		next.ServeHTTP(w, r)
	})
}

type internalKey struct{}

// Internal marks ctx as the server's own request, which tenants' limits do
// not apply to.
func Internal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}
