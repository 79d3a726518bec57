package server

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pgkube/pgkube/registry"
)

// The OpenAPI served here is the skeleton clients probe before writing: one
// path per resource whose PATCH operation names its kind and the
// fieldValidation parameter, so kubectl leaves validation to the server.
// Full schemas are the schemas package's job.

func (s *Server) gvPaths() map[string][2]string {
	out := map[string][2]string{}
	for _, g := range s.cfg.Registry.Groups() {
		for _, v := range g.Versions {
			if g.Name == "" {
				out["api/"+v] = [2]string{g.Name, v}
			} else {
				out["apis/"+g.Name+"/"+v] = [2]string{g.Name, v}
			}
		}
	}
	return out
}

func (s *Server) openAPIV3Index(w http.ResponseWriter, r *http.Request) {
	paths := map[string]any{}
	for p, gv := range s.gvPaths() {
		body, _ := json.Marshal(s.openAPIV3Doc(gv[0], gv[1]))
		sum := sha512.Sum512(body)
		paths[p] = map[string]string{"serverRelativeURL": "/openapi/v3/" + p + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:]))}
	}
	writeJSON(w, http.StatusOK, map[string]any{"paths": paths})
}

func (s *Server) openAPIV3(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/openapi/v3/")
	gv, ok := s.gvPaths()[p]
	if !ok {
		writeStatusError(w, notFoundPath(r))
		return
	}
	writeJSON(w, http.StatusOK, s.openAPIV3Doc(gv[0], gv[1]))
}

func (s *Server) openAPIV2(w http.ResponseWriter, r *http.Request) {
	writeStatusError(w, notFoundPath(r))
}

func (s *Server) openAPIV3Doc(group, version string) map[string]any {
	paths := map[string]any{}
	for _, res := range s.cfg.Registry.Resources(group, version) {
		paths[resourcePath(res)] = map[string]any{
			"patch": map[string]any{
				"operationId": "patch" + res.Kind,
				"parameters": []map[string]any{
					{"name": "dryRun", "in": "query", "schema": map[string]string{"type": "string"}},
					{"name": "fieldManager", "in": "query", "schema": map[string]string{"type": "string"}},
					{"name": "fieldValidation", "in": "query", "schema": map[string]string{"type": "string"}},
					{"name": "force", "in": "query", "schema": map[string]string{"type": "boolean"}},
				},
				"x-kubernetes-action":             "patch",
				"x-kubernetes-group-version-kind": map[string]string{"group": res.Group, "version": res.Version, "kind": res.Kind},
				"responses":                       map[string]any{"200": map[string]any{"description": "OK"}},
			},
		}
	}
	return map[string]any{
		"openapi": "3.0.0",
		"info":    map[string]string{"title": "Kubernetes", "version": Version.GitVersion},
		"paths":   paths,
	}
}

func resourcePath(res *registry.Resource) string {
	prefix := "/api/" + res.Version
	if res.Group != "" {
		prefix = "/apis/" + res.Group + "/" + res.Version
	}
	if res.Namespaced {
		return prefix + "/namespaces/{namespace}/" + res.Resource + "/{name}"
	}
	return prefix + "/" + res.Resource + "/{name}"
}
