package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pgkube/pgkube/audit"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// requestScope is what the filters learned about a request: what it
// addresses and who sends it. Handlers read it from the context.
type requestScope struct {
	resource bool
	ri       requestInfo
	attrs    authz.Attributes
}

type scopeKey struct{}

func scopeFrom(ctx context.Context) *requestScope {
	sc, _ := ctx.Value(scopeKey{}).(*requestScope)
	return sc
}

// classify parses the URL once: a resource request (/api/v1/..., /apis/G/V/...
// below the group version) or a non-resource path (discovery, health, ...).
func classify(r *http.Request) *requestScope {
	sc := &requestScope{}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group, version string
	var rest []string
	switch {
	case parts[0] == "api" && len(parts) >= 3:
		version, rest = parts[1], parts[2:]
	case parts[0] == "apis" && len(parts) >= 4:
		group, version, rest = parts[1], parts[2], parts[3:]
	}
	if rest != nil {
		if ri, ok := parseResourcePath(group, version, rest, r); ok {
			sc.resource, sc.ri = true, ri
		}
	}
	if sc.resource {
		ri := sc.ri
		sc.attrs = authz.Attributes{ResourceRequest: true, Verb: ri.Verb, Namespace: ri.Namespace, APIGroup: ri.Group,
			APIVersion: ri.Version, Resource: ri.Resource, Subresource: ri.Subresource, Name: ri.Name, Path: r.URL.Path}
		if ri.Resource == "namespaces" && ri.Name != "" {
			// A namespace is inside itself: a RoleBinding in namespace x
			// can grant access to namespace x.
			sc.attrs.Namespace = ri.Name
		}
	} else {
		verb := strings.ToLower(r.Method)
		if r.Method == http.MethodHead {
			verb = "get"
		}
		sc.attrs = authz.Attributes{Verb: verb, Path: r.URL.Path}
	}
	return sc
}

// secure is the front of the request path: parse, authenticate,
// impersonate, authorize, and audit what happened. Only a request that
// passes reaches a handler, so a denied one learns nothing about whether
// what it named exists.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		sc := classify(r)
		sc.attrs.Cluster = clusters.From(r.Context())
		auditID := string(uuid.NewUUID())
		w.Header().Set("Audit-Id", auditID)
		ctx := context.WithValue(r.Context(), scopeKey{}, sc)
		ctx = authn.WithAudiences(ctx, s.cfg.APIAudiences)

		rec := &statusRecorder{ResponseWriter: w}
		var requester, effective *authn.User
		defer func() {
			if s.cfg.Audit != nil {
				s.audit(r, sc, auditID, requester, effective, rec.code, received)
			}
		}()

		// In-process callers (bootstrap) arrive with their user already set.
		requester = authn.UserFrom(ctx)
		if requester == nil && s.cfg.Authenticator != nil {
			u, ok, err := s.cfg.Authenticator.Authenticate(r.WithContext(ctx))
			if err != nil || !ok {
				writeStatusError(rec, apierrors.NewUnauthorized("Unauthorized"))
				return
			}
			requester = u
		}
		effective = requester
		if s.cfg.Authorizer != nil && requester != nil {
			u, err := authz.Impersonate(ctx, s.cfg.Authorizer, sc.attrs.Cluster, requester, r.Header)
			if err != nil {
				writeStatusError(rec, toStatus(err, schema.GroupResource{}, ""))
				return
			}
			effective = u
			sc.attrs.User = u
			decision, reason, err := s.cfg.Authorizer.Authorize(ctx, sc.attrs)
			if decision != authz.Allow {
				if err != nil && reason == "" {
					reason = err.Error()
				}
				writeStatusError(rec, forbidden(sc.attrs, reason))
				return
			}
			if isWildcard(ctx) {
				if err := s.authorizeWildcard(ctx, sc.attrs); err != nil {
					writeStatusError(rec, err)
					return
				}
			}
		}
		ctx = authn.WithUser(ctx, effective)
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// forbidden is kube-apiserver's 403: the message names the user, verb and
// what was asked for, so users see what to ask an admin for.
func forbidden(a authz.Attributes, reason string) *apierrors.StatusError {
	msg := authz.ForbiddenMessage(a, reason)
	if !a.ResourceRequest {
		return apierrors.NewForbidden(schema.GroupResource{}, "", errString(msg))
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}, a.Name, errString(msg))
}

type errString string

func (e errString) Error() string { return string(e) }

func (s *Server) audit(r *http.Request, sc *requestScope, id string, requester, effective *authn.User, code int, received time.Time) {
	if code == 0 {
		code = http.StatusOK
	}
	e := &audit.Event{
		AuditID: id, Stage: "ResponseComplete", RequestURI: r.URL.RequestURI(), Verb: sc.attrs.Verb,
		UserAgent: r.UserAgent(), RequestReceivedTimestamp: received.UTC(), StageTimestamp: time.Now().UTC(),
		ResponseStatus: &audit.ResponseStatus{Code: code},
		// Each tenant's trail is its own: the cluster names whose it is.
		Annotations: map[string]string{"pgkube.io/cluster": sc.attrs.Cluster},
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.SourceIPs = []string{host}
	}
	if requester != nil {
		e.User = auditUser(requester)
		if effective != nil && effective != requester {
			u := auditUser(effective)
			e.ImpersonatedUser = &u
		}
	}
	if sc.resource {
		ri := sc.ri
		e.ObjectRef = &audit.ObjectRef{Resource: ri.Resource, Namespace: sc.attrs.Namespace, Name: ri.Name,
			APIGroup: ri.Group, APIVersion: ri.Version, Subresource: ri.Subresource}
	}
	s.cfg.Audit.Log(e)
}

func auditUser(u *authn.User) audit.UserInfo {
	return audit.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}
