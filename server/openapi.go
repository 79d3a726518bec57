package server

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/schemas"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The OpenAPI documents come from a schemas.Set: /openapi/v2 (JSON, or
// gnostic protobuf, which client-go asks for) and /openapi/v3 with one
// document per group version. Every patch operation takes the
// fieldValidation parameter, so kubectl 1.27-1.33 leaves validation to the
// server. Documents carry ETags and answer If-None-Match with 304.

const (
	mediaOpenAPIV2Proto = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
)

// schemasOf describes the registry's resources.
// BuiltinSchemas describes the built-in resources, the starting point of
// every logical cluster's OpenAPI.
func BuiltinSchemas(reg *registry.Registry) (*schemas.Set, error) { return schemasOf(reg) }

func schemasOf(reg *registry.Registry) (*schemas.Set, error) {
	var resources []schemas.Resource
	view := reg.For(clusters.Root)
	for _, g := range view.Groups() {
		for _, v := range g.Versions {
			for _, r := range view.Resources(g.Name, v) {
				if r.Computed {
					// metrics.k8s.io has no generated definitions;
					// kube-apiserver too describes it only through
					// the aggregated metrics-server.
					continue
				}
				resources = append(resources, schemas.Resource{
					Group: r.Group, Version: r.Version, Resource: r.Resource, Kind: r.Kind, ListKind: r.ListKind,
					Namespaced: r.Namespaced, Status: r.Status, Scale: r.Scale != nil, CreateOnly: r.CreateOnly,
					Subresources: r.Subresources, Verbs: r.Verbs(),
				})
			}
		}
	}
	set, err := schemas.New(resources, schemas.WithVersion(Version.GitVersion))
	if err != nil {
		return nil, fmt.Errorf("describing the served resources in OpenAPI: %w", err)
	}
	return set, nil
}

// openAPISet returns the Set, or the error that kept New from building it.
func (s *Server) openAPISet(r *http.Request) (*schemas.Set, error) {
	if s.cfg.SchemasFor != nil {
		if set := s.cfg.SchemasFor(clusters.From(r.Context())); set != nil {
			return set, nil
		}
	}
	if s.cfg.Schemas != nil {
		return s.cfg.Schemas, nil
	}
	// Only reached when New failed to build the Set: rebuilding it here
	// tells the client why.
	return schemasOf(s.cfg.Registry)
}

// notModified answers a conditional GET whose If-None-Match names etag.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	w.Header().Set("ETag", etag)
	for _, tag := range strings.Split(r.Header.Get("If-None-Match"), ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
	}
	return false
}

func (s *Server) openAPIV2(w http.ResponseWriter, r *http.Request) {
	set, err := s.openAPISet(r)
	if err != nil {
		writeStatusError(w, apierrors.NewInternalError(err))
		return
	}
	w.Header().Add("Vary", "Accept")
	body, etag, media := []byte(nil), "", mediaJSON
	if strings.Contains(r.Header.Get("Accept"), "protobuf") {
		body, etag = set.V2Proto()
		media = mediaOpenAPIV2Proto
	} else {
		body, etag = set.V2JSON()
	}
	if body == nil {
		writeStatusError(w, apierrors.NewInternalError(fmt.Errorf("building /openapi/v2: %w", set.Err())))
		return
	}
	if notModified(w, r, etag) {
		return
	}
	writeBytes(w, http.StatusOK, media, body)
}

func (s *Server) openAPIV3Index(w http.ResponseWriter, r *http.Request) {
	set, err := s.openAPISet(r)
	if err != nil {
		writeStatusError(w, apierrors.NewInternalError(err))
		return
	}
	body := set.V3Index()
	if body == nil {
		writeStatusError(w, apierrors.NewInternalError(fmt.Errorf("building /openapi/v3: %w", set.Err())))
		return
	}
	sum := sha512.Sum512(body)
	if notModified(w, r, `"`+strings.ToUpper(hex.EncodeToString(sum[:]))+`"`) {
		return
	}
	writeBytes(w, http.StatusOK, mediaJSON, body)
}

// acceptsJSON reports whether the client takes JSON, the only form the v3
// documents are served in.
func acceptsJSON(accept string) bool {
	if accept == "" {
		return true
	}
	for _, clause := range strings.Split(accept, ",") {
		media := strings.TrimSpace(strings.SplitN(clause, ";", 2)[0])
		if media == mediaJSON || media == "*/*" || media == "application/*" {
			return true
		}
	}
	return false
}

func (s *Server) openAPIV3(w http.ResponseWriter, r *http.Request) {
	set, err := s.openAPISet(r)
	if err != nil {
		writeStatusError(w, apierrors.NewInternalError(err))
		return
	}
	gv := strings.TrimPrefix(r.URL.Path, "/openapi/v3/")
	body, etag, ok := set.V3(gv)
	if !ok {
		writeStatusError(w, notFoundPath(r))
		return
	}
	w.Header().Add("Vary", "Accept")
	if !acceptsJSON(r.Header.Get("Accept")) {
		writeStatusError(w, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, r.Method, schemaGR("", ""), "",
			"only application/json is served for OpenAPI v3", 0, false))
		return
	}
	// A URL naming a hash is what the index hands out: it may be cached for
	// good, and one naming an older hash is sent to the current document.
	if hash := r.URL.Query().Get("hash"); hash != "" {
		current := strings.Trim(etag, `"`)
		if hash != current {
			http.Redirect(w, r, "/openapi/v3/"+gv+"?hash="+current, http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	}
	if notModified(w, r, etag) {
		return
	}
	writeBytes(w, http.StatusOK, mediaJSON, body)
}
