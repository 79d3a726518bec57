package server

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"github.com/pgkube/pgkube/registry"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// openAPIV2 serves the same skeleton as Swagger 2.0, in protobuf (what
// client-go's discovery asks for) or JSON. kubectl 1.27 and 1.28 probe it
// before every apply.
func (s *Server) openAPIV2(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "protobuf") {
		doc := &openapiv2.Document{
			Swagger: "2.0",
			Info:    &openapiv2.Info{Title: "Kubernetes", Version: Version.GitVersion},
			Paths:   &openapiv2.Paths{},
		}
		for _, g := range s.cfg.Registry.Groups() {
			for _, v := range g.Versions {
				for _, res := range s.cfg.Registry.Resources(g.Name, v) {
					if res.CreateOnly {
						continue
					}
					doc.Paths.Path = append(doc.Paths.Path, &openapiv2.NamedPathItem{
						Name:  resourcePath(res),
						Value: &openapiv2.PathItem{Patch: patchOperationV2(res)},
					})
				}
			}
		}
		body, err := proto.Marshal(doc)
		if err != nil {
			writeStatusError(w, apierrors.NewInternalError(err))
			return
		}
		writeBytes(w, http.StatusOK, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", body)
		return
	}
	paths := map[string]any{}
	for _, g := range s.cfg.Registry.Groups() {
		for _, v := range g.Versions {
			doc := s.openAPIV3Doc(g.Name, v)
			for p, item := range doc["paths"].(map[string]any) {
				paths[p] = item
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"swagger": "2.0",
		"info":    map[string]string{"title": "Kubernetes", "version": Version.GitVersion},
		"paths":   paths,
	})
}

func patchOperationV2(res *registry.Resource) *openapiv2.Operation {
	op := &openapiv2.Operation{
		OperationId: "patch" + res.Kind,
		VendorExtension: []*openapiv2.NamedAny{
			{Name: "x-kubernetes-action", Value: &openapiv2.Any{Yaml: "patch\n"}},
			{Name: "x-kubernetes-group-version-kind", Value: &openapiv2.Any{
				Yaml: "group: \"" + res.Group + "\"\nkind: " + res.Kind + "\nversion: " + res.Version + "\n"}},
		},
	}
	for _, name := range []string{"dryRun", "fieldManager", "fieldValidation", "force"} {
		op.Parameters = append(op.Parameters, &openapiv2.ParametersItem{Oneof: &openapiv2.ParametersItem_Parameter{
			Parameter: &openapiv2.Parameter{Oneof: &openapiv2.Parameter_NonBodyParameter{
				NonBodyParameter: &openapiv2.NonBodyParameter{Oneof: &openapiv2.NonBodyParameter_QueryParameterSubSchema{
					QueryParameterSubSchema: &openapiv2.QueryParameterSubSchema{Name: name, In: "query", Type: "string"},
				}},
			}},
		}})
	}
	return op
}

func (s *Server) openAPIV3Doc(group, version string) map[string]any {
	paths := map[string]any{}
	for _, res := range s.cfg.Registry.Resources(group, version) {
		if res.CreateOnly {
			continue
		}
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
